"""Audio encode benchmark: times realtime per core and KB per call-minute.

Usage: .venv/bin/python bench/audio_encode.py [--minutes N]

A synthetic two-party conversation is built from the baresip speech in ../shared/testdata
(the caller and callee take turns, with pauses, like a real call), then:
  * callscope's stereo Ogg/Opus encode, narrowband (8 kHz, 12 kbps/ch) and wideband
    (16 kHz, 16 kbps/ch), against the peer measured in the same run: plain PyAV libopus in
    coupled stereo (mapping family 0) at the same total bitrate;
  * the whole after-hangup path on the real baresip PCMU capture (timeline + encode);
  * AES-256-GCM container encryption and a 64 KiB range read.
One process, one thread, CPU time (time.process_time): the figures are per core.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import wave
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.audio.test_oracle import Call  # noqa: E402  (the test-local pcap walker)

from callscope.audio import crypto  # noqa: E402
from callscope.audio.mix import interleave  # noqa: E402
from callscope.audio.opus import OpusSettings, encode_call, encode_stereo  # noqa: E402
from callscope.audio.timeline import CallAudio, render_call, resample  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def conversation(seconds: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Caller and callee tracks taking turns (speech, 0.7 s pause, the other's speech...)."""
    a = read_wav(TESTDATA / "generated/baresip_A_source.wav")
    b = read_wav(TESTDATA / "generated/baresip_B_source.wav")
    b = b[: int(np.nonzero(np.abs(b) > 100)[0][-1]) + 800]
    if rate != 8000:
        a, b = resample(a, 8000, rate), resample(b, 8000, rate)
    total = seconds * rate
    left, right = np.zeros(total, np.int16), np.zeros(total, np.int16)
    pos, turn = rate // 2, 0
    while pos < total:
        speech = a if turn == 0 else b
        track = left if turn == 0 else right
        end = min(total, pos + len(speech))
        track[pos:end] = speech[: end - pos]
        pos, turn = end + rate * 7 // 10, 1 - turn
    return left, right


def peer_encode(left: np.ndarray, right: np.ndarray, rate: int, kbps: int) -> bytes:
    """The obvious PyAV way: coupled stereo libopus, same total bitrate, 20 ms frames."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate, layout="stereo")
        stream.bit_rate = kbps * 2000
        stream.codec_context.options = {"application": "voip", "frame_duration": "20"}
        stereo = interleave(left, right)
        for start in range(0, len(stereo), rate):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[start : start + rate]).reshape(1, -1),
                format="s16",
                layout="stereo",
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def timed(fn, repeat: int = 3):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()  # CPU time: per core, and fair on a busy machine
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def bench_encode(seconds: int) -> None:
    print(f"Stereo Ogg/Opus encode, {seconds} s two-party conversation, one core")
    print(f"{'':34}{'x realtime':>12}{'KB/min':>10}")
    for rate, label in ((8000, "narrowband 8 kHz"), (16000, "wideband 16 kHz")):
        left, right = conversation(seconds, rate)
        kbps = OpusSettings().kbps_per_channel(rate)
        for complexity in (10, 5):
            settings = OpusSettings(complexity=complexity)
            took, rec = timed(partial(encode_stereo, left, right, rate, settings))
            name = f"callscope {label} c{complexity} {kbps}k/ch"
            print(f"{name:34}{seconds / took:12.0f}{rec.size / 1024 / seconds * 60:10.1f}")
        took_peer, data = timed(partial(peer_encode, left, right, rate, kbps))
        name = f"peer PyAV coupled {label}"
        print(f"{name:34}{seconds / took_peer:12.0f}{len(data) / 1024 / seconds * 60:10.1f}")
    print(f"{'G.711 stereo (reference)':34}{'':12}{2 * 8000 * 60 / 1024:10.1f}")


def bench_pipeline() -> None:
    call = Call(TESTDATA)

    def run() -> int:
        rendered = render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite)
        assert isinstance(rendered, CallAudio)
        return encode_call(rendered).size

    took, size = timed(run, 5)
    seconds = 8.03
    render_took, _ = timed(
        lambda: render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite), 5
    )
    print(f"\nAfter hangup, baresip PCMU call ({seconds} s, 802 packets):")
    print(f"  timeline only      {seconds / render_took:8.0f} x realtime")
    print(f"  timeline + encode  {seconds / took:8.0f} x realtime, {size} bytes")


def bench_crypto() -> None:
    plain = np.random.default_rng(0).integers(0, 256, 64 * 1024 * 1024, np.uint8).tobytes()
    key = crypto.new_data_key()
    took, sealed = timed(lambda: crypto.encrypt(plain, key, key_id="bench"), 3)
    read_at = crypto.bytes_reader(sealed)
    range_took, _ = timed(lambda: crypto.decrypt_range(read_at, 10_000_000, 10_065_536, key), 20)
    print("\nAES-256-GCM container (64 KiB chunks):")
    print(f"  encrypt {len(plain) / took / 2**30:8.2f} GiB/s")
    print(f"  64 KiB range read {range_took * 1e6:8.0f} us (2 chunks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    bench_encode(args.seconds)
    bench_pipeline()
    bench_crypto()


if __name__ == "__main__":
    main()
