import datetime as dt
from collections import namedtuple

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from callscope.console import health
from callscope.store import audit
from callscope.store.models import CaptureSample

from ._factory import attach_recording, make_call


def _samples(source, kind, minutes, *, drops_at=(), now=None, packets=6000):
    now = now or timezone.now()
    for m in range(minutes, 0, -1):
        CaptureSample.objects.create(
            source=source,
            kind=kind,
            at=now - dt.timedelta(minutes=m - 1),
            packets=packets + m,
            kernel_drops=25 if m in drops_at else 0,
            calls_in_progress=7,
            spool_backlog=3,
        )


@pytest.mark.django_db
def test_sources_series_and_totals():
    now = timezone.now()
    _samples("eth1", "live", 10, drops_at=(2,), now=now)
    _samples("hep-kamailio", "hep", 3, now=now)
    found = {s.source: s for s in health.sources(now)}
    eth = found["eth1"]
    assert len(eth.minutes) == 10 and eth.drops == 25
    assert eth.packets == sum(6000 + m for m in range(1, 11))
    assert eth.calls_in_progress == 7 and eth.spool_backlog == 3
    assert eth.minutes == sorted(eth.minutes, key=lambda m: m.at)
    assert found["hep-kamailio"].drops == 0
    spark = health.sparkline(eth)
    assert len(spark["bars"]) == 10 and sum(1 for b in spark["bars"] if b["drops_h"]) == 1


@pytest.mark.django_db
def test_banner_on_every_page_when_capture_drops(operator_client):
    _samples("eth1", "live", 3, drops_at=(1,))
    for url in (reverse("console:home"), reverse("console:search")):
        html = operator_client.get(url).content.decode()
        assert 'class="banner" role="alert"' in html
        assert "eth1" in html and "取りこぼし" in html


@pytest.mark.django_db
def test_no_banner_when_all_is_well(operator_client):
    _samples("eth1", "live", 3)
    html = operator_client.get(reverse("console:home")).content.decode()
    assert 'class="banner"' not in html


@pytest.mark.django_db
def test_banner_for_a_silent_source(operator_client):
    _samples("eth1", "live", 3, now=timezone.now() - dt.timedelta(minutes=20))
    html = operator_client.get(reverse("console:home")).content.decode()
    assert "eth1" in html and "報告がありません" in html


Usage = namedtuple("Usage", "total used free")


@pytest.mark.django_db
def test_disk_nearly_full_banner_and_days_left(operator_client, monkeypatch):
    call = make_call(timezone.now() - dt.timedelta(hours=1))
    attach_recording(call, seconds=1)
    size = call.recording.size
    monkeypatch.setattr(health.shutil, "disk_usage", lambda _p: Usage(1000 * size, 900 * size,
                                                                       50 * size))  # fmt: skip
    disk = health.disk(timezone.now())
    assert disk.used_fraction == 0.95
    assert disk.days_left == pytest.approx(50 * 7)  # one recording in 7 days
    cache.clear()
    html = operator_client.get(reverse("console:search")).content.decode()
    assert "録音ディスクの空きが少なくなっています（使用率 95%）" in html


def test_health_page(operator_client, db):
    now = timezone.now()
    _samples("eth1", "live", 5, drops_at=(1,), now=now)
    audit.record("retention_run", detail={"deleted": 12})
    html = operator_client.get(reverse("console:health")).content.decode()
    assert "取得状況" in html
    assert "eth1" in html and "ミラーポート" in html
    assert '<svg class="spark"' in html and 'class="dr"' in html
    assert "12 件削除" in html
    assert "保存できる残り日数" in html


def test_health_page_needs_login(client, db):
    assert client.get(reverse("console:health")).status_code == 302
