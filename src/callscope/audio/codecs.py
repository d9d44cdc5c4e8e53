"""The codec registry: SDP encoding name -> decoder class.

Every decoder turns one RTP payload into int16 mono samples at its `sample_rate` and knows
its RTP clock (`rtp_clock_rate`), so that the timeline can place a payload by its RTP
timestamp: ``sample offset = timestamp delta * samples_per_rtp_tick``. G.711 is a numpy
lookup table; G.722, G.729 and Opus are FFmpeg decoders through PyAV. Stateful decoders keep
their state across packets, so a decoder instance serves one SSRC segment only.

Comfort noise and telephone events are registered too, as non-audio kinds: the timeline
leaves their time silent (RFC 3389 noise is not synthesised; RFC 4733 tones are not audio).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from numpy.typing import NDArray

from callscope.audio import g711
from callscope.audio.errors import AudioDecodeError

Pcm = NDArray[np.int16]

_EMPTY: Final[Pcm] = np.zeros(0, dtype=np.int16)


class PayloadKind(enum.Enum):
    """What a payload type carries, which decides how the timeline treats it."""

    AUDIO = "audio"
    COMFORT_NOISE = "comfort_noise"  # RFC 3389: the gap it covers stays silent
    EVENT = "event"  # RFC 4733 telephone-event: excluded from the audio


class Decoder:
    """Base of the decoders: one instance per SSRC segment (codec state lives inside)."""

    encoding: ClassVar[str]
    #: sample rate of the decoded PCM
    sample_rate: ClassVar[int]
    #: RTP timestamp clock (RFC 3551 4.5 per codec; RFC 7587 4.1 for Opus)
    rtp_clock_rate: ClassVar[int]
    kind: ClassVar[PayloadKind] = PayloadKind.AUDIO

    @classmethod
    def samples_per_rtp_tick(cls) -> int:
        """Decoded samples per RTP timestamp unit (2 for G.722, 1 for the others)."""
        return cls.sample_rate // cls.rtp_clock_rate

    #: True when `is_wideband` depends on the payload (Opus), not only on the codec
    bandwidth_in_payload: ClassVar[bool] = False

    @classmethod
    def is_wideband(cls, payload: bytes) -> bool:
        """True when this payload carries audio above 4 kHz (needs a 16 kHz recording)."""
        return cls.sample_rate >= 16000

    def decode(self, payload: bytes) -> Pcm:
        """One RTP payload -> int16 mono samples; `AudioDecodeError` when undecodable."""
        raise NotImplementedError

    def decode_many(self, payloads: Sequence[bytes]) -> list[Pcm | None]:
        """Consecutive payloads in sequence order -> PCM per payload (None: undecodable)."""
        out: list[Pcm | None] = []
        for payload in payloads:
            try:
                out.append(self.decode(payload))
            except AudioDecodeError:
                out.append(None)
        return out


class _G711Decoder(Decoder):
    """Stateless G.711: one table lookup over all payloads of a segment at once."""

    sample_rate = 8000
    rtp_clock_rate = 8000
    _table: ClassVar[Pcm]

    def decode(self, payload: bytes) -> Pcm:
        return self._table[np.frombuffer(payload, dtype=np.uint8)]

    def decode_many(self, payloads: Sequence[bytes]) -> list[Pcm | None]:
        joined = self.decode(b"".join(payloads))
        out: list[Pcm | None] = []
        start = 0
        for payload in payloads:  # one sample per byte (G.711)
            out.append(joined[start : start + len(payload)])
            start += len(payload)
        return out


class PcmuDecoder(_G711Decoder):
    encoding = "PCMU"
    _table = g711.ULAW_TO_LINEAR


class PcmaDecoder(_G711Decoder):
    encoding = "PCMA"
    _table = g711.ALAW_TO_LINEAR


class _PyAvDecoder(Decoder):
    """An FFmpeg audio decoder context, fed one RTP payload per packet."""

    ffmpeg_codec: ClassVar[str]

    def __init__(self) -> None:
        ctx = cast(AudioCodecContext, av.CodecContext.create(self.ffmpeg_codec, "r"))
        ctx.sample_rate = self.sample_rate
        ctx.layout = "mono"
        self._ctx = ctx

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            return _EMPTY
        try:
            frames = self._ctx.decode(av.Packet(payload))
        except av.FFmpegError as exc:
            raise AudioDecodeError("payload could not be decoded") from exc
        parts = [_mono_int16(frame.to_ndarray()) for frame in frames]
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _mono_int16(samples: NDArray[np.generic]) -> Pcm:
    # frames are (channels, n) planar or (1, n * channels) packed; we ask for mono
    row = samples.reshape(-1)
    if row.dtype != np.int16:
        row = np.clip(np.rint(row.astype(np.float32) * 32768.0), -32768, 32767)
    return row.astype(np.int16, copy=False)


class G722Decoder(_PyAvDecoder):
    # RFC 3551 4.5.2: G.722 RTP clock is 8000 Hz although audio is sampled at 16 kHz
    encoding = "G722"
    ffmpeg_codec = "g722"
    sample_rate = 16000
    rtp_clock_rate = 8000


class G729Decoder(_PyAvDecoder):
    """G.729 / G.729A, with G.729 Annex B SID frames (RFC 3551 4.5.6) kept silent."""

    encoding = "G729"
    ffmpeg_codec = "g729"
    sample_rate = 8000
    rtp_clock_rate = 8000
    _FRAME: ClassVar[int] = 10  # bytes per 10 ms frame
    _SID: ClassVar[int] = 2  # bytes of an Annex B SID frame

    def decode(self, payload: bytes) -> Pcm:
        # RFC 3551 4.5.6: zero or more 10-byte frames, then zero or one 2-byte SID frame
        rest = len(payload) % self._FRAME
        if rest not in (0, self._SID):
            raise AudioDecodeError("payload could not be decoded")
        speech = super().decode(payload[: len(payload) - rest])
        if rest == 0:
            return speech
        return np.concatenate([speech, np.zeros(self.sample_rate // 100, dtype=np.int16)])


class OpusDecoder(_PyAvDecoder):
    # RFC 7587 4.1: the RTP clock is always 48000 whatever the audio bandwidth; libopus
    # decodes to 48 kHz and the timeline resamples to the recording rate
    encoding = "opus"
    ffmpeg_codec = "libopus"
    sample_rate = 48000
    rtp_clock_rate = 48000
    bandwidth_in_payload = True

    @classmethod
    def is_wideband(cls, payload: bytes) -> bool:
        return opus_bandwidth(payload) >= 8000


class ComfortNoiseDecoder(Decoder):
    """RFC 3389 comfort noise: the time it covers is left silent."""

    encoding = "CN"
    sample_rate = 8000
    rtp_clock_rate = 8000
    kind = PayloadKind.COMFORT_NOISE

    def decode(self, payload: bytes) -> Pcm:
        return _EMPTY


class TelephoneEventDecoder(Decoder):
    """RFC 4733 named events (DTMF): not audio; the DTMF log comes from the protocol layer."""

    encoding = "telephone-event"
    sample_rate = 8000
    rtp_clock_rate = 8000
    kind = PayloadKind.EVENT

    @classmethod
    def is_wideband(cls, payload: bytes) -> bool:
        return False

    def decode(self, payload: bytes) -> Pcm:
        return _EMPTY


#: encoding name as in an SDP rtpmap (upper-cased) -> decoder class
DECODERS: Final[dict[str, type[Decoder]]] = {
    "PCMU": PcmuDecoder,
    "PCMA": PcmaDecoder,
    "G722": G722Decoder,
    "G729": G729Decoder,
    "G729A": G729Decoder,  # G.729 Annex A is bitstream-compatible with G.729
    "G729B": G729Decoder,
    "G729AB": G729Decoder,
    "G.729": G729Decoder,
    "G.729A": G729Decoder,
    "OPUS": OpusDecoder,
    "CN": ComfortNoiseDecoder,
    "TELEPHONE-EVENT": TelephoneEventDecoder,
}


@dataclass(frozen=True, slots=True)
class UnsupportedCodec:
    """Result for an encoding no decoder exists for (recording status ``unsupported_codec``)."""

    encodings: tuple[str, ...]

    #: the recording status this result maps to in the call-record contract
    status: ClassVar[str] = "unsupported_codec"


def lookup_decoder(encoding: str) -> type[Decoder] | UnsupportedCodec:
    """The decoder class for an SDP encoding name (case-insensitive), or `UnsupportedCodec`."""
    found = DECODERS.get(encoding.upper())
    if found is None:
        return UnsupportedCodec((encoding,))
    return found


# RFC 6716 3.1: TOC config number -> audio bandwidth in Hz
_OPUS_BANDWIDTH: Final[tuple[int, ...]] = (
    (4000,) * 4
    + (6000,) * 4
    + (8000,) * 4  # SILK-only NB, MB, WB
    + (12000,) * 2
    + (20000,) * 2  # hybrid SWB, FB
    + (4000,) * 4
    + (8000,) * 4
    + (12000,) * 4
    + (20000,) * 4  # CELT-only NB, WB, SWB, FB
)


def opus_bandwidth(payload: bytes) -> int:
    """Audio bandwidth (Hz) an Opus packet's TOC byte announces; 0 for an empty payload."""
    if not payload:
        return 0
    return _OPUS_BANDWIDTH[payload[0] >> 3]
