"""Rollups: incremental (`apply_call`), SQL rebuild and direct aggregation agree."""

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscope.analytics import kpis, orgindex, rebuild, rollups
from callscope.analytics.conversations import conversations
from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup
from callscope.store.models import Call, DirectoryEntry, OrgUnit

# 2025-03-31 14:00 UTC = 23:00 JST, the last hour of FY2024: calls cross a day, a month and
# the April reorganisation.
T0 = dt.datetime(2025, 3, 31, 14, 0, tzinfo=dt.UTC)
FY = dt.date(2024, 4, 1)


def make_city():
    def unit(code, name, level, parent=None, ward=False):
        u = OrgUnit.objects.create(code=code, name=name, level=level, parent=parent,
                                   is_ward=ward, valid_from=FY)  # fmt: skip
        u.top = parent.top if parent else u
        u.save()
        return u

    hq = unit("KODOMO", "こども家庭局", "bureau")
    hoiku = unit("HOIKU", "保育課", "section", hq)
    ward = unit("HGN", "東灘区役所", "ward", ward=True)
    shimin = unit("SHIMIN", "市民課", "section", ward, ward=True)
    for number, u, kind in [("0783225111", hoiku, "group"), ("0783225100", hoiku, "ivr"),
                            ("5111", hoiku, "staff"), ("5112", hoiku, "staff"),
                            ("41001", shimin, "staff")]:  # fmt: skip
        DirectoryEntry.objects.create(number=number, unit=u, kind=kind, valid_from=FY)
    orgindex.invalidate()
    return {"hoiku": hoiku, "shimin": shimin}


ms = st.integers(min_value=0, max_value=400_000)  # milliseconds


def row_of(**fields):
    return fields


@st.composite
def conversation(draw, index):
    kind = draw(st.sampled_from(["group", "ivr", "outbound", "internal", "single"]))
    start = T0 + dt.timedelta(milliseconds=draw(st.integers(0, 3 * 86_400_000)))
    caller = draw(st.sampled_from(["09011112222", "09033334444", "0312345678", "anonymous"]))
    legs = []

    def leg(n, callee, offset, answered, *, callee_class="", caller_number=caller,
            direction="inbound"):  # fmt: skip
        s = start + dt.timedelta(milliseconds=offset)
        ring = s + dt.timedelta(milliseconds=draw(st.integers(0, 3000)))
        wait = dt.timedelta(milliseconds=draw(ms))
        talk = dt.timedelta(milliseconds=draw(ms))
        result = (
            "answered"
            if answered
            else draw(st.sampled_from(["cancelled", "busy", "no_answer", "declined", "failed"]))
        )
        ended = draw(st.booleans()) or not answered or index % 5
        return row_of(
            call_id=f"{index}-{n}", conversation_id=f"c{index}", started_at=s,
            ringing_at=ring if draw(st.booleans()) else None,
            answered_at=s + wait if answered else None,
            ended_at=(s + wait + talk if answered else s + wait) if ended else None,
            result=result if ended or answered else "in_progress",
            ended_by=draw(st.sampled_from(["caller", "callee", "timeout", None])),
            caller_number=caller_number, callee_number=callee, direction=direction,
            callee_class=callee_class,
            hold_seconds=draw(st.sampled_from([None, 0.0, 12.5])),
            transferred=draw(st.booleans()),
        )  # fmt: skip

    if kind == "group":
        n = draw(st.integers(1, 3))
        winner = draw(st.integers(0, n))  # n: nobody answers
        for i in range(n):
            legs.append(leg(i, f"511{1 + i % 2}", i * 100, i == winner))
    elif kind == "ivr":
        legs.append(leg(0, "0783225100", 0, draw(st.booleans()), callee_class="ivr"))
        if draw(st.booleans()):
            legs.append(leg(1, "5111", 20_000, draw(st.booleans())))
    elif kind == "outbound":
        legs.append(leg(0, "0661234567", 0, draw(st.booleans()), caller_number="41001",
                        direction="outbound"))  # fmt: skip
    elif kind == "internal":
        legs.append(leg(0, "5111", 0, draw(st.booleans()), caller_number="41001",
                        direction="internal"))  # fmt: skip
    else:
        legs.append(leg(0, "0783225111", 0, draw(st.booleans()), callee_class="group"))
    return legs


