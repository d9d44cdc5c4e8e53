"""Audio encode benchmark: times realtime per core and KB per call-minute.

Usage: .venv/bin/python bench/audio_encode.py [--seconds N] [--pesq]

A synthetic two-party conversation is built from the baresip speech in ../shared/testdata
(the caller and callee take turns, with pauses, like a real call), then:
  * callscope's stereo Ogg/Opus encode, narrowband (8 kHz) and wideband (16 kHz), at the
    default settings and at the former ones (complexity 10, 20 ms frames, 12 kbps/ch NB),
    against the peer measured in the same run: plain PyAV libopus in coupled stereo
    (mapping family 0) at the same total bitrate;
  * the whole per-recording path as the encoder worker runs it (ingest/encoder.py), on the
    conversation sent as PCMU and spooled: read spool -> timeline -> Opus/Ogg -> peaks ->
    AES-256-GCM container, stage by stage;
  * the after-hangup path on the real baresip PCMU capture (timeline + encode);
  * AES-256-GCM container encryption and a 64 KiB range read.
With --pesq, every narrowband complexity 0-10 is also scored (PESQ, the test-only `pesq`
package) on the source speech and on the recorded baresip call.
One process, one thread, CPU time (time.process_time): the figures are per core.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import tempfile
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

from callscope.audio import crypto, g711  # noqa: E402
from callscope.audio.mix import interleave  # noqa: E402
from callscope.audio.opus import (  # noqa: E402
    EncodedRecording,
    OpusSettings,
    encode_call,
    encode_stereo,
)
from callscope.audio.packets import Direction, MediaPacket  # noqa: E402
from callscope.audio.peaks import peaks_per_interval  # noqa: E402
from callscope.audio.spool import SpoolWriter, read_spool_file  # noqa: E402
from callscope.audio.timeline import CallAudio, render_call, resample  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
#: the settings before the encoder was tuned for speed (complexity 10, 20 ms, 12 kbps/ch NB)
FORMER = OpusSettings(
    narrowband_kbps=12, narrowband_complexity=10, wideband_complexity=10, frame_ms=20
)
PEAK_BUCKET_MS = 50  # as ingest/encoder.py stores them


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
    print(f"{'':44}{'x realtime':>11}{'KB/min':>9}")
    for rate, label in ((8000, "NB"), (16000, "WB")):
        left, right = conversation(seconds, rate)
        for which, settings in (("default", OpusSettings()), ("former", FORMER)):
            took, rec = timed(partial(encode_stereo, left, right, rate, settings), 5)
            name = f"callscope {label} {which} {describe(settings, rate)}"
            print(f"{name:44}{seconds / took:11.0f}{rec.size / 1024 / seconds * 60:9.1f}")
        kbps = OpusSettings().kbps_per_channel(rate)
        took_peer, data = timed(partial(peer_encode, left, right, rate, kbps))
        name = f"peer PyAV coupled {label} c10 20ms {kbps}k/ch"
        print(f"{name:44}{seconds / took_peer:11.0f}{len(data) / 1024 / seconds * 60:9.1f}")
    print(f"{'G.711 stereo (reference)':44}{'':11}{2 * 8000 * 60 / 1024:9.1f}")


def describe(settings: OpusSettings, rate: int) -> str:
    complexity, kbps = settings.complexity_for(rate), settings.kbps_per_channel(rate)
    return f"c{complexity} {settings.frame_ms}ms {kbps}k/ch"


def spooled_conversation(seconds: int, directory: Path) -> Path:
    """The conversation sent as 20 ms PCMU packets (0-3 ms arrival jitter), spooled."""
    left, right = conversation(seconds, 8000)
    start = 1_700_000_000 * 10**9
    jitter = np.random.default_rng(0).integers(0, 3_000_000, (seconds * 50, 2))
    writer = SpoolWriter.create(directory / "call.spool", "bench", start)
    for i in range(seconds * 50):
        for direction, track in enumerate((left, right)):
            payload = g711.ulaw_encode(track[i * 160 : (i + 1) * 160])
            at = start + 2 * 10**9 + i * 20_000_000 + int(jitter[i, direction])
            ssrc, ts = 0x1000 + direction, (1000 + i * 160) & 0xFFFFFFFF
            writer.append(direction, MediaPacket(at, ssrc, i & 0xFFFF, ts, 0, i == 0, payload))
    return writer.finish()


def bench_recording(seconds: int) -> None:
    """The per-recording path of ingest/encoder.py (without the database and the store)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = spooled_conversation(seconds, Path(tmp))
        print(f"\nWhole recording path, {seconds} s conversation spooled as PCMU, one core")
        for name, settings in (("default", OpusSettings()), ("former", FORMER)):
            stages, encoded = recording_stages(path, settings)
            total = sum(stages.values())
            length = encoded.duration_seconds  # INVITE to the last packet: 2 s ring + talk
            label = f"{name} {describe(settings, 8000)}"
            kb = encoded.size / 1024 / length * 60
            print(f"  {label:26}{length / total:6.0f} x realtime ({total * 1000:.0f} ms CPU"
                  f" for {length:.0f} s), {kb:.1f} KB/min")  # fmt: skip
            print(
                "    " + ", ".join(f"{k} {took * 1000:.1f}" for k, took in stages.items()) + " ms"
            )


