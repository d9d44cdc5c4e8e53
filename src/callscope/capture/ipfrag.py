"""IPv4 (RFC 791 3.2) and IPv6 (RFC 8200 4.5) fragment reassembly, clocked by packet time.

Theory of operation: fragments are grouped by a key the caller builds (IPv4: addresses,
protocol, identification; IPv6: addresses, identification; plus the VLAN). Each pending
datagram keeps its pieces as non-overlapping ``(start, end, bytes)`` ranges. A fragment that
repeats bytes already held (a retransmission, a mirror duplicate) adds nothing; one that
*disagrees* with bytes already held is an overlap attack or corruption, and the whole
datagram is dropped (RFC 5722 for IPv6, RFC 1858 for the IPv4 tiny/overlapping fragment
attacks): no receiver's policy is guessed. The datagram is complete when the last fragment
(MF clear) fixed its length and the pieces cover it.

Memory is bounded by `max_datagrams`, `max_bytes` and `MAX_PIECES` per datagram; the oldest
pending datagram is evicted first. A datagram still incomplete `timeout_ns` after its first
fragment (packet time, not a clock) is dropped: a piece is missing from the capture.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

#: largest reassembled payload (IPv4 Total Length and IPv6 Payload Length are 16 bits)
MAX_DATAGRAM = 65_535
#: most pieces one datagram may have (65535 / 8-byte pieces would make overlap checks slow)
MAX_PIECES = 256


@dataclass(slots=True)
class FragmentCounters:
    """What reassembly saw; all counts of fragments except where noted."""

    fragments: int = 0
    reassembled: int = 0  # datagrams
    duplicates: int = 0  # fragments that added no new bytes
    invalid: int = 0  # bad length/offset, too many pieces
    overlaps: int = 0  # datagrams dropped for conflicting overlapping fragments
    timeouts: int = 0  # datagrams dropped incomplete after the timeout
    evicted: int = 0  # datagrams dropped to stay within the memory bounds


@dataclass(slots=True)
class _Pending:
    first_at: int
    pieces: list[tuple[int, int, bytes]]
    held: int = 0
    total: int | None = None


class FragmentReassembler:
    """Collects fragments and returns each datagram's payload once it is complete."""

    def __init__(
        self,
        *,
        timeout_ns: int = 30_000_000_000,
        max_datagrams: int = 4096,
        max_bytes: int = 16 << 20,
    ) -> None:
        self.timeout_ns = timeout_ns
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.counters = FragmentCounters()
        self._pending: OrderedDict[Hashable, _Pending] = OrderedDict()
        self._held = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def held_bytes(self) -> int:
        """Bytes of fragment data currently held."""
        return self._held

    def push(self, at: int, key: Hashable, offset: int, more: bool, data: bytes) -> bytes | None:
        """Add one fragment (``offset`` in bytes); return the payload when it completes."""
        counters = self.counters
        counters.fragments += 1
        self.expire(at)
        end = offset + len(data)
        if end > MAX_DATAGRAM or (more and (not data or len(data) % 8)):
            counters.invalid += 1  # RFC 8200 4.5: non-final fragments are multiples of 8
            return None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(at, [])
        added = self._add(pending, offset, end, more, data)
        if added < 0:
            self._drop(key)
            return None
        self._held += added
        if pending.total is not None and pending.held == pending.total:
            self._drop(key)
            counters.reassembled += 1
            pending.pieces.sort()
            return b"".join(piece for _start, _end, piece in pending.pieces)
        self._bound()
        return None

    def expire(self, now: int) -> None:
        """Drop datagrams whose first fragment is older than the timeout at ``now``."""
        pending = self._pending
        limit = now - self.timeout_ns
        while pending:
            key, oldest = next(iter(pending.items()))
            if oldest.first_at >= limit:
                return
            self._drop(key)
            self.counters.timeouts += 1

    def clear(self) -> int:
        """Forget every pending datagram (end of capture); return how many there were."""
        count = len(self._pending)
        self._pending.clear()
        self._held = 0
        return count

    def _add(self, pending: _Pending, start: int, end: int, more: bool, data: bytes) -> int:
        """Merge one fragment; return the bytes it added, -1 if the datagram must go."""
        if not more:
            if pending.total not in (None, end) or any(e > end for _s, e, _p in pending.pieces):
                self.counters.overlaps += 1
                return -1
            pending.total = end
        elif pending.total is not None and end > pending.total:
            self.counters.overlaps += 1
            return -1
        gaps = [(start, end)]
        for s, e, piece in pending.pieces:
            lo, hi = max(s, start), min(e, end)
            if lo >= hi:
                continue
            if piece[lo - s : hi - s] != data[lo - start : hi - start]:
                self.counters.overlaps += 1
                return -1
            gaps = [g for a, b in gaps for g in ((a, min(b, lo)), (max(a, hi), b)) if g[0] < g[1]]
        if not gaps:
            self.counters.duplicates += 1
            return 0
        if len(pending.pieces) + len(gaps) > MAX_PIECES:
            self.counters.invalid += 1
            return -1
        added = 0
        for a, b in gaps:
            pending.pieces.append((a, b, data[a - start : b - start]))
            added += b - a
        pending.held += added
        return added

    def _drop(self, key: Hashable) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._held -= pending.held

    def _bound(self) -> None:
        while self._pending and (
            len(self._pending) > self.max_datagrams or self._held > self.max_bytes
        ):
            key = next(iter(self._pending))
            self._drop(key)
            self.counters.evicted += 1
