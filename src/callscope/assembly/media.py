"""RTP flows: the per-packet work of the tracker.

Every datagram whose first octet says RTP version 2 is looked up by its flow (source and
destination endpoints) in one dict, and handed to the flow object found there:

* `MediaStream`: a flow paired with a call through SDP. It keeps per-SSRC statistics
  (`StreamStats`: RFC 3550 A.1 sequence/loss, A.8 jitter), payload type counts, feeds
  telephone-event packets to the direction's `DigitDetector` (RFC 4733) and writes audio
  packets to the `MediaSink`. One stream is one direction of one call between two endpoints:
  a new SSRC continues it.
* `RtcpFlow`: a flow to or from an SDP RTCP port; only counted (and SRTCP detected).
* `OrphanFlow`: RTP-looking packets that no SDP describes (RTP-only captures, media of
  calls whose signalling was not seen): heuristic RTP detection as Wireshark's
  ``rtp.heuristic_rtp`` does, kept as statistics for reports, never as calls.

Probation (RFC 3550 A.1, MIN_SEQUENTIAL = 2): a flow that matches only one side of a call's
SDP may carry stray packets, so a new SSRC on it is held until a second packet in sequence
confirms it; the held packets are then counted and written, so the first packets of a real
stream are never lost. A flow matching the SDP of both parties is trusted at once.

The usual packet (voice of the SSRC and payload type of the packet before) is accounted by
`RtpReceiver.receive`, compiled where it is built; the others take `parse_rtp_header` plus
dict lookups (see `MediaStream._general`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from callscope.assembly.events import MediaSink, StreamDirection
from callscope.assembly.records import PayloadFormat, StreamRecord
from callscope.core import Endpoint
from callscope.protocol.errors import RtpParseError
from callscope.protocol.rtcp import looks_like_srtcp
from callscope.protocol.rtp import parse_rtp_header
from callscope.protocol.rtp_receiver import RtpReceiver
from callscope.protocol.rtp_stats import StreamStats
from callscope.protocol.sdpfields import STATIC_PAYLOAD_TYPES
from callscope.protocol.telephone_event import DetectedEvent, DigitDetector

__all__ = ["MediaOwner", "MediaStream", "RtcpFlow", "codec_name"]

# RFC 3551 4.5.2 and the clock a payload type without rtpmap most likely has
DEFAULT_CLOCK: Final = {"audio": 8000, "video": 90000}
_EVENT_ENCODINGS: Final = frozenset({"telephone-event"})  # RFC 4733 7.1.1
_COMFORT_NOISE: Final = frozenset({"cn"})  # RFC 3389
_KNOWN_UPPER: Final = frozenset(f.encoding.upper() for f in STATIC_PAYLOAD_TYPES.values()) | {
    "G726-16", "G726-24", "G726-40", "AMR", "AMR-WB", "ILBC", "SPEEX", "G7221", "H264",
}  # fmt: skip
_KNOWN_OTHER: Final = {"OPUS": "opus", "TELEPHONE-EVENT": "telephone-event", "SILK": "SILK"}
_PENDING_SSRCS = 8  # SSRCs on probation per stream (stray packets cannot grow it)
_VOICE, _EVENT, _CN = 0, 1, 2  # what a payload type carries
#: one RTP packet as parsed by `parse_rtp_header`
Header = tuple[int, int, int, int, bool, int, int]


class MediaOwner(Protocol):
    """What a stream needs from its call (implemented by `callscope.assembly.call.Call`)."""

    key: int
    answered: bool
    early_media: bool

    def count(self, kind: str) -> None:
        """Count one anomaly of ``kind`` on the call."""

    def on_digit(self, direction: StreamDirection, event: DetectedEvent) -> None:
        """A telephone event was detected in ``direction``."""

    def detector(self, direction: StreamDirection) -> DigitDetector:
        """The direction's RFC 4733 detector (one per direction of the call)."""

    def encrypted_media(self, how: str) -> None:
        """The call's media turned out to be encrypted (``how``: srtp, zrtp)."""


