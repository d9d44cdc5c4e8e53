"""Audio oracle: a real baresip <-> baresip PCMU call, recorded and compared with what each
side sent (baresip's own WAV dumps). See testdata/generated/README.md."""

from __future__ import annotations

import hashlib
import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from callscope.audio.mix import interleave
from callscope.audio.opus import EncodedRecording, decode_ogg_opus, encode_call
from callscope.audio.packets import MediaPacket
from callscope.audio.timeline import CallAudio, render_call

from ._pcap_walk import rtp_packet, udp_datagrams

CAPTURE = "generated/baresip_call_pcmu_8s.pcap"
RATE = 8000


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


class Call:
    def __init__(self, testdata: Path) -> None:
        path = testdata / CAPTURE
        truth = json.loads(path.with_name(path.name + ".calls.json").read_text())
        self.t_invite = round(truth["calls"][0]["t_invite"] * 1e9)
        self.streams = {s["ssrc"]: s for s in truth["rtp_streams"]}
        datagrams = udp_datagrams(path)
        invite = next(d for d in datagrams if d.payload.startswith(b"INVITE "))
        text = invite.payload.decode()
        # the caller is the From of the INVITE; its SDP offer names the caller's media port
        caller_aor = re.search(r"^From:.*<sip:([^@>]+)@", text, re.M)
        port = re.search(r"^m=audio (\d+) ", text, re.M)
        addr = re.search(r"^c=IN IP4 (\S+)", text, re.M)
        assert caller_aor and port and addr
        self.caller_name = caller_aor.group(1)
        self.caller_media = f"{addr.group(1)}:{port.group(1)}"
        self.caller_to_callee: list[MediaPacket] = []
        self.callee_to_caller: list[MediaPacket] = []
        for d in datagrams:
            pkt = rtp_packet(d.at_ns, d.payload)
            if pkt is None or f"{pkt.ssrc:#010x}" not in self.streams:
                continue
            side = self.caller_to_callee if d.src == self.caller_media else self.callee_to_caller
            side.append(pkt)


@pytest.fixture(scope="module")
def call(testdata: Path) -> Call:
    return Call(testdata)


@pytest.fixture(scope="module")
def rendered(call: Call) -> CallAudio:
    result = render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite)
    assert isinstance(result, CallAudio)
    return result


@pytest.fixture(scope="module")
def encoded(rendered: CallAudio) -> EncodedRecording:
    return encode_call(rendered)


def test_caller_is_a_and_streams_split_by_direction(call: Call) -> None:
    assert call.caller_name == "a"
    assert call.caller_media == "127.0.0.1:11000"
    assert {p.ssrc for p in call.caller_to_callee} == {0x140D9524}  # A -> B (README)
    assert {p.ssrc for p in call.callee_to_caller} == {0xB7EE7BA4}
    assert len(call.caller_to_callee) == len(call.callee_to_caller) == 401


def best_lag(
    track: np.ndarray, reference: np.ndarray, expected: int, window: int
) -> tuple[int, float]:
    """Offset of ``reference`` in ``track`` within ``expected +- window`` that maximises the
    normalised cross-correlation, and that correlation."""
    lo = max(0, expected - window)
    lags = expected + window - lo + 1
    x = track[lo : expected + window + len(reference)].astype(np.float64)
    ref = reference.astype(np.float64)[: len(x) - lags + 1]
    dots = np.correlate(x, ref, mode="valid")
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    norms = np.sqrt(energy[len(ref) :] - energy[: -len(ref)]) * np.linalg.norm(ref)
    scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    best = int(np.argmax(scores))
    return lo + best, float(scores[best])


@pytest.mark.parametrize(("side", "channel", "wav"), [
    ("caller_to_callee", 0, "baresip_A_sent.wav"),
    ("callee_to_caller", 1, "baresip_B_sent.wav"),
])  # fmt: skip
def test_opus_recording_matches_what_each_party_sent(
    testdata: Path, call: Call, encoded: EncodedRecording, side: str, channel: int, wav: str
) -> None:
    decoded = decode_ogg_opus(encoded.data)
    assert decoded.sample_rate == RATE and decoded.pcm.shape == (encoded.frames, 2)
    sent = read_wav(testdata / "generated" / wav)
    # the sent WAV belongs at the arrival of the stream's first RTP packet
    first = getattr(call, side)[0].arrival_ns
    expected = (first - call.t_invite) * RATE // 1_000_000_000
    lag, score = best_lag(decoded.pcm[:, channel], sent, expected, RATE // 10)
    assert score >= 0.9
    assert abs(lag - expected) <= RATE // 50  # 20 ms
    # and the other party's voice is not in this channel
    _, leak = best_lag(decoded.pcm[:, 1 - channel], sent, expected, RATE // 50)
    assert leak < 0.3


def test_g711_track_matches_what_the_other_side_decoded(
    testdata: Path, call: Call, rendered: CallAudio
) -> None:
    # baresip B's decoder output of the A -> B stream: a third-party G.711 decoder (its table
    # differs from the ITU one by at most 2 LSB), minus the jitter buffer's last 100 ms
    received = read_wav(testdata / "generated/baresip_B_received.wav")
    first = call.caller_to_callee[0].arrival_ns
    expected = (first - call.t_invite) * RATE // 1_000_000_000
    lag, score = best_lag(rendered.caller, received, expected, RATE // 50)
    assert score > 0.9999
    diff = rendered.caller[lag : lag + len(received)].astype(int) - received
    assert np.abs(diff).max() <= 2


def test_recording_metadata(rendered: CallAudio, encoded: EncodedRecording) -> None:
    stereo = interleave(rendered.caller, rendered.callee)
    assert encoded.pcm_sha256 == hashlib.sha256(stereo.astype("<i2").tobytes()).hexdigest()
    assert (encoded.sample_rate, encoded.channels, encoded.kbps_per_channel) == (RATE, 2, 18)
    assert encoded.frames == rendered.frames
    assert encoded.duration_seconds == pytest.approx(8.03, abs=0.02)  # INVITE -> last packet
    assert encoded.size == len(encoded.data)
    kb_per_minute = encoded.size / 1024 / encoded.duration_seconds * 60
    assert kb_per_minute < 36 * 60 / 8 * 1.1  # within the 2 x 18 kbps budget (+ Ogg overhead)
