"""Payloads -> PCM on the call timeline, one mono track per direction.

Theory of operation. The recording's sample ``i`` is the instant ``call_start_ns + i / rate``
(the INVITE is sample 0), so both directions line up and the ring time is leading silence.

1. Packets are grouped into *streams* by (SSRC, codec). Telephone events (RFC 4733) and
   comfort noise (RFC 3389) are counted and dropped: their time stays silent. Payload types
   come from the SDP map, then from the RFC 3551 static table.
2. Within a stream, sequence numbers (16 bit) and RTP timestamps (32 bit) are unwrapped in
   arrival order (RFC 3550 A.1). A packet belongs to a *segment* whose anchor predicts its
   arrival from its RTP timestamp within `SEGMENT_TOLERANCE_NS`; otherwise it starts a new
   segment (new SSRC, timestamp jump, sender restarting after hold). Each segment is anchored
   on the least-delayed of its first `ANCHOR_PACKETS` packets, so jitter on the very first
   packet does not shift the whole segment.
3. A segment is decoded by one decoder in sequence order (the reorder buffer is the whole
   segment: this runs after hangup), duplicates dropped, each payload placed at its RTP
   timestamp; gaps (loss, silence suppression) stay zero. The segment is resampled once to
   the recording rate (FFmpeg swresample, delay-compensated).
4. Segments are laid on the track in start order; a sample already written is never
   overwritten or added to, so overlapping segments cannot double the audio.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Final

import av
import numpy as np
from numpy.typing import NDArray

from callscope.audio.codecs import Decoder, PayloadKind, Pcm, UnsupportedCodec, lookup_decoder
from callscope.audio.packets import MediaPacket, PayloadTypeMap, payload_format

NARROWBAND_RATE: Final = 8000
WIDEBAND_RATE: Final = 16000
#: how far a packet's arrival may stray from its RTP-timestamp time before it opens a segment
SEGMENT_TOLERANCE_NS: Final = 1_000_000_000
#: the segment anchor is the least-delayed of this many first packets (in arrival order)
ANCHOR_PACKETS: Final = 16
#: longest recording rendered; later audio is dropped and `DirectionStats.clipped` is set
MAX_RECORDING_NS: Final = 4 * 3600 * 1_000_000_000
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class DirectionStats:
    """What happened to one direction's packets (for the recording row and anomalies)."""

    packets: int = 0
    decoded: int = 0
    duplicates: int = 0
    lost: int = 0
    decode_errors: int = 0
    not_audio: int = 0
    unsupported: int = 0
    segments: int = 0
    clipped: bool = False
    unsupported_encodings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DirectionAudio:
    """One direction rendered on the call timeline: mono int16 at ``sample_rate``."""

    pcm: Pcm
    sample_rate: int
    stats: DirectionStats


@dataclass(frozen=True, slots=True)
class CallAudio:
    """Both directions on one timeline; caller is the left channel, callee the right."""

    sample_rate: int
    caller: Pcm
    callee: Pcm
    caller_stats: DirectionStats
    callee_stats: DirectionStats

    @property
    def frames(self) -> int:
        """Samples per channel (both tracks have this length)."""
        return len(self.caller)

    @property
    def has_audio(self) -> bool:
        """True when at least one packet was decoded in either direction."""
        return self.caller_stats.decoded + self.callee_stats.decoded > 0


@dataclass(slots=True)
class _Segment:
    anchor_ns: int  # provisional: arrival of the first packet
    ts_ref: int  # extended RTP timestamp of the first packet
    entries: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # seq, ts, at, pl


@dataclass(slots=True)
class _Stream:
    decoder: type[Decoder]
    last_seq: int
    last_ts: int
    segments: list[_Segment] = field(default_factory=list)


@dataclass(slots=True)
class _Counts:
    packets: int = 0
    not_audio: int = 0
    unsupported: int = 0
    outside: int = 0  # arrived outside the recording window
    encodings: set[str] = field(default_factory=set)


