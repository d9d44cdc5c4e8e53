"""KPI definitions against small hand-computed cases, including the known traps."""

import datetime as dt

import pytest

from callscope.analytics import kpis
from callscope.analytics.conversations import (
    Flow,
    Leg,
    Outcome,
    conversation_of,
    conversations,
)

T0 = dt.datetime(2025, 4, 7, 0, 30, tzinfo=dt.UTC)  # Monday 09:30 JST


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def leg(call_id="a", conv="c1", *, start=0.0, ring=None, answer=None, end=None, **kw) -> Leg:
    return Leg(
        call_id=call_id,
        conversation_id=conv,
        started_at=at(start),
        ringing_at=None if ring is None else at(ring),
        answered_at=None if answer is None else at(answer),
        ended_at=None if end is None else at(end),
        result=kw.pop("result", "answered" if answer is not None else "cancelled"),
        flow=kw.pop("flow", Flow.INBOUND),
        callee_unit_id=kw.pop("unit", 7),
        **kw,
    )


def test_ring_time_is_not_talk_time():
    conv = conversation_of([leg(ring=1, answer=16, end=136, ended_by="caller")])
    assert conv.outcome is Outcome.ANSWERED
    assert conv.wait_seconds == 16.0  # INVITE -> answer
    assert conv.ring_seconds == 15.0  # 180 -> 200
    assert conv.talk_seconds == 120.0  # 200 -> BYE, the ringing excluded
    assert conv.ended_by == "caller"


def test_ringing_group_legs_are_one_offered_call():
    # 代表番号: the PBX forks to three desks; desk b answers, a and c get CANCEL.
    legs = [
        leg("a", start=0.0, ring=0.5, end=12.0, result="cancelled", ended_by="caller", unit=7),
        leg("b", start=0.1, ring=0.6, answer=12.0, end=72.0, ended_by="callee", unit=8),
        leg("c", start=0.2, ring=0.7, end=12.0, result="cancelled", ended_by="caller", unit=7),
    ]
    convs = conversations(legs)
    assert len(convs) == 1
    conv = convs[0]
    assert conv.legs == 3
    assert conv.outcome is Outcome.ANSWERED
    assert conv.unit_id == 8  # counted where it was answered
    assert conv.wait_seconds == 12.0
    assert conv.talk_seconds == 60.0
    summary = kpis.exact_summary(convs)
    assert summary["offered"] == 1
    assert summary["answered"] == 1
    assert summary["abandoned"] == 0
    assert summary["legs_per_call"] == 3


def test_ivr_answer_is_not_a_staff_answer():
    # The IVR answers at once; the caller hangs up in the menu after 40 s.
    ivr = leg(ring=0.2, answer=0.5, end=40.0, ended_by="caller", callee_class="ivr")
    conv = conversation_of([ivr])
    assert conv.outcome is Outcome.ABANDONED
    assert conv.abandoned_in_ivr
    assert conv.talk_seconds is None
    assert conv.wait_seconds == 40.0
    summary = kpis.exact_summary([conv])
    assert summary["answered"] == 0 and summary["abandoned"] == 1
    assert summary["abandoned_ivr"] == 1


def test_ivr_then_staff_waiting_runs_to_the_staff_answer():
    ivr = leg("a", ring=0.2, answer=0.5, end=95.0, ended_by="callee", callee_class="ivr")
    staff = leg("b", start=30.0, ring=30.5, answer=45.0, end=95.0, ended_by="caller", unit=9)
    conv = conversation_of([ivr, staff])
    assert conv.outcome is Outcome.ANSWERED
    assert conv.wait_seconds == 45.0  # citizen's wait includes the IVR menu
    assert conv.talk_seconds == 50.0
    assert conv.ring_seconds == 14.5
    assert conv.unit_id == 9


def test_caller_giving_up_in_the_queue_after_the_ivr_is_abandoned():
    ivr = leg("a", answer=0.5, end=30.0, ended_by="callee", callee_class="ivr", transferred=True)
    queue = leg("b", start=30.0, ring=30.3, end=95.0, ended_by="caller", unit=9)
    conv = conversation_of([ivr, queue])
    assert conv.outcome is Outcome.ABANDONED
    assert not conv.abandoned_in_ivr
    assert conv.wait_seconds == 95.0
    assert conv.unit_id == 9


def test_ivr_that_ends_the_call_itself_is_ivr_only():
    conv = conversation_of([leg(answer=0.5, end=30.0, ended_by="callee", callee_class="ivr")])
    assert conv.outcome is Outcome.IVR_ONLY


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("cancelled", Outcome.ABANDONED),
        ("busy", Outcome.BUSY),
        ("no_answer", Outcome.NO_ANSWER),
        ("declined", Outcome.DECLINED),
        ("failed", Outcome.FAILED),
        ("in_progress", Outcome.IN_PROGRESS),
    ],
)
def test_unanswered_outcomes(result, outcome):
    conv = conversation_of([leg(ring=1, end=9, result=result)])
    assert conv.outcome is outcome
    assert conv.talk_seconds is None


