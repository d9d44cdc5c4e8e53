"""RTP that no SDP describes: heuristic detection per flow, kept for reports, never a call.

A capture of media without its signalling (an RTP-only file, or a call whose INVITE was
missed) must not invent calls, but what it carried is still worth reporting. Each flow
(source, destination) of RTP-looking datagrams that no call claims gets an `OrphanFlow`:
like Wireshark's ``rtp.heuristic_rtp`` it accepts version 2 with a payload type that is
static (0-34) or dynamic (96-127), and an SSRC counts as a stream only after two packets in
sequence (RFC 3550 A.1 probation). Dynamic payload types whose packets are 4-octet RFC 4733
event blocks are read as telephone events, so the digits of an RTP-only capture are known.
`OrphanStream` is the summary per flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callscope.core import Endpoint
from callscope.protocol.errors import RtpParseError
from callscope.protocol.rtp import parse_rtp_header
from callscope.protocol.rtp_stats import StreamStats
from callscope.protocol.sdpfields import STATIC_PAYLOAD_TYPES
from callscope.protocol.telephone_event import DigitDetector

__all__ = ["OrphanFlow", "OrphanStream"]

_DYNAMIC: Final = range(96, 128)  # RFC 3551 3
_STATIC: Final = range(35)  # RFC 3551 table 4 and 5 (assigned static types end at 34)
_MAX_EVENT: Final = 16  # RFC 4733 3.2: DTMF 0-15 and flash


@dataclass(frozen=True, slots=True)
class OrphanStream:
    """One flow of RTP with no call: what tshark's ``rtp,streams`` would list for it."""

    src: Endpoint
    dst: Endpoint
    ssrcs: tuple[int, ...]
    payload_types: tuple[int, ...]
    codec: str | None
    packets: int
    lost: int
    first_at: int | None
    last_at: int | None
    digits: tuple[str, ...] = ()


class OrphanFlow:
    """Heuristic RTP detection on one flow (see the module docs)."""

    __slots__ = (
        "_detector", "_held", "_pt_counts", "digits", "dst", "last_at", "seen", "src", "ssrcs",
    )  # fmt: skip

    def __init__(self, src: Endpoint, dst: Endpoint) -> None:
        self.src = src
        self.dst = dst
        self.seen = 0  # RTP-looking datagrams, confirmed or not
        self.last_at = 0
        self.ssrcs: dict[int, StreamStats] = {}
        self.digits: list[str] = []
        self._held: dict[int, tuple[int, bytes]] = {}
        self._pt_counts: dict[int, int] = {}
        self._detector: DigitDetector | None = None

    def receive(self, at: int, payload: bytes) -> None:
        """One datagram whose first octet says RTP version 2."""
        self.seen += 1
        self.last_at = at
        pt = payload[1] & 0x7F
        if pt not in _STATIC and pt not in _DYNAMIC:
            return  # RTCP (RFC 5761 4) or an unassigned type: not RTP
        try:
            header = parse_rtp_header(payload)
        except RtpParseError:
            return
        ssrc = header[3]
        stats = self.ssrcs.get(ssrc)
        if stats is None:
            held = self._held.get(ssrc)
            if held is None or header[1] != (parse_rtp_header(held[1])[1] + 1) & 0xFFFF:
                if len(self._held) < 4 or ssrc in self._held:
                    self._held[ssrc] = (at, payload)
                return
            del self._held[ssrc]
            stats = self.ssrcs[ssrc] = StreamStats()
            self._account(stats, held[0], held[1])
        self._account(stats, at, payload)

    def _account(self, stats: StreamStats, at: int, payload: bytes) -> None:
        pt, seq, timestamp, _ssrc, marker, start, end = parse_rtp_header(payload)
        static = STATIC_PAYLOAD_TYPES.get(pt)
        event = pt in _DYNAMIC and end - start == 4 and payload[start] <= _MAX_EVENT
        clock = 0 if event else (static.clock_rate if static is not None else 8000)
        stats.receive(at, seq, timestamp, clock, marker=marker, comfort_noise=pt == 13)
        self._pt_counts[pt] = self._pt_counts.get(pt, 0) + 1
        if event:
            if self._detector is None:
                self._detector = DigitDetector()
            for found in self._detector.receive(at, timestamp, seq, marker, payload[start:end]):
                if found.digit is not None:
                    self.digits.append(found.digit)

    @property
    def packets(self) -> int:
        """Packets of confirmed SSRCs."""
        return sum(stats.packets for stats in self.ssrcs.values())

    def summary(self) -> OrphanStream | None:
        """The flow as an `OrphanStream`, None if nothing passed probation."""
        if not self.ssrcs:
            return None
        if self._detector is not None:
            self.digits.extend(e.digit for e in self._detector.flush() if e.digit is not None)
            self._detector = None
        all_stats = list(self.ssrcs.values())
        firsts = [s.first_at for s in all_stats if s.first_at is not None]
        lasts = [s.last_at for s in all_stats if s.last_at is not None]
        counts = self._pt_counts
        main = max(counts, key=lambda p: counts[p])
        static = STATIC_PAYLOAD_TYPES.get(main)
        return OrphanStream(
            src=self.src,
            dst=self.dst,
            ssrcs=tuple(self.ssrcs),
            payload_types=tuple(sorted(counts)),
            codec=static.encoding if static is not None else None,
            packets=sum(s.packets for s in all_stats),
            lost=sum(s.lost for s in all_stats),
            first_at=min(firsts) if firsts else None,
            last_at=max(lasts) if lasts else None,
            digits=tuple(self.digits),
        )