def _unwrap(last: int, value: int, bits: int) -> int:
    # RFC 3550 A.1: the nearest extension of a wrapped counter to the previous value
    mod = 1 << bits
    delta = (value - last) % mod
    if delta >= mod >> 1:
        delta -= mod
    return last + delta


def _classify(
    payload_type: int, payload_types: PayloadTypeMap, counts: _Counts
) -> type[Decoder] | None:
    fmt = payload_format(payload_type, payload_types)
    if fmt is None:
        counts.encodings.add("pt" + str(payload_type))
        return None
    found = lookup_decoder(fmt.encoding)
    if isinstance(found, UnsupportedCodec):
        counts.encodings.update(found.encodings)
        return None
    return found


def _segments(
    packets: Iterable[MediaPacket],
    payload_types: PayloadTypeMap,
    counts: _Counts,
    window: tuple[int, int],
) -> list[tuple[type[Decoder], _Segment]]:
    streams: dict[tuple[int, type[Decoder]], _Stream] = {}
    decoders: dict[int, type[Decoder] | None] = {}
    for at, ssrc, seq16, ts32, pt, _, payload in sorted(packets, key=itemgetter(0)):
        counts.packets += 1
        if not window[0] <= at <= window[1]:
            # bounds memory: a segment's audio lies within the tolerance of its arrivals
            counts.outside += 1
            continue
        if pt not in decoders:
            decoders[pt] = _classify(pt, payload_types, counts)
        decoder = decoders[pt]
        if decoder is None:
            counts.unsupported += 1
            continue
        if decoder.kind is not PayloadKind.AUDIO:
            counts.not_audio += 1
            continue
        stream = streams.get((ssrc, decoder))
        if stream is None:
            stream = streams[(ssrc, decoder)] = _Stream(decoder, seq16, ts32)
        seq = stream.last_seq = _unwrap(stream.last_seq, seq16, 16)
        ts = stream.last_ts = _unwrap(stream.last_ts, ts32, 32)
        clock = decoder.rtp_clock_rate
        for seg in reversed(stream.segments):
            predicted = seg.anchor_ns + (ts - seg.ts_ref) * _NS // clock
            if abs(at - predicted) <= SEGMENT_TOLERANCE_NS:
                break
        else:
            seg = _Segment(at, ts)
            stream.segments.append(seg)
        seg.entries.append((seq, ts, at, payload))
    return [(s.decoder, seg) for s in streams.values() for seg in s.segments]


@dataclass(slots=True)
class _Placed:
    start: int  # sample index on the recording timeline (may be negative)
    pcm: Pcm
    mask: NDArray[np.bool_]