def save(legs):
    calls = []
    for row in legs:
        placement = orgindex.classify_call(row["caller_number"], row["callee_number"],
                                           row["started_at"])  # fmt: skip
        calls.append(Call.objects.create(
            source="pcap",
            caller_unit=placement.caller_unit, callee_unit=placement.callee_unit,
            caller_class=placement.caller_class,
            caller_pseudonym="" if row["caller_number"] == "anonymous" else row["caller_number"],
            **row,
        ))  # fmt: skip
    return calls


def rollup_snapshot():
    out = {}
    for row in Rollup.objects.values():
        key = tuple(row[k] for k in rollups.ROLLUP_KEY)
        # sums of +x and -x may leave a float residue (-0.009 + 0.008 + 0.001 = -8.7e-19)
        m = {k: row[k] for k in kpis.MEASURES if abs(row[k]) > 1e-9}
        if m:
            out[key] = m
    return out


def matrix_snapshot():
    return {
        tuple(r[k] for k in rollups.MATRIX_KEY): (
            r["calls"],
            r["answered"],
            round(r["talk_sum"], 3),
        )
        for r in MatrixRollup.objects.values()
        if r["calls"]
    }


def load_snapshot():
    return {r.minute: r.active for r in LoadMinute.objects.all() if r.active}


def direct():
    info = orgindex.current_index().info
    legs = [rollups.leg_of(r, info) for r in Call.objects.values(*rollups.LEG_FIELDS)]
    convs = conversations(legs)
    repeats = kpis.repeat_callers(convs)
    rows, matrix = {}, {}
    for conv in convs:
        m = kpis.measures(conv, repeat=conv.conversation_id in repeats)
        rollups._merge(rows, rollups.rollup_keys(conv, info), rollups.ROLLUP_KEY, m, 1)
        rollups._merge(matrix, rollups.matrix_keys(conv, info), rollups.MATRIX_KEY,
                       rollups.matrix_measures(conv), 1)  # fmt: skip
    # as `rollup_snapshot`: a float residue of +x and -x is no measure
    snapshot = {k: {n: v for n, v in r["m"].items() if abs(v) > 1e-9} for k, r in rows.items()}
    mat = {k: (r["m"]["calls"], r["m"]["answered"], round(r["m"]["talk_sum"], 3))
           for k, r in matrix.items()}  # fmt: skip
    return snapshot, mat, kpis.peak_concurrent_by_minute(convs)


def same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for name, value in a[key].items():
            assert math.isclose(value, b[key][name], rel_tol=1e-9, abs_tol=1e-6), (key, name)


def clear():
    for model in (Rollup, MatrixRollup, LoadMinute, Call):
        model.objects.all().delete()


#: generated runs against the database: few examples, no deadline (queries take time)
DATABASE_EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.django_db
@DATABASE_EXAMPLES
@given(st.data())
def test_incremental_rebuild_and_direct_aggregation_agree(data):
    if not OrgUnit.objects.exists():
        make_city()
    clear()
    n = data.draw(st.integers(1, 12))
    legs = [leg for i in range(n) for leg in data.draw(conversation(i))]
    for row in sorted(legs, key=lambda r: (r["started_at"], r["call_id"])):
        (call,) = save([row])
        rollups.apply_call(call)
    incremental = rollup_snapshot(), matrix_snapshot(), load_snapshot()
    expected = direct()
    same(incremental[0], expected[0])
    assert incremental[1] == expected[1]
    assert incremental[2] == expected[2]
    rebuild.rebuild()
    rebuilt = rollup_snapshot(), matrix_snapshot(), load_snapshot()
    same(rebuilt[0], expected[0])
    assert rebuilt[1] == expected[1]
    assert rebuilt[2] == expected[2]


