"""Speech quality of the stored recording: Opus at the default narrowband settings (18 kbps
per channel, complexity 1, 60 ms frames) against G.711-decoded speech, measured with ITU-T
P.862 PESQ (the `pesq` package). The design asks for 4.0; the tests hold 4.05 as margin."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
from pesq import pesq

from callscope.audio import g711
from callscope.audio.opus import OpusSettings, decode_ogg_opus, encode_stereo
from callscope.audio.timeline import CallAudio, render_call, resample

from .test_oracle import Call

RATE = 8000
DESIGN_PESQ = 4.0
MARGIN = 0.05


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def through_g711(pcm: np.ndarray) -> np.ndarray:
    return g711.ulaw_decode(g711.ulaw_encode(pcm))


def opus_pesq(
    left: np.ndarray, right: np.ndarray, settings: OpusSettings | None = None
) -> tuple[float, float]:
    frames = max(len(left), len(right))
    left, right = np.pad(left, (0, frames - len(left))), np.pad(right, (0, frames - len(right)))
    decoded = decode_ogg_opus(encode_stereo(left, right, RATE, settings).data).pcm
    return (
        pesq(RATE, left, decoded[:, 0], "nb"),
        pesq(RATE, right, decoded[:, 1], "nb"),
    )


def test_speech_sources_keep_pesq_above_4(testdata: Path) -> None:
    a, rate_a = read_wav(testdata / "generated/baresip_A_source.wav")
    b, rate_b = read_wav(testdata / "generated/baresip_B_source.wav")
    assert rate_a == rate_b == RATE
    left, right = opus_pesq(through_g711(a), through_g711(b))
    assert min(left, right) >= DESIGN_PESQ + MARGIN  # measured 4.30 / 4.31


def test_recorded_call_pesq(testdata: Path) -> None:
    # the reference is the G.711 audio exactly as the timeline decoded it from the pcap.
    # Measured at the defaults: 4.25 (caller) / 4.11 (callee); complexity 10 at the former
    # 12 kbps and 20 ms frames gave 4.11 / 3.98, complexity 1 at 12 kbps 3.80 / 3.47.
    call = Call(testdata)
    rendered = render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite)
    assert isinstance(rendered, CallAudio)
    left, right = opus_pesq(rendered.caller, rendered.callee)
    assert min(left, right) >= DESIGN_PESQ + MARGIN


def test_espeak_speech_against_the_caller_keeps_pesq_above_4(
    testdata: Path, tmp_path: Path
) -> None:
    out = tmp_path / "speech.wav"
    text = "Good morning, this is the ward office. How can I help you with your application?"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True)
    speech, rate = read_wav(out)
    callee = through_g711(resample(speech, rate, RATE))
    caller = through_g711(read_wav(testdata / "generated/baresip_A_source.wav")[0])
    left, right = opus_pesq(caller, callee)
    assert min(left, right) >= DESIGN_PESQ + MARGIN


def test_pesq_can_fail_at_a_starved_bitrate(testdata: Path) -> None:
    # guards the measurement itself: a bitrate far below the design scores clearly worse
    a = through_g711(read_wav(testdata / "generated/baresip_A_source.wav")[0])
    encoded = encode_stereo(a, a, RATE, OpusSettings(narrowband_kbps=6))
    decoded = decode_ogg_opus(encoded.data).pcm
    assert pesq(RATE, a, decoded[:, 0], "nb") < 3.8
