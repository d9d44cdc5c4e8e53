"""`callscope import` end to end: capture file -> call log rows -> encrypted recordings."""

import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from django.core.management import call_command

from callscope.audio.opus import decode_ogg_opus
from callscope.store.models import Call, Recording
from callscope.store.recordings import OpenRecording
from tests.audio.test_oracle import best_lag, read_wav

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2].parent / "shared/contracts/call-record.schema.json"
    ).read_text(encoding="utf-8")
)
RATE = 8000


def run_import(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("import", *args, "--json", "--workers", "1", stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.django_db
def test_baresip_call_is_recorded_and_sounds_like_each_side(testdata):
    capture = testdata / "generated/baresip_call_pcmu_8s.pcap"
    (record,) = run_import(str(capture))
    jsonschema.validate(record, SCHEMA)
    assert record["result"] == "answered" and record["ended_by"] == "caller"
    assert record["recording"]["status"] == "recorded"
    assert record["recording"]["channels"] == 2
    call = Call.objects.get()
    recording = Recording.objects.get(call=call)
    assert recording.state == Recording.State.DONE
    assert recording.wrapped_key and recording.pcm_sha256 and recording.peaks
    opened = OpenRecording(recording)
    ogg = opened.read()
    assert ogg.startswith(b"OggS")
    assert opened.read(100, 5000) == ogg[100:5000]  # ranged decryption
    pcm = decode_ogg_opus(ogg).pcm
    truth = json.loads(capture.with_name(capture.name + ".calls.json").read_text())
    t_invite = truth["calls"][0]["t_invite"]
    first = {s["src"]: s["t_first"] for s in truth["rtp_streams"]}
    for channel, wav, src in ((0, "baresip_A_sent.wav", "127.0.0.1:11000"),
                              (1, "baresip_B_sent.wav", "127.0.0.1:12010")):  # fmt: skip
        sent = read_wav(testdata / "generated" / wav)
        expected = round((first[src] - t_invite) * RATE)
        lag, score = best_lag(pcm[:, channel], sent, expected, RATE // 10)
        assert score >= 0.9, (wav, score)
        assert abs(lag - expected) <= RATE // 50, (wav, lag, expected)  # 20 ms
    assert np.abs(pcm).max() > 1000
    assert not list((Path(recording.spool_path or "/nonexistent")).parent.glob("*.spool*"))


@pytest.mark.django_db
def test_import_twice_updates_instead_of_duplicating(testdata):
    capture = str(testdata / "generated/sipp_20calls_g711a_dtmf.pcap")
    first = run_import(capture, "--no-audio")
    assert len(first) == 20
    assert all(r["recording"] is None for r in first)
    for record in first:
        jsonschema.validate(record, SCHEMA)
        assert [d["digit"] for d in record["dtmf"]] == ["1"]
    again = run_import(capture, "--no-audio")
    assert len(again) == 20
    assert Call.objects.count() == 20


@pytest.mark.django_db
def test_truncated_capture_keeps_every_complete_call(testdata, tmp_path):
    data = (testdata / "generated/baresip_call_pcmu_8s.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    err = io.StringIO()
    out = io.StringIO()
    call_command("import", str(cut), "--json", "--no-audio", stdout=out, stderr=err)
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert "truncated capture" in err.getvalue()
    # answered before the cut, its BYE is beyond it: answered, never an invented end
    assert record["result"] == "answered"
    assert record["ended_at"] is None
    assert record["talk_seconds"] is None


@pytest.mark.django_db
def test_a_file_that_is_not_a_capture_is_reported(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a capture", encoding="utf-8")
    with pytest.raises(Exception, match="could not be read"):
        call_command("import", str(bogus), stdout=io.StringIO(), stderr=io.StringIO())