def test_rebuild_since_keeps_earlier_months(db):
    make_city()
    legs = [
        row_of(call_id=f"x{i}", conversation_id=f"x{i}", started_at=T0 + dt.timedelta(days=i),
             ringing_at=None, answered_at=T0 + dt.timedelta(days=i, seconds=5),
             ended_at=T0 + dt.timedelta(days=i, seconds=65), result="answered",
             ended_by="caller", caller_number="09011112222", callee_number="5111",
             direction="inbound", callee_class="", hold_seconds=None, transferred=False)
        for i in range(3)
    ]  # fmt: skip
    for call in save(legs):
        rollups.apply_call(call)
    before = rollup_snapshot()
    # saved again with a longer talk: the replaced version is taken out
    call = Call.objects.get(call_id="x0")
    old = rollups.leg_values(call)
    call.ended_at += dt.timedelta(seconds=30)
    call.save()
    rollups.apply_call(call, replaced=old)
    assert Rollup.objects.get(grain="d", scope="t", day=dt.date(2025, 3, 31)).talk_sum == 90.0
    call.ended_at -= dt.timedelta(seconds=30)
    call.save()
    rollups.apply_call(
        call,
        replaced=rollups.leg_values(Call.objects.get(call_id="x0"))
        | {"ended_at": call.ended_at + dt.timedelta(seconds=30)},
    )
    assert rollup_snapshot() == before
    Rollup.objects.filter(day__gte=dt.date(2025, 4, 1)).update(offered=99)
    rebuild.rebuild(since=dt.date(2025, 4, 15))
    assert rollup_snapshot() == before
    march = Rollup.objects.get(grain="m", scope="t", day=dt.date(2025, 3, 1))
    assert march.offered == 1 and march.talk_sum == 60.0


def test_apply_call_counts_every_leg_of_a_busy_day(db):
    make_city()
    legs = [
        row_of(call_id=f"y{i}", conversation_id=f"y{i}", started_at=T0 + dt.timedelta(minutes=i),
             ringing_at=T0 + dt.timedelta(minutes=i, seconds=1),
             answered_at=T0 + dt.timedelta(minutes=i, seconds=9),
             ended_at=T0 + dt.timedelta(minutes=i, seconds=200), result="answered",
             ended_by="callee", caller_number=f"0901111{i:04d}", callee_number="0783225111",
             direction="inbound", callee_class="group", hold_seconds=None, transferred=False)
        for i in range(300)
    ]  # fmt: skip
    for call in save(legs):  # speed: bench/analytics_dashboards.py, not timed tests
        rollups.apply_call(call)
    assert Rollup.objects.get(grain="d", scope="t", day=dt.date(2025, 3, 31)).offered == 60
    assert Rollup.objects.get(grain="d", scope="t", day=dt.date(2025, 4, 1)).offered == 240
    peak = LoadHour.objects.order_by("-peak").first()
    assert peak is not None and peak.peak == 4  # 200-s calls a minute apart touch 4 minutes


def test_rollup_command(db):
    from django.core.management import CommandError, call_command

    make_city()
    for call in save([row_of(call_id="z", conversation_id="z", started_at=T0, ringing_at=None,
                             answered_at=T0 + dt.timedelta(seconds=4),
                             ended_at=T0 + dt.timedelta(seconds=64), result="answered",
                             ended_by="caller", caller_number="0312345678", callee_number="5111",
                             direction="inbound", callee_class="", hold_seconds=None,
                             transferred=False)]):  # fmt: skip
        rollups.apply_call(call)
    before = rollup_snapshot()
    Rollup.objects.all().delete()
    call_command("rollup", "--rebuild", "--since", "2025-03-01")
    assert rollup_snapshot() == before
    with pytest.raises(CommandError):
        call_command("rollup")


