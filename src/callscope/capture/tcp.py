"""TCP stream reassembly (RFC 9293) for SIP over TCP, one direction at a time.

Theory of operation: each direction of a connection is a `_Stream` keyed by the caller
(addresses, ports, VLAN). Bytes are put back in sequence order - retransmitted bytes are
dropped, out-of-order segments wait in a bounded buffer - and handed to a SIP framer
(Content-Length framing, RFC 3261 18.3) that returns complete messages.

- A stream whose SYN was seen starts at ISN + 1 and is judged by its first payload bytes:
  if they are not SIP (`looks_like_sip`, after any RFC 5626 CRLF keepalives) the stream is
  marked non-SIP and later segments are dropped with one dict lookup.
- A stream picked up mid-way (the capture began after the handshake) waits for a segment
  that starts with a SIP start line and begins there; after `PICKUP_LIMIT` bytes without
  one, it is non-SIP.
- A hole that is not filled (a segment missing from the capture) is given up when the
  out-of-order buffer passes its bounds or `gap_timeout_ns` of packet time: the framer is
  reset and the stream resumes at the next SIP start line.
- FIN (with nothing left to reorder) and RST end the stream; a new SYN restarts it. The
  number of streams is bounded and idle streams are evicted by packet time.
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
#: bytes a mid-stream pickup may skip looking for a SIP start line before giving up
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
    tls_streams: int = 0  # non-SIP streams that start with a TLS handshake record
    evicted: int = 0  # streams dropped for the flow bound or idleness


@dataclass(slots=True)
class _Stream:
    framer: Framer
    last_at: int
    next_seq: int | None = None  # None: waiting for a SIP start line (pickup)
    sip: bool | None = None  # None until judged by content
    skipped: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    hole_since: int = 0
    fin: bool = False


def _sip_framer(max_buffer: int) -> Callable[[], Framer]:
    return lambda: SipFramer(max_buffer=max_buffer)


class TcpReassembler:
    """Turns TCP segments into complete SIP messages per direction."""

    def __init__(
        self,
        *,
        max_streams: int = 4096,
        idle_timeout_ns: int = 900_000_000_000,
        max_message: int = 262_144,
        max_out_of_order: int = 131_072,
        gap_timeout_ns: int = 2_000_000_000,
        framer_factory: Callable[[], Framer] | None = None,
        looks_like_sip: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.idle_timeout_ns = idle_timeout_ns
        self.max_out_of_order = max_out_of_order
        self.gap_timeout_ns = gap_timeout_ns
        self.counters = TcpCounters()
        self._new_framer = framer_factory or _sip_framer(max_message)
        self._looks_like_sip = looks_like_sip or _looks_like_sip
        self._streams: OrderedDict[Hashable, _Stream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def push(self, at: int, key: Hashable, seq: int, flags: int, payload: bytes) -> list[bytes]:
        """Add one segment of the direction ``key``; return the SIP messages it completed."""
        self.counters.segments += 1
        self.expire(at)
        streams = self._streams
        stream = streams.get(key)
        if flags & TCP_RST:
            streams.pop(key, None)
            return []
        if flags & TCP_SYN:
            # RFC 9293 3.4: the SYN occupies one sequence number
            if stream is None or stream.next_seq != (seq + 1) & _MASK:
                stream = self._open(key, at)
                stream.next_seq = (seq + 1) & _MASK
            seq = (seq + 1) & _MASK
        elif stream is None:
            if not payload:
                return []
            stream = self._open(key, at)
        else:
            streams.move_to_end(key)
        stream.last_at = at
        messages: list[bytes] = []
        if payload and stream.sip is not False:
            messages = self._data(stream, at, seq, payload)
        if flags & TCP_FIN:
            stream.fin = True
        if stream.fin and not stream.pending:
            streams.pop(key, None)
        return messages

    def expire(self, now: int) -> None:
        """Evict streams idle for longer than the idle timeout at packet time ``now``."""
        streams = self._streams
        limit = now - self.idle_timeout_ns
        while streams:
            key, oldest = next(iter(streams.items()))
            if oldest.last_at >= limit:
                return
            del streams[key]
            self.counters.evicted += 1

    def incomplete(self) -> int:
        """Streams holding part of a SIP message or bytes after a hole (end of capture)."""
        return sum(
            1
            for stream in self._streams.values()
            if stream.sip and (stream.pending or stream.framer.buffered)
        )

    def _open(self, key: Hashable, at: int) -> _Stream:
        stream = _Stream(self._new_framer(), at)
        self._streams[key] = stream
        self._streams.move_to_end(key)
        if len(self._streams) > self.max_streams:
            self._streams.popitem(last=False)
            self.counters.evicted += 1
        return stream

    def _data(self, stream: _Stream, at: int, seq: int, payload: bytes) -> list[bytes]:
        if stream.next_seq is None and not self._pickup(stream, payload):
            return []
        if stream.next_seq is None:
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
        if stream.pending and stream.sip:
            messages += self._drain(stream)
        return messages

    def _pickup(self, stream: _Stream, payload: bytes) -> bool:
        """Mid-stream: True once a segment starts a SIP message (skipping keepalives)."""
        text = payload.lstrip(b"\r\n")
        if text and self._looks_like_sip(text):
            return True
        stream.skipped += len(payload)
        if stream.sip is None and stream.skipped > PICKUP_LIMIT:
            self._reject(stream, payload)
        return False

    def _deliver(self, stream: _Stream, data: bytes) -> list[bytes]:
        assert stream.next_seq is not None
        stream.next_seq = (stream.next_seq + len(data)) & _MASK
        if stream.sip is None:
            text = data.lstrip(b"\r\n")
            if not text:
                return []
            if not self._looks_like_sip(text):
                self._reject(stream, text)
                return []
            stream.sip = True
        messages = stream.framer.feed(data)
        self.counters.messages += len(messages)
        return messages

    def _reject(self, stream: _Stream, first: bytes) -> None:
        stream.sip = False
        stream.pending.clear()
        stream.pending_bytes = 0
        self.counters.non_sip_streams += 1
        if first[:1] == b"\x16" and first[1:2] == b"\x03":  # RFC 8446 5.1 handshake record
            self.counters.tls_streams += 1

    def _hold(self, stream: _Stream, at: int, seq: int, payload: bytes) -> list[bytes]:
        if not stream.pending:
            stream.hole_since = at
        if len(payload) > len(stream.pending.get(seq, b"")):
            stream.pending_bytes += len(payload) - len(stream.pending.get(seq, b""))
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
        while stream.pending and progress and stream.sip:
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
        """Give up on the missing bytes: resume at the next SIP start line after the hole."""
        self.counters.gaps += 1
        held = sorted(
            stream.pending.items(),
            key=lambda item: (item[0] - (stream.next_seq or 0)) & _MASK,
        )
        stream.pending.clear()
        stream.pending_bytes = 0
        stream.framer = self._new_framer()
        stream.next_seq = None
        messages: list[bytes] = []
        for seq, data in held:
            messages += self._data(stream, at, seq, data)
        return messages
