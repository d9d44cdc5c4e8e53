"""The synthetic city: a small run has the shapes a city hall's call log has."""

import datetime as dt

import pytest
from django.db.models import Sum

from callscope.analytics import kpis, orgindex, synth
from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup, UnitMap
from callscope.store.models import Call, DirectoryEntry, OrgUnit


@pytest.fixture(scope="module")
def city(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        report = synth.synth(years=1, calls_per_year=20_000, seed=7, end=dt.date(2025, 10, 1))
        yield report
        for model in (Rollup, MatrixRollup, LoadMinute, LoadHour, UnitMap, Call, DirectoryEntry):
            model.objects.all().delete()
        OrgUnit.objects.update(parent=None, top=None, department=None)
        OrgUnit.objects.all().delete()
        orgindex.invalidate()


def total(grain="m", scope="t", **filters):
    return Rollup.objects.filter(grain=grain, scope=scope, **filters).aggregate(
        **{name: Sum(name) for name in kpis.MEASURES}
    )


@pytest.mark.django_db
def test_volume_and_conversations(city):
    assert 17_000 < city.calls < 23_000
    assert city.conversations < city.calls  # ringing groups and IVR transfers add legs
    assert total()["offered"] == city.conversations
    assert city.rows_per_second > 0


@pytest.mark.django_db
def test_seasonal_weekly_and_daily_peaks(city):
    def month(m, y):
        return total(day=dt.date(y, m, 1))["offered"]

    assert month(4, 2025) > 1.25 * month(8, 2025)  # April moving season vs summer
    assert month(3, 2025) > 1.2 * month(8, 2025)
    by_hour = {h: total(grain="p", hour=h)["offered"] for h in (9, 12, 13, 17)}
    assert by_hour[9] > 2 * by_hour[12] and by_hour[13] > 2 * by_hour[12]
    assert by_hour[9] > 3 * by_hour[17]
    weekday = total(grain="p", weekday=1)["offered"]
    sunday = total(grain="p", weekday=6)["offered"]
    assert weekday > 20 * sunday


@pytest.mark.django_db
def test_waiting_talk_and_abandon_are_plausible(city):
    s = kpis.summarize(total(flow="inbound"))
    assert 0.03 < s["abandon_rate"] < 0.3
    assert 0.6 < s["answer_rate"] < 0.95
    assert 10 < s["wait_mean"] < 120
    assert 120 < s["talk_mean"] < 600
    assert s["abandoned_short"] > 0 and s["abandoned_ivr"] > 0 and s["ivr_only"] > 0
    assert s["repeat"] > 0
    assert 1.05 < s["legs_per_call"] < 2


@pytest.mark.django_db
def test_wards_and_hq_call_each_other(city):
    ward_hq = MatrixRollup.objects.filter(grain="m", scope="t", flow="ward_hq")
    assert ward_hq.aggregate(n=Sum("calls"))["n"] > 0.3 * total(flow="internal")["offered"]


@pytest.mark.django_db
def test_directory_gives_the_same_units_as_the_generator(city):
    orgindex.invalidate()
    sample = Call.objects.filter(direction="inbound").exclude(callee_unit=None)[:200]
    for call in sample:
        placement = orgindex.classify_call(call.caller_number, call.callee_number, call.started_at)
        assert placement.callee_unit.pk == call.callee_unit_id
        assert placement.callee_class == call.callee_class
    reorganised = OrgUnit.objects.filter(name="幼保連携課").get()
    assert reorganised.valid_from == dt.date(2025, 4, 1)
