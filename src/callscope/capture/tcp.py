"""TCP stream reassembly (RFC 9293) for SIP over TCP, one direction at a time.

Theory of operation: each direction of a connection is a `_Stream` keyed by the caller
(addresses, ports, VLAN). Bytes are put back in sequence order - retransmitted bytes are
dropped, out-of-order segments wait in a bounded buffer - and handed to a SIP framer
(Content-Length framing, RFC 3261 18.3) that returns complete messages. The framer skips
bytes that are not SIP up to the next SIP start line by itself.

- A stream whose SYN was seen starts at ISN + 1 and is judged by its first payload bytes:
  if they are not SIP (`looks_like_sip`, after any RFC 5626 CRLF keepalives) the stream is
  marked non-SIP for good, and later segments are dropped after one dict lookup
  (`TcpReassembler.rejected`).
- A stream picked up mid-way (the capture began after the handshake, or the stream was
  evicted) is fed to the framer from its first segment: the framer finds the next message
  boundary. It is SIP once a message comes out; after `PICKUP_LIMIT` bytes without one it
  is set aside as non-SIP, but a later segment that starts with a SIP start line revives
  it (a quiet SIP trunk must not be lost for the life of its connection). One that starts
  with a TLS record is non-SIP for good.
- A hole that is not filled (a segment missing from the capture) is given up when the
  out-of-order buffer passes its bounds or `gap_timeout_ns` of packet time: the framer is
  reset and resynchronises at the next SIP start line after the hole.
- FIN (with nothing left to reorder) and RST end the stream; a new SYN restarts it. The
  number of streams, the bytes each holds and the bytes all hold are bounded; idle streams
  are evicted by packet time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from callscope.capture.decode import TCP_FIN, TCP_RST, TCP_SYN
from callscope.protocol.sip import looks_like_sip as _looks_like_sip
from callscope.protocol.sipframing import SipFramer

_MASK = 0xFFFFFFFF
_HALF = 0x80000000
#: bytes a stream picked up mid-way may carry without a SIP message before it is set aside
PICKUP_LIMIT = 65_536


class Framer(Protocol):
    """What the stream needs from `callscope.protocol.sipframing.SipFramer`."""

    def feed(self, data: bytes) -> list[bytes]: ...

    @property
    def buffered(self) -> int: ...


@dataclass(slots=True)
class TcpCounters:
    """What TCP reassembly saw (segments counts segments with payload or flags)."""

    segments: int = 0
    messages: int = 0
    retransmissions: int = 0  # segments (or parts) already delivered
    out_of_order: int = 0  # segments buffered ahead of a hole
    gaps: int = 0  # holes given up (data missing from the capture)
    non_sip_streams: int = 0
    tls_streams: int = 0  # non-SIP streams that carry TLS records
    revived: int = 0  # streams set aside as non-SIP that turned out to carry SIP
    evicted: int = 0  # streams dropped for the bounds or idleness


@dataclass(slots=True)
class _Stream:
    framer: Framer
    last_at: int
    pickup: bool  # no SYN seen: started mid-way
    next_seq: int | None = None  # None until the first payload of a picked-up stream
    sip: bool | None = None  # None until judged
    final: bool = False  # a non-SIP judgement that cannot be revived
    skipped: int = 0  # pickup bytes fed without a message coming out
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    hole_since: int = 0
    fin: bool = False
    held: int = 0  # buffered bytes last counted in TcpReassembler.held_bytes


def _sip_framer(max_buffer: int) -> Callable[[], Framer]:
    return lambda: SipFramer(max_buffer=max_buffer)


def _is_tls(data: bytes) -> bool:
    """RFC 8446 5.1: a TLS record header (content type 20-23, legacy version 3.x)."""
    return len(data) >= 5 and 20 <= data[0] <= 23 and data[1] == 3 and data[2] <= 4


class TcpReassembler:
    """Turns TCP segments into complete SIP messages per direction."""

    def __init__(
        self,
        *,
        max_streams: int = 4096,
        idle_timeout_ns: int = 900_000_000_000,
        max_message: int = 262_144,
        max_out_of_order: int = 131_072,
        max_total: int = 64 << 20,
        gap_timeout_ns: int = 2_000_000_000,
        framer_factory: Callable[[], Framer] | None = None,
        looks_like_sip: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.idle_timeout_ns = idle_timeout_ns
        self.max_out_of_order = max_out_of_order
        self.max_total = max_total
        self.gap_timeout_ns = gap_timeout_ns
        self.counters = TcpCounters()
        #: bytes buffered over all streams (framers and out-of-order segments)
        self.held_bytes = 0
        self._new_framer = framer_factory or _sip_framer(max_message)
        self._looks_like_sip = looks_like_sip or _looks_like_sip
        self._streams: OrderedDict[Hashable, _Stream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def push(self, at: int, key: Hashable, seq: int, flags: int, payload: bytes) -> list[bytes]:
        """Add one segment of the direction ``key``; return the SIP messages it completed."""
        self.counters.segments += 1
        self.expire(at)
        stream = self._streams.get(key)
        if flags & TCP_RST:
            self._remove(key)
            return []
        if flags & TCP_SYN:
            # RFC 9293 3.4: the SYN occupies one sequence number
            seq = (seq + 1) & _MASK
            if stream is None or stream.pickup or stream.next_seq != seq:
                self._remove(key)
                stream = self._open(key, at, pickup=False)
                stream.next_seq = seq
        elif stream is None or (stream.sip is False and self._revives(stream, payload)):
            if not payload:
                return []
            if stream is not None:
                self.counters.revived += 1
            self._remove(key)
            stream = self._open(key, at, pickup=True)
        else:
            self._streams.move_to_end(key)
        stream.last_at = at
        messages: list[bytes] = []
        if payload and stream.sip is not False:
            messages = self._data(stream, at, seq, payload)
        if flags & TCP_FIN:
            stream.fin = True
        if stream.fin and not stream.pending:
            self._remove(key)
        else:
            self._account(stream)
        return messages

    def rejected(self, key: Hashable, at: int, payload: bytes) -> bool:
        """True if ``key`` is a stream judged not SIP and ``payload`` does not revive it
        (counted and kept alive): the caller can drop the segment without more work."""
        stream = self._streams.get(key)
        if stream is None or stream.sip is not False or self._revives(stream, payload):
            return False
        stream.last_at = at
        self._streams.move_to_end(key)
        self.counters.segments += 1
        return True

    def expire(self, now: int) -> None:
        """Evict streams idle for longer than the idle timeout at packet time ``now``."""
        streams = self._streams
        limit = now - self.idle_timeout_ns
        while streams:
            key, oldest = next(iter(streams.items()))
            if oldest.last_at >= limit:
                return
            self._remove(key)
            self.counters.evicted += 1

    def incomplete(self) -> int:
        """Streams holding part of a SIP message or bytes after a hole (end of capture)."""
        return sum(
            1
            for stream in self._streams.values()
            if stream.sip and (stream.pending or stream.framer.buffered)
        )

    def _revives(self, stream: _Stream, payload: bytes) -> bool:
        if stream.final or not payload:
            return False
        text = payload.lstrip(b"\r\n")
        return bool(text) and self._looks_like_sip(text)

    def _open(self, key: Hashable, at: int, *, pickup: bool) -> _Stream:
        stream = _Stream(self._new_framer(), at, pickup)
        self._streams[key] = stream
        self._streams.move_to_end(key)
        if len(self._streams) > self.max_streams:
            self._remove(next(iter(self._streams)))
            self.counters.evicted += 1
        return stream

    def _remove(self, key: Hashable) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            self.held_bytes -= stream.held

    def _account(self, stream: _Stream) -> None:
        """Update `held_bytes` for ``stream``; evict the least recent streams past the
        bound on all streams together."""
        held = stream.pending_bytes + stream.framer.buffered
        self.held_bytes += held - stream.held
        stream.held = held
        while self.held_bytes > self.max_total and self._streams:
            self._remove(next(iter(self._streams)))
            self.counters.evicted += 1

    def _data(self, stream: _Stream, at: int, seq: int, payload: bytes) -> list[bytes]:
        if stream.next_seq is None:  # the first payload of a stream picked up mid-way
            if _is_tls(payload):
                self._reject(stream, payload, final=True)
                return []
            stream.next_seq = seq
        ahead = ((seq - stream.next_seq + _HALF) & _MASK) - _HALF
        if ahead > 0:
            return self._hold(stream, at, seq, payload)
        if -ahead >= len(payload):
            self.counters.retransmissions += 1
            return []
        if ahead < 0:
            self.counters.retransmissions += 1
            payload = payload[-ahead:]
        messages = self._deliver(stream, payload)
        if stream.pending and stream.sip is not False:
            messages += self._drain(stream)
        return messages

    def _deliver(self, stream: _Stream, data: bytes) -> list[bytes]:
        assert stream.next_seq is not None
        stream.next_seq = (stream.next_seq + len(data)) & _MASK
        if stream.sip is None and not stream.pickup:
            text = data.lstrip(b"\r\n")
            if not text:
                return []  # keepalives before the first message
            if not self._looks_like_sip(text):
                self._reject(stream, text, final=True)
                return []
            stream.sip = True
        messages = stream.framer.feed(data)
        if stream.sip is None:  # picked up: SIP once the framer found a message
            if messages:
                stream.sip = True
            else:
                stream.skipped += len(data)
                if stream.skipped > PICKUP_LIMIT:
                    self._reject(stream, data, final=False)
        self.counters.messages += len(messages)
        return messages

    def _reject(self, stream: _Stream, first: bytes, *, final: bool) -> None:
        stream.sip = False
        stream.final = final
        stream.pending.clear()
        stream.pending_bytes = 0
        stream.framer = self._new_framer()
        self.counters.non_sip_streams += 1
        if _is_tls(first):
            self.counters.tls_streams += 1

    def _hold(self, stream: _Stream, at: int, seq: int, payload: bytes) -> list[bytes]:
        if not stream.pending:
            stream.hole_since = at
        previous = len(stream.pending.get(seq, b""))
        if len(payload) > previous:
            stream.pending_bytes += len(payload) - previous
            stream.pending[seq] = payload
        self.counters.out_of_order += 1
        if (
            stream.pending_bytes > self.max_out_of_order
            or at - stream.hole_since > self.gap_timeout_ns
        ):
            return self._skip_hole(stream, at)
        return []

    def _drain(self, stream: _Stream) -> list[bytes]:
        """Deliver buffered segments that the last delivery made contiguous."""
        messages: list[bytes] = []
        progress = True
        while stream.pending and progress and stream.sip is not False:
            progress = False
            for seq in list(stream.pending):
                assert stream.next_seq is not None
                ahead = ((seq - stream.next_seq + _HALF) & _MASK) - _HALF
                if ahead > 0:
                    continue
                data = stream.pending.pop(seq)
                stream.pending_bytes -= len(data)
                if -ahead < len(data):
                    messages += self._deliver(stream, data[-ahead:])
                progress = True
        return messages

    def _skip_hole(self, stream: _Stream, at: int) -> list[bytes]:
        """Give up on the missing bytes: a fresh framer resynchronises after the hole."""
        self.counters.gaps += 1
        base = stream.next_seq or 0
        first = min(stream.pending, key=lambda seq: (seq - base) & _MASK)
        stream.framer = self._new_framer()
        stream.next_seq = first
        stream.hole_since = at
        return self._drain(stream)
