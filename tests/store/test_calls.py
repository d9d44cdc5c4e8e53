import datetime as dt

import pytest

from callscope.store.calls import CallToSave, Placement, save_call, save_calls
from callscope.store.models import Call, Stream


def record(**overrides):
    base = {
        "call_id": "a84b4c76e66710@pc33.atlanta.example.com",
        "conversation_id": "a84b4c76e66710@pc33.atlanta.example.com",
        "source": "pcap",
        "transport": "udp",
        "caller": {
            "number": "0781234567",
            "uri": "sip:0781234567@pbx",
            "display_name": "神戸 太郎",
        },
        "callee": {"number": "3100", "uri": "sip:3100@pbx", "display_name": None},
        "direction": "inbound",
        "started_at": "2026-04-01T00:15:02.123456Z",
        "ringing_at": "2026-04-01T00:15:02.223456Z",
        "answered_at": "2026-04-01T00:15:12.123456Z",
        "ended_at": "2026-04-01T00:18:12.123456Z",
        "result": "answered",
        "final_code": 200,
        "ended_by": "caller",
        "setup_seconds": 10.0,
        "ring_seconds": 9.9,
        "talk_seconds": 180.0,
        "hold_seconds": 0.0,
        "early_media": False,
        "streams": [
            {
                "direction": "caller_to_callee",
                "codec": "PCMU",
                "src": "192.0.2.1:4000",
                "dst": "192.0.2.2:5000",
                "ssrcs": [1, 2],
                "packets": 9000,
                "lost": 3,
                "first_at": "2026-04-01T00:15:12.200000Z",
                "last_at": "2026-04-01T00:18:12.000000Z",
            }
        ],
        "dtmf": [],
        "recording": {"status": "recorded"},
        "anomalies": [{"kind": "sip.parse", "count": 2}],
    }
    base.update(overrides)
    return base


@pytest.mark.django_db
def test_save_call_maps_the_contract_and_is_idempotent():
    call = save_call(record(), ladder=[{"label": "INVITE"}])
    assert call.caller_display == "神戸 太郎"
    assert call.started_at == dt.datetime(2026, 4, 1, 0, 15, 2, 123456, tzinfo=dt.UTC)
    assert call.anomaly_count == 2
    assert call.streams.get().ssrcs == [1, 2]
    again = save_call(record(result="answered", talk_seconds=181.0))
    assert again.pk == call.pk
    assert Call.objects.count() == 1
    assert Stream.objects.count() == 1
    assert Call.objects.get().talk_seconds == 181.0


@pytest.mark.django_db
def test_save_calls_inserts_new_legs_together_and_updates_a_leg_saved_before():
    first = save_call(record(), ladder=[{"label": "INVITE"}])
    imported_at = first.imported_at
    other = record(call_id="second@pbx", conversation_id="second@pbx", streams=[])
    saved = save_calls(
        [
            CallToSave(record(talk_seconds=175.0, hold_seconds=5.0)),
            CallToSave(other, placement=Placement(caller_class="mobile")),
        ]
    )
    updated, inserted = saved
    assert updated.call.pk == first.pk and updated.previous is not None
    assert updated.previous.talk_seconds == 180.0  # the row as it was, for the rollups
    assert inserted.previous is None and inserted.call.pk is not None
    assert Call.objects.count() == 2
    row = Call.objects.get(pk=first.pk)
    assert (row.talk_seconds, row.hold_seconds, row.imported_at) == (175.0, 5.0, imported_at)
    assert Stream.objects.filter(call=row).count() == 1  # replaced, not added
    assert Call.objects.get(call_id="second@pbx").caller_class == "mobile"


@pytest.mark.django_db
def test_save_calls_refuses_the_same_leg_twice():
    with pytest.raises(ValueError, match="twice"):
        save_calls([CallToSave(record()), CallToSave(record(talk_seconds=1.0))])
    assert not Call.objects.exists()
