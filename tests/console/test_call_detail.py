import datetime as dt

import pytest
from django.urls import reverse

from callscope.store.models import AuditEntry

from ._factory import make_call

T0 = dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def transferred(db):
    first = make_call(
        T0,
        conversation_id="conv-x",
        dtmf=[{"digit": "5", "direction": "caller_to_callee",
               "at": "2024-05-01T00:00:12.500000Z", "method": "rfc4733"}],
        transfer={"method": "refer", "target": "sip:0783339999@pbx",
                  "related_call_ids": ["leg-2@test"]},
        anomalies=[{"kind": "rtp_ssrc_change", "count": 2}],
    )  # fmt: skip
    second = make_call(
        T0 + dt.timedelta(seconds=30), conversation_id="conv-x", call_id="leg-2@test"
    )
    return first, second


def test_detail_shows_everything_in_japanese(operator_client, transferred):
    first, second = transferred
    response = operator_client.get(reverse("console:call_detail", args=[first.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="ja"' in html
    # timings: waiting 0:05, ring 0:05 (4.8 s), talk 1:00
    assert "待ち時間" in html and "0:05" in html and "1:00" in html
    # ladder as SVG with the SIP messages and their offsets
    assert '<svg id="ladder"' in html
    for label in ("INVITE", "180 Ringing", "200 OK", "ACK", "BYE"):
        assert f">{label}<" in html or f">{label} <" in html
    assert 'data-t="65.000"' in html  # BYE at answer + 60 s
    # quality per direction
    assert "発信者→着信者" in html and "2990" in html and "0.3%" in html
    # DTMF, transfer (masked target), other legs, anomalies
    assert "+12.50 s" in html
    assert "078-***-9999" in html and "0783339999" not in html
    assert reverse("console:call_detail", args=[second.pk]) in html
    assert "rtp_ssrc_change" in html
    assert "078-***-5678" in html  # the caller, masked for an operator
    assert "Yamada" not in html  # display names only with the number right
    assert AuditEntry.objects.filter(action="call_view", target=f"call:{first.pk}").exists()


def test_manager_sees_full_numbers_and_it_is_audited(manager_client, transferred):
    first, _second = transferred
    html = manager_client.get(reverse("console:call_detail", args=[first.pk])).content.decode()
    assert "078-321-5678" in html and "Yamada" in html
    entry = AuditEntry.objects.get(action="number_view")
    assert f"call:{first.pk}" in entry.detail["targets"]


def test_call_without_ladder_or_media(operator_client, db):
    call = make_call(T0, ladder=False, streams=[], result="cancelled", answered_at=None,
                     talk_seconds=None, recording=None)  # fmt: skip
    html = operator_client.get(reverse("console:call_detail", args=[call.pk])).content.decode()
    assert "SIPメッセージは保存されていません" in html
    assert "音声パケットは見つかりませんでした" in html
    assert "録音はありません" in html


def test_missing_call_is_404(operator_client, db):
    assert operator_client.get(reverse("console:call_detail", args=[999999])).status_code == 404


def test_english_on_request(operator_client, transferred):
    first, _second = transferred
    operator_client.post(reverse("console:set_language"), {"language": "en", "next": "/"})
    html = operator_client.get(reverse("console:call_detail", args=[first.pk])).content.decode()
    assert 'lang="en"' in html and "Waiting time" in html


def test_long_waveforms_are_reduced_to_an_overview():
    from callscope.console.calls import overview_peaks

    caller = bytes([1, 2, 3, 4] * 1000)  # 4000 buckets
    callee = bytes([9, 0, 0, 0] * 1000)
    reduced = overview_peaks(caller + callee, 2, limit=1000)
    assert len(reduced) == 2000
    assert reduced[:1000] == bytes([4] * 1000) and reduced[1000:] == bytes([9] * 1000)
    short = bytes(range(10))
    assert overview_peaks(short, 2, limit=1000) == short