class MediaStream(RtpReceiver):
    """One paired RTP flow: (call, direction, source, destination); see the module docs.

    The usual packet is accounted by `RtpReceiver.receive` (compiled where it is built);
    `_general` takes every other packet and sets the hot state for the next ones.
    """

    __slots__ = (
        "_answered",
        "_default_clock",
        "_pending",
        "_pt_counts",
        "_pt_info",
        "dst",
        "early",
        "media",
        "payload_map",
        "rtcp_packets",
        "src",
        "ssrcs",
        "trusted",
    )

    def __init__(
        self,
        owner: MediaOwner,
        direction: StreamDirection,
        media: str,
        src: Endpoint,
        dst: Endpoint,
        *,
        sink: MediaSink | None,
    ) -> None:
        self.owner = owner
        self.direction = direction
        self.media = media
        self.src = src
        self.dst = dst
        self.trusted = False
        self.early = False
        self.last_at = 0
        self.rtcp_packets = 0
        self.ssrcs: dict[int, StreamStats] = {}
        self.payload_map: dict[int, PayloadFormat] = {}
        self._pending: dict[int, list[tuple[int, bytes]]] = {}
        self._pt_counts: dict[int, int] = {}
        self._pt_info: dict[int, tuple[int, int]] = {}  # pt -> (RTP clock, _VOICE/_EVENT/_CN)
        self._run_pt = -1  # payload type of the current run of packets
        self._run = 0
        self._answered = False  # the owner was answered (no more early-media checks)
        # the usual packet, after the answer: voice of the last SSRC and payload type seen
        # (see `RtpReceiver`); -1 when the last packet took the general path in another way
        self._hot_ssrc = -1
        self._hot_stats = None
        self._hot_clock = 0
        self._default_clock = DEFAULT_CLOCK.get(media, 8000)
        self._sink = sink if media == "audio" else None

    def update_payload_map(self, payload_map: Mapping[int, PayloadFormat]) -> None:
        """Merge the SDP's payload types (newer offers/answers override older ones)."""
        self.payload_map.update(payload_map)
        self._hot_ssrc = -1  # the payload type's clock or kind may change
        info: dict[int, tuple[int, int]] = {}
        for pt, fmt in self.payload_map.items():
            name = fmt[0].lower()
            if name in _EVENT_ENCODINGS:
                info[pt] = (0, _EVENT)  # RFC 4733: the timestamp stays at the event start
            else:
                info[pt] = (fmt[1], _CN if name in _COMFORT_NOISE else _VOICE)
        self._pt_info = info

    def stop_writing(self) -> None:
        """No more packets to the sink (the media is encrypted)."""
        self._sink = None

    # -- per packet -------------------------------------------------------------------------

    def _general(self, at: int, payload: bytes) -> None:
        """A datagram of this flow that is not the usual packet (`RtpReceiver.receive`):
        RTP, or RTCP multiplexed on it (RFC 5761 4).

        Once the call is answered, a voice packet makes its SSRC, payload type and
        statistics the hot state (`_hot_ssrc`); any other packet clears it. Payload types
        72-76 (RTCP) never become the current payload type, so the usual packet needs no
        RTCP check.
        """
        self._hot_ssrc = -1
        if 72 <= payload[1] & 0x7F <= 76:
            self.rtcp(at, payload)
            return
        try:
            header = parse_rtp_header(payload)
        except RtpParseError:
            self.owner.count("rtp.parse")
            return
        pt, seq, timestamp, ssrc, marker, start, end = header
        stats = self.ssrcs.get(ssrc)
        info = self._pt_info.get(pt)
        if stats is None or info is None:
            if stats is None:
                self._new_ssrc(at, payload, header)
            else:
                self._account(stats, at, payload, header)
            return
        clock, kind = info
        stats.receive(at, seq, timestamp, clock, marker, kind == _CN)
        self.last_at = at
        if pt == self._run_pt:
            self._run += 1
        else:
            self._switch_pt(pt)
        if not self._answered:
            self._early()
        if kind == _EVENT:
            self._event(at, timestamp, seq, marker, payload[start:end])
        elif kind == _VOICE and self._answered:
            self._hot_ssrc, self._hot_stats, self._hot_clock = ssrc, stats, clock
        if self._sink is not None:
            self._sink.write(
                self.owner.key, self.direction, at, ssrc, seq, timestamp, pt, marker,
                payload[start:end],
            )  # fmt: skip

    def _account(self, stats: StreamStats, at: int, payload: bytes, header: Header) -> None:
        """`receive` for a packet of a known SSRC, also for a payload type seen first."""
        pt, seq, timestamp, ssrc, marker, start, end = header
        info = self._pt_info.get(pt)
        if info is None:
            info = self._unknown_payload_type(pt)
        clock, kind = info
        stats.receive(at, seq, timestamp, clock, marker, kind == _CN)
        self.last_at = at
        if pt == self._run_pt:
            self._run += 1
        else:
            self._switch_pt(pt)
        if not self._answered:
            self._early()
        if kind == _EVENT:
            self._event(at, timestamp, seq, marker, payload[start:end])
        if self._sink is not None:
            self._sink.write(
                self.owner.key, self.direction, at, ssrc, seq, timestamp, pt, marker,
                payload[start:end],
            )  # fmt: skip

    def _switch_pt(self, pt: int) -> None:
        """Payload types are counted in runs (a dict update per packet costs more)."""
        if self._run:
            counts = self._pt_counts
            counts[self._run_pt] = counts.get(self._run_pt, 0) + self._run
        self._run_pt = pt
        self._run = 1

    def _early(self) -> None:
        owner = self.owner
        if owner.answered:
            self._answered = True
        else:
            self.early = owner.early_media = True

    def _event(self, at: int, timestamp: int, seq: int, marker: bool, data: bytes) -> None:
        owner = self.owner
        try:
            found = owner.detector(self.direction).receive(at, timestamp, seq, marker, data)
        except RtpParseError:
            owner.count("rtp.event_parse")
            return
        for event in found:
            owner.on_digit(self.direction, event)

    def _unknown_payload_type(self, pt: int) -> tuple[int, int]:
        static = STATIC_PAYLOAD_TYPES.get(pt)
        clock = static.clock_rate if static is not None else self._default_clock
        if static is not None:
            self.payload_map[pt] = (static.encoding, static.clock_rate, static.channels)
        else:
            self.owner.count("rtp.unknown_payload_type")
        info = self._pt_info[pt] = (clock, _VOICE)
        return info

    def _new_ssrc(self, at: int, payload: bytes, header: Header) -> None:
        """RFC 3550 A.1 probation of a new SSRC: on an untrusted flow it is held until a
        packet in sequence follows; then every held packet is counted (and written) first,
        so the first packets of a real stream are never lost."""
        ssrc, seq = header[3], header[1]
        held = self._pending.pop(ssrc, None)
        if held is not None:
            last_seq = parse_rtp_header(held[-1][1])[1]
            if self.trusted or seq == (last_seq + 1) & 0xFFFF:
                stats = self.ssrcs[ssrc] = StreamStats()
                for held_at, held_payload in held:
                    self._account(stats, held_at, held_payload, parse_rtp_header(held_payload))
                self._account(stats, at, payload, header)
                return
            self.owner.count("rtp.stray")
        if self.trusted:
            self._account(self.ssrcs.setdefault(ssrc, StreamStats()), at, payload, header)
            return
        if len(self._pending) >= _PENDING_SSRCS:
            self.owner.count("rtp.stray")
            return
        self._pending[ssrc] = [(at, payload)]

    def rtcp(self, at: int, payload: bytes) -> None:
        """RTCP on this flow (RFC 5761 multiplexing): counted, SRTCP flags encryption."""
        self.rtcp_packets += 1
        if looks_like_srtcp(payload):
            self.owner.encrypted_media("srtp")

    def settle(self) -> None:
        """End of the stream: packets still on probation were stray."""
        for held in self._pending.values():
            for _ in held:
                self.owner.count("rtp.stray")
        self._pending.clear()

    # -- summary ------------------------------------------------------------------------------

    @property
    def packets(self) -> int:
        """RTP packets counted (probation passed)."""
        return sum(stats.packets for stats in self.ssrcs.values())

    def record(self) -> StreamRecord:
        """The stream's summary for the call record."""
        all_stats = list(self.ssrcs.values())
        main = max(all_stats, key=lambda s: s.packets) if all_stats else None
        firsts = [s.first_at for s in all_stats if s.first_at is not None]
        lasts = [s.last_at for s in all_stats if s.last_at is not None]
        counts = self._counts()
        return StreamRecord(
            direction=self.direction.contract,
            media=self.media if self.media in ("audio", "video") else "other",
            codec=self._codec(counts),
            payload_types=tuple(sorted(counts)),
            src=self.src,
            dst=self.dst,
            ssrcs=tuple(self.ssrcs),
            packets=sum(s.packets for s in all_stats),
            lost=sum(s.lost for s in all_stats),
            duplicates=sum(s.duplicates for s in all_stats),
            jitter_ms=None if main is None else round(main.mean_jitter_ms, 3),
            first_at=min(firsts) if firsts else None,
            last_at=max(lasts) if lasts else None,
            payload_map=dict(self.payload_map),
            early=self.early,
            rtcp_packets=self.rtcp_packets,
        )

    def _counts(self) -> dict[int, int]:
        """Packets per payload type (the current run included)."""
        counts = dict(self._pt_counts)
        if self._run:
            counts[self._run_pt] = counts.get(self._run_pt, 0) + self._run
        return counts

    def _codec(self, counts: dict[int, int]) -> str | None:
        """The encoding of the payload type with most packets, events and CN left out."""
        info = self._pt_info
        voice = {pt: n for pt, n in counts.items() if info.get(pt, (0, _VOICE))[1] == _VOICE}
        pool = voice or counts
        if not pool:
            return None
        pt = max(pool, key=lambda p: pool[p])
        fmt = self.payload_map.get(pt)
        return codec_name(fmt[0]) if fmt is not None else None


def codec_name(encoding: str) -> str:
    """The usual spelling of an encoding name (rtpmap names are case-insensitive, RFC 4855
    3): upper case for the RFC 3551 names, ``opus`` as RFC 7587 writes it."""
    upper = encoding.upper()
    if upper in _KNOWN_UPPER:
        return upper
    return _KNOWN_OTHER.get(upper, encoding)


class RtcpFlow:
    """A flow to or from an SDP RTCP port of a call: counted on the owner's stream."""

    __slots__ = ("owner", "packets")

    def __init__(self, owner: MediaOwner) -> None:
        self.owner = owner
        self.packets = 0

    def receive(self, at: int, payload: bytes) -> None:
        """One RTCP datagram; SRTCP (RFC 3711 3.4) marks the call's media as encrypted."""
        self.packets += 1
        if looks_like_srtcp(payload):
            self.owner.encrypted_media("srtp")