def test_hour_peaks_follow_a_leg_saved_longer_then_shorter(db):
    """Peaks per hour when a leg crosses an hour and is saved again shorter (minutes are
    taken out, the hour's peak is read again), as the rebuild computes them."""
    make_city()
    start = T0 + dt.timedelta(minutes=58)
    legs = [
        row_of(call_id=f"h{i}", conversation_id=f"h{i}", started_at=start,
               ringing_at=None, answered_at=start + dt.timedelta(seconds=3),
               ended_at=start + dt.timedelta(seconds=160), result="answered",
               ended_by="caller", caller_number=f"0901111{i:04d}", callee_number="5111",
               direction="inbound", callee_class="", hold_seconds=None, transferred=False)
        for i in range(2)
    ]  # fmt: skip
    for call in save(legs):
        rollups.apply_call(call)
    call = Call.objects.get(call_id="h1")
    old = rollups.leg_values(call)
    call.ended_at = start + dt.timedelta(seconds=30)  # no longer reaches the next hour
    call.save()
    rollups.apply_call(call, replaced=old)
    peaks = {r.hour: r.peak for r in LoadHour.objects.all()}
    minutes = load_snapshot()
    assert peaks == {T0: 2, T0 + dt.timedelta(hours=1): 1}
    rebuild.rebuild()
    assert {r.hour: r.peak for r in LoadHour.objects.all()} == peaks
    assert load_snapshot() == minutes


def test_apply_calls_together_equals_direct_aggregation(db):
    """Legs of distinct conversations saved together, then applied in one block (as the
    recorder does per read), give the rollups of direct aggregation."""
    make_city()
    legs = [
        row_of(call_id=f"g{i}", conversation_id=f"g{i}", started_at=T0 + dt.timedelta(minutes=i),
               ringing_at=None,
               answered_at=None if i % 3 else T0 + dt.timedelta(minutes=i, seconds=7),
               ended_at=T0 + dt.timedelta(minutes=i, seconds=90),
               result="answered" if i % 3 == 0 else "no_answer", ended_by="caller",
               caller_number=f"0901111{i % 5:04d}", callee_number="0783225111",
               direction="inbound", callee_class="group", hold_seconds=None, transferred=False)
        for i in range(40)
    ]  # fmt: skip
    rollups.apply_calls([(call, None) for call in save(legs)])
    expected = direct()
    same(rollup_snapshot(), expected[0])
    assert matrix_snapshot() == expected[1]
    assert load_snapshot() == expected[2]


def squeezed(legs):
    """The legs of a conversation moved to start within two hours of T0 (3 days apart at
    most otherwise): conversations overlap, and share minutes, hours and rollup rows."""
    shift = (legs[0]["started_at"] - T0) * 35 / 36
    times = ("started_at", "ringing_at", "answered_at", "ended_at")
    return [{**leg, **{t: leg[t] - shift for t in times if leg[t] is not None}} for leg in legs]


def hour_snapshot():
    return {r.hour: r.peak for r in LoadHour.objects.all() if r.peak}


def plan_of(data, legs):
    """Runs of legs in the order they end (as a recorder saves them), never two legs of one
    conversation in a run, each with legs saved before to save again with another end."""
    pending = sorted(legs, key=lambda r: (r["ended_at"] or T0 + dt.timedelta(days=9),
                                          r["call_id"]))  # fmt: skip
    plan, saved = [], []
    while pending:
        run, seen = [], set()
        for row in pending[: data.draw(st.integers(1, 6))]:
            if row["conversation_id"] in seen:
                break
            seen.add(row["conversation_id"])
            run.append(row)
        pending = pending[len(run) :]
        earlier = [r for r in saved if r["ended_at"] and r["conversation_id"] not in seen]
        again = []
        if earlier:
            one_per_conversation = st.lists(st.sampled_from(earlier), max_size=2,
                                            unique_by=lambda r: r["conversation_id"])  # fmt: skip
            again = data.draw(one_per_conversation)
        shift = st.integers(-400_000, 400_000)  # ms
        plan.append((run, [(r["call_id"], data.draw(shift)) for r in again]))
        saved += run
    return plan


