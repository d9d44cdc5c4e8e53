"""Stereo Opus in Ogg (RFC 7845) through PyAV's libopus encoder, and the matching decoder.

The two channels are coded as two independent mono Opus streams (channel mapping family 255,
RFC 7845 5.1.1.4) rather than one coupled stereo stream: caller and callee are different
voices, and libopus' coupled stereo at 12 kbps per channel leaks one voice into the other
and drops PESQ from ~4.2 to ~2.6 (measured on the baresip speech). libopus runs in its
``voip`` application mode; the bitrate is per channel times two.

Speed and quality (docs/benchmarks.md, "Audio encoding"): nearly all the encode time is
libopus' SILK noise-shaping quantiser, and its cost is set by the complexity. Narrowband
uses complexity 1 (one quantiser state: ~3.5x faster than 10) at 18 kbps per channel,
which scores a higher PESQ than complexity 10 at 12 kbps. Wideband keeps complexity 10:
below 4 its PESQ (wb) drops from ~3.5 to ~2.4 at any bitrate measured. 60 ms frames
(RFC 6716 2.1.4) carry three SILK frames per packet: fewer packets, ~8% fewer bytes.

Bytes in, bytes out: writing the file is the caller's business.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av
import numpy as np
from numpy.typing import NDArray

from callscope.audio.errors import AudioEncodeError, AudioParseError
from callscope.audio.mix import Stereo, interleave
from callscope.audio.timeline import CallAudio

#: libopus accepts these input rates natively (RFC 6716 2)
OPUS_INPUT_RATES: Final = (8000, 12000, 16000, 24000, 48000)
#: frame durations the encoder may use (RFC 6716 2.1.4; 40 and 60 ms are SILK multi-frames)
OPUS_FRAME_MS: Final = (20, 40, 60)
_CHUNK_SECONDS: Final = 1  # samples handed to PyAV per call (it splits them into frames)


@dataclass(frozen=True, slots=True)
class OpusSettings:
    """Encoder settings; the defaults are the measured choice (see the module docstring)."""

    narrowband_kbps: int = 18  # per channel, for 8 kHz recordings
    wideband_kbps: int = 16  # per channel, for 12 kHz and up
    narrowband_complexity: int = 1  # libopus 0..10: lower is faster
    wideband_complexity: int = 10
    frame_ms: int = 60  # one of OPUS_FRAME_MS
    independent_channels: bool = True  # mapping family 255 (see module docstring)

    def kbps_per_channel(self, sample_rate: int) -> int:
        """The per-channel bitrate used for a recording at ``sample_rate``."""
        return self.narrowband_kbps if sample_rate <= 8000 else self.wideband_kbps

    def complexity_for(self, sample_rate: int) -> int:
        """The libopus complexity used for a recording at ``sample_rate``."""
        return self.narrowband_complexity if sample_rate <= 8000 else self.wideband_complexity


@dataclass(frozen=True, slots=True)
class EncodedRecording:
    """An Ogg/Opus file in memory and the facts the recording row stores about it."""

    data: bytes
    sample_rate: int  # rate of the PCM that was encoded (Opus itself decodes at 48 kHz)
    channels: int
    frames: int  # samples per channel
    pcm_sha256: str  # hex sha256 of the interleaved int16 little-endian PCM before Opus
    kbps_per_channel: int

    @property
    def duration_seconds(self) -> float:
        """Length of the audio in seconds (for the call-record contract)."""
        return self.frames / self.sample_rate

    @property
    def size(self) -> int:
        """Bytes of the Ogg file."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """PCM decoded from an Ogg/Opus file: ``pcm`` is ``(frames, channels)`` int16."""

    pcm: NDArray[np.int16]
    sample_rate: int


def pcm_sha256(stereo: Stereo) -> str:
    """Hex sha256 of interleaved int16 little-endian PCM (the recording's content hash)."""
    return hashlib.sha256(np.ascontiguousarray(stereo, dtype="<i2").tobytes()).hexdigest()


def encode_stereo(
    left: NDArray[np.int16],
    right: NDArray[np.int16],
    sample_rate: int,
    settings: OpusSettings | None = None,
) -> EncodedRecording:
    """Encode caller (left) and callee (right) tracks into stereo Ogg/Opus bytes."""
    settings = settings or OpusSettings()
    if sample_rate not in OPUS_INPUT_RATES:
        raise AudioEncodeError("sample rate not supported by Opus")
    if settings.frame_ms not in OPUS_FRAME_MS:
        raise AudioEncodeError("Opus frame duration must be 20, 40 or 60 ms")
    stereo = interleave(left, right)
    if len(stereo) == 0:
        raise AudioEncodeError("no audio to encode")
    kbps = settings.kbps_per_channel(sample_rate)
    try:
        data = _mux(stereo, sample_rate, kbps, settings)
    except av.FFmpegError as exc:
        raise AudioEncodeError("Opus encoding failed") from exc
    return EncodedRecording(data, sample_rate, 2, len(stereo), pcm_sha256(stereo), kbps)


def encode_call(call: CallAudio, settings: OpusSettings | None = None) -> EncodedRecording:
    """Encode a rendered call: caller left, callee right, at the call's recording rate."""
    return encode_stereo(call.caller, call.callee, call.sample_rate, settings)


def _mux(stereo: Stereo, rate: int, kbps: int, settings: OpusSettings) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="stereo")
        stream.bit_rate = kbps * 2 * 1000
        stream.codec_context.options = {
            "application": "voip",
            "frame_duration": str(settings.frame_ms),
            "compression_level": str(settings.complexity_for(rate)),
            "mapping_family": "255" if settings.independent_channels else "0",
        }
        step = rate * _CHUNK_SECONDS
        for start in range(0, len(stereo), step):
            chunk = np.ascontiguousarray(stereo[start : start + step]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def decode_ogg_opus(data: bytes, sample_rate: int | None = None) -> DecodedAudio:
    """Decode Ogg/Opus bytes to int16 PCM at ``sample_rate`` (default: the encoder's input
    rate from the OpusHead). Pre-skip and end trimming are applied, so a file made by
    `encode_stereo` decodes to exactly its input length, time-aligned."""
    try:
        return _demux(data, sample_rate)
    except (av.FFmpegError, IndexError, ValueError) as exc:
        raise AudioParseError("not a decodable Ogg/Opus file") from exc


def _demux(data: bytes, sample_rate: int | None) -> DecodedAudio:
    with av.open(io.BytesIO(data), "r", format="ogg") as container:
        stream = container.streams.audio[0]
        extradata = stream.codec_context.extradata or b""
        # RFC 7845 5.1: OpusHead = magic(8) version(1) channels(1) pre-skip(2) input rate(4)
        channels = extradata[9]
        rate = sample_rate or int.from_bytes(extradata[12:16], "little") or 48000
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        parts = [
            out.to_ndarray().reshape(-1, channels)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        parts += [out.to_ndarray().reshape(-1, channels) for out in resampler.resample(None)]
    if not parts:
        return DecodedAudio(np.zeros((0, channels), dtype=np.int16), rate)
    return DecodedAudio(np.concatenate(parts).astype(np.int16, copy=False), rate)