def _day_of_calls():
    # waits of answered calls: 2, 4, 8, 12, 25, 70 s; talk 30..180; two abandons (3 s, 40 s)
    legs = []
    for i, (wait, talk) in enumerate([(2, 30), (4, 60), (8, 90), (12, 120), (25, 150), (70, 180)]):
        legs.append(
            leg(
                f"x{i}",
                f"c{i}",
                start=i * 600,
                ring=i * 600 + 1,
                answer=i * 600 + wait,
                end=i * 600 + wait + talk,
                ended_by="caller" if i % 2 else "callee",
                hold_seconds=20.0 if i == 0 else None,
                transferred=i == 5,
            )
        )
    legs.append(leg("y1", "d1", start=5000, ring=5001, end=5003, ended_by="caller"))
    legs.append(leg("y2", "d2", start=6000, ring=6001, end=6040, ended_by="caller"))
    legs.append(leg("z1", "e1", start=7000, end=7001, result="busy"))
    return conversations(legs)


def test_summary_by_hand():
    s = kpis.exact_summary(_day_of_calls(), service_level_seconds=20, short_abandon_seconds=5)
    assert s["offered"] == 9
    assert s["answered"] == 6
    assert s["answer_rate"] == pytest.approx(6 / 9)
    assert s["abandoned"] == 2
    assert s["abandoned_short"] == 1  # the 3-second one
    assert s["abandon_rate"] == pytest.approx(1 / 8)  # short abandons leave both sides
    assert s["busy"] == 1
    assert s["wait_mean"] == pytest.approx((2 + 4 + 8 + 12 + 25 + 70) / 6)
    assert s["wait_median"] == 8  # nearest rank: 3rd of 6
    assert s["wait_p90"] == 70  # 6th of 6
    assert s["service_level"] == pytest.approx(4 / 7)  # 4 within 20 s of 6 answered + 1 abandon
    assert s["ring_mean"] == pytest.approx((1 + 3 + 7 + 11 + 24 + 69 + 2 + 39) / 8)
    assert s["talk_mean"] == pytest.approx(105)
    assert s["talk_median"] == 90
    assert s["talk_p90"] == 180
    assert s["hold_mean"] == 20
    assert s["ended_by_caller"] == 3 and s["ended_by_callee"] == 3
    assert s["transferred"] == 1


def test_rollup_summary_uses_histogram_percentiles():
    convs = _day_of_calls()
    s = kpis.summarize(kpis.total_measures(convs))
    # waits 2,4 | 8 | 12 | 25 | 70 in buckets [0,3) [3,5) [5,10) [10,15) [20,30) [60,90)
    assert s["service_level"] == pytest.approx(4 / 7)
    assert s["abandoned_short"] == 1
    assert s["wait_median"] == pytest.approx(10.0)  # rank 3 ends bucket [5,10)
    assert s["wait_p90"] == pytest.approx(60 + 30 * 0.4)  # rank 5.4 inside [60,90)
    assert s["talk_mean"] == pytest.approx(105)


def test_thresholds_must_be_histogram_edges():
    with pytest.raises(ValueError) as err:
        kpis.summarize({}, service_level_seconds=25)
    assert str(err.value) == "threshold must be a histogram edge"


def test_repeat_callers_within_days():
    def call(cid, day, who):
        return conversation_of(
            [leg(cid, cid, start=day * 86400, answer=day * 86400 + 5, end=day * 86400 + 60,
                 caller_pseudonym=who)]
        )  # fmt: skip

    convs = [call("1", 0, "p"), call("2", 3, "p"), call("3", 11, "p"), call("4", 1, "q"),
             call("5", 2, "")]  # fmt: skip
    assert kpis.repeat_callers(convs, days=7) == {"2"}
    assert kpis.repeat_callers(convs, days=8) == {"2", "3"}


def test_peak_concurrent_calls():
    convs = conversations(
        [
            leg("a", "1", start=0, answer=1, end=100),
            leg("b", "2", start=50, answer=51, end=150),
            leg("c", "3", start=100, answer=101, end=200),  # starts as "a" ends: no overlap
            leg("d", "4", start=80, answer=81, end=90),
        ]
    )
    assert kpis.peak_concurrent(convs) == 3  # a, b, d around t=85
    by_minute = kpis.peak_concurrent_by_minute(convs)
    assert max(by_minute.values()) == 4  # per minute: a, b, c and d all touch 00:31


def test_mix_and_grouping():
    convs = conversations(
        [
            leg("a", "1", answer=3, end=60),
            leg("b", "2", answer=3, end=60, flow=Flow.OUTBOUND, caller_unit_id=7),
            leg("c", "3", answer=3, end=60, flow=Flow.WARD_HQ),
            leg("d", "4", start=3600, answer=3603, end=3660, unit=8),
        ]
    )
    mix = kpis.external_internal_mix(convs)
    assert mix["external"] == 3 and mix["internal_total"] == 1
    by_hour = kpis.grouped(convs, kpis.by_hour)
    assert by_hour[9]["offered"] == 3 and by_hour[10]["offered"] == 1
    by_top = kpis.grouped(convs, kpis.by_unit({7: 100, 8: 200}))
    assert by_top[100]["offered"] == 3 and by_top[200]["offered"] == 1
    assert kpis.grouped(convs, kpis.by_weekday)[0]["offered"] == 4  # Monday


def test_compare_two_periods():
    before = {"offered": 100.0, "abandon_rate": 0.2}
    after = {"offered": 80.0, "abandon_rate": 0.1}
    change = kpis.compare(before, after)
    assert change["offered"].delta == -20
    assert change["offered"].relative == pytest.approx(-0.2)
    assert change["abandon_rate"].delta == pytest.approx(-0.1)