def play(plan, together):
    """Save and apply the plan's runs: each run with `apply_calls`, or leg by leg."""
    clear()
    LoadHour.objects.all().delete()
    for run, again in plan:
        legs = [(call, None) for call in save(run)]
        for call_id, shift in again:
            call = Call.objects.get(call_id=call_id)
            old = rollups.leg_values(call)
            call.ended_at = max(call.ended_at + dt.timedelta(milliseconds=shift),
                                call.answered_at or call.started_at)  # fmt: skip
            call.save()
            legs.append((call, old))
        if together:
            rollups.apply_calls(legs)
        else:
            for call, old in legs:
                rollups.apply_call(call, replaced=old)
    return rollup_snapshot(), matrix_snapshot(), load_snapshot(), hour_snapshot()


def without_repeats(snapshot):
    return {k: {n: v for n, v in m.items() if n != "repeat"} for k, m in snapshot.items()}


@pytest.mark.django_db
@DATABASE_EXAMPLES
@given(st.data())
def test_apply_calls_in_runs_equals_leg_after_leg(data):
    """Legs applied in runs of distinct conversations (as the recorder's reads), second legs
    of conversations applied before, legs saved again longer or shorter (``replaced``),
    repeat callers within a run: the rollups, matrix, load minutes and hours' peaks are the
    ones applying leg after leg gives, and direct aggregation and the rebuild agree."""
    if not OrgUnit.objects.exists():
        make_city()
    n = data.draw(st.integers(1, 12))
    plan = plan_of(data, [leg for i in range(n) for leg in squeezed(data.draw(conversation(i)))])
    one_by_one = play(plan, together=False)
    together = play(plan, together=True)
    same(together[0], one_by_one[0])
    assert together[1:] == one_by_one[1:]
    expected = direct()
    # a leg applied before an earlier call of its caller was saved is not made a repeat
    # afterwards: the repeat counts follow the order legs end in, the rest does not
    same(without_repeats(together[0]), without_repeats(expected[0]))
    assert together[1:3] == expected[1:]
    rebuild.rebuild()
    assert hour_snapshot() == together[3]


def test_apply_calls_refuses_two_legs_of_one_conversation(db):
    make_city()
    legs = [
        row_of(call_id=f"t{i}", conversation_id="t", started_at=T0, ringing_at=None,
               answered_at=None, ended_at=T0 + dt.timedelta(seconds=9), result="no_answer",
               ended_by="caller", caller_number="0312345678", callee_number=f"511{i + 1}",
               direction="inbound", callee_class="", hold_seconds=None, transferred=False)
        for i in range(2)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one at a time"):
        rollups.apply_calls([(call, None) for call in save(legs)])


def test_a_repeat_caller_is_counted_up_to_exactly_seven_days_later(db):
    """The window of `kpis.REPEAT_DAYS` includes its first instant (the read of all legs
    of a batch sifts each conversation's own window)."""
    make_city()
    week = dt.timedelta(days=kpis.REPEAT_DAYS)

    def leg(call_id, start, caller):
        return row_of(call_id=call_id, conversation_id=call_id, started_at=start,
                      ringing_at=None, answered_at=start + dt.timedelta(seconds=3),
                      ended_at=start + dt.timedelta(seconds=30), result="answered",
                      ended_by="caller", caller_number=caller, callee_number="5111",
                      direction="inbound", callee_class="", hold_seconds=None,
                      transferred=False)  # fmt: skip

    earlier = [leg("p1", T0 - week, "09011112222"),
               leg("q1", T0 - week - dt.timedelta(microseconds=1), "09033334444")]  # fmt: skip
    rollups.apply_calls([(call, None) for call in save(earlier)])
    later = [leg("p2", T0, "09011112222"), leg("q2", T0, "09033334444")]
    rollups.apply_calls([(call, None) for call in save(later)])
    day = Rollup.objects.get(grain="d", scope="t", day=dt.date(2025, 3, 31), flow="inbound")
    assert (day.offered, day.repeat) == (2, 1)
