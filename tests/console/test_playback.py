import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from callscope.audio import crypto
from callscope.audio.opus import decode_ogg_opus
from callscope.console.playback import MAX_RANGE_BYTES, ByteRange, RangeNotSatisfiable, parse_range
from callscope.store.models import AuditEntry

from ._factory import attach_recording, make_call

T0 = dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC)


def test_parse_range():
    assert parse_range("", 1000) is None
    assert parse_range("bytes=0-99", 1000) == ByteRange(0, 99)
    assert parse_range("bytes=900-", 1000) == ByteRange(900, 999)
    assert parse_range("bytes=990-2000", 1000) == ByteRange(990, 999)
    assert parse_range("bytes=-10", 1000) == ByteRange(990, 999)
    assert parse_range("bytes=-5000", 1000) == ByteRange(0, 999)
    assert parse_range("bytes=0-", 10 * MAX_RANGE_BYTES) == ByteRange(0, MAX_RANGE_BYTES - 1)
    assert parse_range("bytes=0-1,5-9", 1000) is None  # several ranges: whole file
    assert parse_range("items=0-1", 1000) is None
    assert parse_range("bytes=5-1", 1000) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 1000)


@pytest.fixture
def recorded(db):
    call = make_call(T0)
    plain = attach_recording(call, seconds=8.0, chunk_size=1024)
    return call, plain


def _url(call):
    return reverse("console:call_audio", args=[call.pk])


def test_range_request_returns_206_with_exact_bytes(listener_client, recorded):
    call, plain = recorded
    response = listener_client.get(_url(call), HTTP_RANGE="bytes=100-2099")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-2099/{len(plain)}"
    assert response["Content-Type"] == "audio/ogg"
    assert response["Accept-Ranges"] == "bytes"
    assert "no-store" in response["Cache-Control"]
    assert response.content == plain[100:2100]


def test_whole_file_without_range_is_the_decodable_ogg(listener_client, recorded):
    call, plain = recorded
    response = listener_client.get(_url(call))
    assert response.status_code == 200
    assert response.content == plain
    decoded = decode_ogg_opus(response.content)
    assert decoded.pcm.shape == (8 * 8000, 2)


def test_open_and_suffix_ranges(listener_client, recorded):
    call, plain = recorded
    tail = listener_client.get(_url(call), HTTP_RANGE="bytes=-100")
    assert tail.status_code == 206 and tail.content == plain[-100:]
    rest = listener_client.get(_url(call), HTTP_RANGE=f"bytes={len(plain) - 50}-")
    assert rest.content == plain[-50:]
    bad = listener_client.get(_url(call), HTTP_RANGE=f"bytes={len(plain)}-")
    assert bad.status_code == 416
    assert bad["Content-Range"] == f"bytes */{len(plain)}"


def test_only_the_chunks_covering_the_range_are_read(listener_client, recorded, monkeypatch):
    from callscope.store.audiostore import get_audio_store

    call, plain = recorded
    store = get_audio_store()
    reads = []
    real = store.read_at

    def counting(key, offset, length):
        reads.append((offset, length))
        return real(key, offset, length)

    monkeypatch.setattr(store, "read_at", counting)
    response = listener_client.get(_url(call), HTTP_RANGE="bytes=5000-5099")
    assert response.content == plain[5000:5100]
    chunk_reads = [r for r in reads if r[0] > 0]
    assert len(chunk_reads) == 1  # 5000..5099 sits in one 1 KiB chunk (of ~20)
    assert chunk_reads[0][1] == 1024 + crypto.TAG_SIZE


def test_one_audit_entry_per_listening(listener_client, recorded):
    call, plain = recorded
    for start in (0, 4000, len(plain) - 10, 0):
        listener_client.get(_url(call), HTTP_RANGE=f"bytes={start}-")
    entries = AuditEntry.objects.filter(action="playback")
    assert entries.count() == 1
    assert entries.get().target == f"call:{call.pk}"
    # another session is another listening
    other = Client()
    other.force_login(entries.get().actor)
    other.get(_url(call), HTTP_RANGE="bytes=0-")
    assert AuditEntry.objects.filter(action="playback").count() == 2


def test_no_audio_right_no_player_no_audio(operator_client, recorded):
    call, _plain = recorded
    assert operator_client.get(_url(call), HTTP_RANGE="bytes=0-").status_code in {403, 404}
    page = operator_client.get(reverse("console:call_detail", args=[call.pk])).content.decode()
    assert "<audio" not in page
    assert _url(call) not in page
    assert "聴取権限" in page
    assert not AuditEntry.objects.filter(action="playback").exists()


def test_listener_sees_the_player(listener_client, recorded):
    call, _plain = recorded
    page = listener_client.get(reverse("console:call_detail", args=[call.pk])).content.decode()
    assert f'src="{_url(call)}"' in page
    assert 'id="waveform"' in page and 'id="balance"' in page
    assert "player.js" in page


def test_anonymous_is_sent_to_login(client, recorded):
    call, _plain = recorded
    response = client.get(_url(call))
    assert response.status_code == 302


def test_deleted_recording_is_404(listener_client, recorded):
    call, _plain = recorded
    call.recording.deleted_at = dt.datetime.now(dt.UTC)
    call.recording.save()
    assert listener_client.get(_url(call)).status_code == 404
    page = listener_client.get(reverse("console:call_detail", args=[call.pk])).content.decode()
    assert "<audio" not in page


def test_tampered_recording_is_not_served(listener_client, recorded):
    from callscope.store.audiostore import get_audio_store

    call, _plain = recorded
    store = get_audio_store()
    key = call.recording.storage_key
    data = bytearray(store.read_at(key, 0, store.size(key)))
    data[3000] ^= 1
    store.put(key, bytes(data))
    assert listener_client.get(_url(call), HTTP_RANGE="bytes=2900-3100").status_code == 404
