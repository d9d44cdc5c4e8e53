import datetime as dt

from callscope.console.ladder import MAX_ROWS, build_ladder, message_kind, parse_time

T0 = dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC)
A, P, B = "10.0.0.5:5060", "10.0.0.1:5060", "10.0.0.9:5060"


def ev(t, src, dst, label, **kw):
    at = (T0 + dt.timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"at": at, "src": src, "dst": dst, "label": label, **kw}


def test_lanes_in_order_of_appearance_caller_first_and_offsets():
    events = [
        ev(0, A, P, "INVITE"),
        ev(0.01, P, B, "INVITE"),
        ev(0.5, B, P, "180 Ringing"),
        ev(3, B, P, "200 OK"),
        ev(10, A, P, "INVITE", detail="sendonly (hold)"),
        ev(20, A, P, "BYE"),
    ]
    ladder = build_ladder(events, T0)
    assert [lane.key for lane in ladder.lanes] == [A, P, B]
    assert [lane.role for lane in ladder.lanes] == ["caller", "", "callee"]
    xs = [lane.x for lane in ladder.lanes]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert [a.offset for a in ladder.arrows] == [0.0, 0.01, 0.5, 3.0, 10.0, 20.0]
    ys = [a.y for a in ladder.arrows]
    assert ys == sorted(ys)
    assert ladder.arrows[2].x1 > ladder.arrows[2].x2  # the response flows right to left
    assert ladder.arrows[4].detail == "sendonly (hold)"
    assert ladder.height > ys[-1]
    assert ladder.omitted == 0


def test_message_kinds():
    assert message_kind({"label": "INVITE"}) == "request"
    assert message_kind({"label": "183 Session Progress"}) == "provisional"
    assert message_kind({"label": "200 OK"}) == "success"
    assert message_kind({"label": "486 Busy Here"}) == "failure"
    assert message_kind({"label": "x", "status": 603}) == "failure"


def test_events_without_addresses_use_the_direction():
    events = [
        {"label": "INVITE", "direction": "caller_to_callee"},
        {"label": "486 Busy Here", "direction": "callee_to_caller"},
    ]
    ladder = build_ladder(events, T0)
    assert [lane.key for lane in ladder.lanes] == ["caller", "callee"]
    assert [lane.address for lane in ladder.lanes] == ["", ""]
    assert ladder.arrows[0].offset is None
    assert ladder.arrows[1].x1 > ladder.arrows[1].x2


def test_malformed_events_are_skipped_and_long_dialogs_cut():
    junk = [{"label": ""}, {"src": A}, "text", {"label": "BYE", "src": A, "dst": B, "at": "bad"}]
    ladder = build_ladder(junk, T0)
    assert len(ladder.arrows) == 1 and ladder.arrows[0].at is None
    many = [ev(i, A, B, "OPTIONS") for i in range(MAX_ROWS + 7)]
    ladder = build_ladder(many, T0)
    assert len(ladder.arrows) == MAX_ROWS and ladder.omitted == 7


def test_loop_to_self():
    ladder = build_ladder([ev(0, A, A, "OPTIONS")], T0)
    assert ladder.arrows[0].is_loop


def test_parse_time():
    assert parse_time("2024-05-01T00:00:01.5Z") == T0 + dt.timedelta(seconds=1.5)
    assert parse_time(None) is None and parse_time("nope") is None