def _decode_segment(
    decoder_cls: type[Decoder], seg: _Segment, call_start_ns: int, rate: int, tally: dict[str, int]
) -> _Placed | None:
    clock = decoder_cls.rtp_clock_rate
    # anchor on the least-delayed of the first packets (arrival order = entries order)
    anchor = min(
        at - (ts - seg.ts_ref) * _NS // clock for _, ts, at, _ in seg.entries[:ANCHOR_PACKETS]
    )
    ordered = sorted(seg.entries, key=lambda e: e[0])
    unique = [e for i, e in enumerate(ordered) if i == 0 or e[0] != ordered[i - 1][0]]
    tally["duplicates"] += len(ordered) - len(unique)
    tally["lost"] += unique[-1][0] - unique[0][0] + 1 - len(unique)
    ts_min = min(e[1] for e in unique)
    tick = decoder_cls.samples_per_rtp_tick()
    decoded = decoder_cls().decode_many([e[3] for e in unique])
    pieces = [
        ((e[1] - ts_min) * tick, pcm)
        for e, pcm in zip(unique, decoded, strict=True)
        if pcm is not None
    ]
    tally["decoded"] += len(pieces)
    tally["decode_errors"] += len(unique) - len(pieces)
    length = max((pos + len(pcm) for pos, pcm in pieces), default=0)
    if length == 0:
        return None
    native, written = _place(pieces, length)
    if decoder_cls.sample_rate != rate:
        native = resample(native, decoder_cls.sample_rate, rate)
        picks = np.arange(len(native), dtype=np.int64) * decoder_cls.sample_rate // rate
        written = written[np.minimum(picks, length - 1)]
    start_ns = anchor + (ts_min - seg.ts_ref) * _NS // clock - call_start_ns
    return _Placed(start_ns * rate // _NS, native, written)


def _place(pieces: Sequence[tuple[int, Pcm]], length: int) -> tuple[Pcm, NDArray[np.bool_]]:
    # pieces in sequence order at their sample offsets; a later piece overwrites an earlier
    native = np.zeros(length, dtype=np.int16)
    written = np.zeros(length, dtype=np.bool_)
    starts = np.fromiter((pos for pos, _ in pieces), dtype=np.int64, count=len(pieces))
    ends = starts + np.fromiter((len(pcm) for _, pcm in pieces), dtype=np.int64, count=len(pieces))
    if not np.all(starts[1:] >= ends[:-1]):  # overlapping timestamps: piece by piece
        for pos, pcm in pieces:
            native[pos : pos + len(pcm)] = pcm
            written[pos : pos + len(pcm)] = True
        return native, written
    # the usual case: runs of back-to-back packets (broken by loss or silence suppression),
    # each written with one slice instead of two per packet
    bounds = [0, *(np.flatnonzero(starts[1:] != ends[:-1]) + 1).tolist(), len(pieces)]
    for first, stop in itertools.pairwise(bounds):
        lo, hi = int(starts[first]), int(ends[stop - 1])
        native[lo:hi] = np.concatenate([pcm for _, pcm in pieces[first:stop]])
        written[lo:hi] = True
    return native, written


def resample(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """Resample mono int16 with FFmpeg's swresample; output length ``n * to / from``."""
    if from_rate == to_rate or len(pcm) == 0:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = from_rate
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    out = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)
    want = len(pcm) * to_rate // from_rate
    if len(out) >= want:
        return out[:want]
    return np.concatenate([out, np.zeros(want - len(out), dtype=np.int16)])


def _lay(placed: Sequence[_Placed], limit: int) -> tuple[Pcm, bool]:
    # first writer wins: a sample is never overwritten or summed (no doubled audio)
    ends = [min(p.start + len(p.pcm), limit) for p in placed]
    track = np.zeros(max([0, *ends]), dtype=np.int16)
    taken = np.zeros(len(track), dtype=np.bool_)
    clipped = False
    for p, end in zip(placed, ends, strict=True):
        lo = max(p.start, 0)
        clipped = clipped or lo > p.start or end < p.start + len(p.pcm)
        if end <= lo:
            continue
        src = slice(lo - p.start, end - p.start)
        free = p.mask[src] & ~taken[lo:end]
        track[lo:end][free] = p.pcm[src][free]
        taken[lo:end] |= free
    return track, clipped


def render_direction(
    packets: Iterable[MediaPacket],
    payload_types: PayloadTypeMap,
    call_start_ns: int,
    sample_rate: int,
    *,
    max_duration_ns: int = MAX_RECORDING_NS,
) -> DirectionAudio:
    """Decode one direction's packets onto the call timeline (sample 0 = ``call_start_ns``).

    ``packets`` are `MediaPacket`s or plain 7-tuples in any order; ``payload_types`` maps
    payload type -> (encoding, clock_rate, channels) from the SDP. Never raises on bad media:
    undecodable payloads, unknown payload types and events are counted in the stats.
    """
    counts = _Counts()
    tally = dict.fromkeys(("decoded", "duplicates", "lost", "decode_errors"), 0)
    window = (
        call_start_ns - SEGMENT_TOLERANCE_NS,
        call_start_ns + max_duration_ns + SEGMENT_TOLERANCE_NS,
    )
    segments = _segments(packets, payload_types, counts, window)
    placed = [
        p
        for decoder, seg in segments
        if (p := _decode_segment(decoder, seg, call_start_ns, sample_rate, tally)) is not None
    ]
    placed.sort(key=lambda p: p.start)
    track, clipped = _lay(placed, max_duration_ns * sample_rate // _NS)
    stats = DirectionStats(
        packets=counts.packets,
        not_audio=counts.not_audio,
        unsupported=counts.unsupported,
        segments=len(segments),
        clipped=clipped or counts.outside > 0,
        unsupported_encodings=tuple(sorted(counts.encodings)),
        **tally,
    )
    return DirectionAudio(track, sample_rate, stats)


def recording_rate(
    directions: Iterable[tuple[Iterable[MediaPacket], PayloadTypeMap]],
) -> int:
    """16 kHz when any audio payload of the call is wideband (G.722, Opus >= WB), else 8 kHz."""
    for packets, payload_types in directions:
        decoders: dict[int, type[Decoder] | None] = {}
        for pkt in packets:
            pt = pkt[4]
            if pt not in decoders:
                found = _classify(pt, payload_types, _Counts())
                audio = found is not None and found.kind is PayloadKind.AUDIO
                decoders[pt] = found if audio else None
            decoder = decoders[pt]
            if decoder is None:
                continue
            if decoder.is_wideband(pkt[6]):
                return WIDEBAND_RATE
            if not decoder.bandwidth_in_payload:
                decoders[pt] = None  # the codec answered for every packet of this type
    return NARROWBAND_RATE


def render_call(
    caller_to_callee: Iterable[MediaPacket],
    callee_to_caller: Iterable[MediaPacket],
    payload_types: PayloadTypeMap,
    call_start_ns: int,
    *,
    callee_payload_types: PayloadTypeMap | None = None,
    sample_rate: int | None = None,
    max_duration_ns: int = MAX_RECORDING_NS,
) -> CallAudio | UnsupportedCodec:
    """Render both directions on the timeline that starts at the INVITE (``call_start_ns``).

    The caller's voice (caller -> callee packets) becomes the left track. ``payload_types``
    applies to both directions unless ``callee_payload_types`` gives the callee -> caller
    map. ``sample_rate`` defaults to `recording_rate`. Returns `UnsupportedCodec` when no
    packet could be decoded and some carried an encoding without a decoder; a call without
    any media gives a `CallAudio` whose `has_audio` is False.
    """
    caller_pkts = list(caller_to_callee)
    callee_pkts = list(callee_to_caller)
    callee_map = payload_types if callee_payload_types is None else callee_payload_types
    rate = sample_rate or recording_rate([(caller_pkts, payload_types), (callee_pkts, callee_map)])
    caller = render_direction(
        caller_pkts, payload_types, call_start_ns, rate, max_duration_ns=max_duration_ns
    )
    callee = render_direction(
        callee_pkts, callee_map, call_start_ns, rate, max_duration_ns=max_duration_ns
    )
    stats = (caller.stats, callee.stats)
    if sum(s.decoded for s in stats) == 0 and any(s.unsupported for s in stats):
        names = {n for s in stats for n in s.unsupported_encodings}
        return UnsupportedCodec(tuple(sorted(names)))
    frames = max(len(caller.pcm), len(callee.pcm))
    return CallAudio(
        sample_rate=rate,
        caller=_pad(caller.pcm, frames),
        callee=_pad(callee.pcm, frames),
        caller_stats=caller.stats,
        callee_stats=callee.stats,
    )


def _pad(pcm: Pcm, frames: int) -> Pcm:
    if len(pcm) >= frames:
        return pcm
    return np.concatenate([pcm, np.zeros(frames - len(pcm), dtype=np.int16)])