def recording_stages(
    path: Path, settings: OpusSettings
) -> tuple[dict[str, float], EncodedRecording]:
    """CPU seconds of each step of `encode_recording` (best of several runs), the file."""
    stages: dict[str, float] = {}
    stages["read spool"], spool = timed(partial(read_spool_file, path), 5)
    stages["packets"], packets = timed(
        lambda: [
            spool.packets(d) for d in (Direction.CALLER_TO_CALLEE, Direction.CALLEE_TO_CALLER)
        ],
        5,
    )
    stages["timeline"], audio = timed(lambda: render_call(*packets, {}, spool.header.started_ns), 5)
    stages["Opus/Ogg"], encoded = timed(partial(encode_call, audio, settings), 5)
    stages["peaks"], _ = timed(
        lambda: peaks_per_interval(interleave(audio.caller, audio.callee), 8000, PEAK_BUCKET_MS), 5
    )
    key = crypto.new_data_key()
    stages["encrypt"], _ = timed(
        partial(crypto.encrypt, encoded.data, key, key_id="1-2.ogg.enc"), 5
    )
    return stages, encoded


def bench_pesq(seconds: int) -> None:
    """Narrowband complexity 0-10 at the default bitrate and frames: speed, size, PESQ."""
    # PESQ is a test-only dependency: imported only when asked for
    from tests.audio.test_pesq import opus_pesq, read_wav, through_g711  # noqa: PLC0415

    a = through_g711(read_wav(TESTDATA / "generated/baresip_A_source.wav")[0])
    b = through_g711(read_wav(TESTDATA / "generated/baresip_B_source.wav")[0])
    call = Call(TESTDATA)
    real = render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite)
    assert isinstance(real, CallAudio)
    left, right = (through_g711(track) for track in conversation(seconds, 8000))
    print(f"\nNarrowband settings, {seconds} s conversation through G.711; PESQ (P.862 nb)")
    print(f"{'':24}{'x realtime':>11}{'KB/min':>8}{'source A/B':>13}{'real call A/B':>15}")
    candidates = [dataclasses.replace(OpusSettings(), narrowband_complexity=c) for c in range(11)]
    for settings in [*candidates, FORMER]:
        took, rec = timed(partial(encode_stereo, left, right, 8000, settings))
        source = "/".join(f"{q:.2f}" for q in opus_pesq(a, b, settings))
        recorded = "/".join(f"{q:.2f}" for q in opus_pesq(real.caller, real.callee, settings))
        name = describe(settings, 8000)
        kb = rec.size / 1024 / seconds * 60
        print(f"{name:24}{seconds / took:11.0f}{kb:8.1f}{source:>13}{recorded:>15}")


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
    parser.add_argument("--pesq", action="store_true", help="score complexities 0-10 (slow)")
    args = parser.parse_args()
    bench_encode(args.seconds)
    bench_recording(args.seconds)
    bench_pipeline()
    bench_crypto()
    if args.pesq:
        bench_pesq(args.seconds)


if __name__ == "__main__":
    main()
