"""Suppression of mirror-port duplicates: the same IP packet delivered twice.

A SPAN session that mirrors both directions of two ports, or two mirror sessions, hands the
recorder some packets twice, microseconds apart, possibly with a different TTL (routed
between the two taps), a different IP checksum and a different link header (another VLAN
tag), even a re-marked DSCP. The caller builds the key from what the network does not
change: the IPv4 Identification (IPv6: the flow label), the addresses, the ports and the
transport payload (for TCP the whole segment) - not the TTL / hop limit, the TOS or the
checksums - and asks `DuplicateFilter.seen` whether that key was seen within ``window_ns``
of packet time.

Application-level repeats are not duplicates: RFC 4733 end-of-event packets sent three
times, back to back, differ in their IPv4 identification and are kept. (IPv6 has no
identification field: identical IPv6 packets within the window are suppressed.) This is
distinct from RTP duplicates (same SSRC and sequence number), which stream statistics
count.

Memory is bounded: keys are kept as their 64-bit hashes (salted per process, so collisions
cannot be aimed) with the time they were seen. Entries older than the window are swept
when the table has doubled since the last sweep (at least `MIN_SWEEP` entries), so the
cost is constant per packet whatever the packet rate; if the entries still inside the
window exceed ``max_entries`` the table is cleared (``overflows``). The packet pipeline
inlines `seen` on its fast path, using ``table`` and `sweep` directly.
"""

from __future__ import annotations

from collections.abc import Hashable

from callscope.core.compiled import compiled_module

_scan = compiled_module("callscope.capture._pcapscan")
_drop_stale = None if _scan is None else _scan.drop_stale
_INT64 = 1 << 63

#: smallest table size that triggers a sweep
MIN_SWEEP = 1024


class DuplicateFilter:
    """Answers "was this packet seen within the window?" by packet time."""

    def __init__(self, window_ns: int = 5_000_000, max_entries: int = 16_384) -> None:
        self.window_ns = window_ns
        self.max_entries = max_entries
        #: packets reported as duplicates by `seen`
        self.duplicates = 0
        #: times the table was cleared because it was full (duplicates may be missed)
        self.overflows = 0
        #: key hash -> packet time it was seen
        self.table: dict[int, int] = {}
        #: table size above which the next sweep is due
        self.sweep_size = MIN_SWEEP

    def seen(self, key: Hashable, at: int) -> bool:
        """True if a packet with this key was seen within the window; else remember it."""
        digest = hash(key)
        last = self.table.get(digest)
        if last is not None and -self.window_ns <= at - last <= self.window_ns:
            self.duplicates += 1
            return True
        self.table[digest] = at
        if len(self.table) > self.sweep_size:
            self.sweep(at)
        return False

    def sweep(self, now: int) -> int:
        """Forget entries older than the window at ``now``; return the next sweep size."""
        table = self.table
        limit = now - self.window_ns
        # dicts keep insertion order: the oldest entries are at the front (packet times may
        # step back a little across merged interfaces; such stragglers wait a sweep more)
        if _drop_stale is not None and -_INT64 <= limit < _INT64:
            _drop_stale(table, limit)  # the same loop, compiled
        else:
            stale = []
            for digest, at in table.items():
                if at >= limit:
                    break
                stale.append(digest)
            for digest in stale:
                del table[digest]
        if len(table) > self.max_entries:
            table.clear()
            self.overflows += 1
        self.sweep_size = max(MIN_SWEEP, 2 * len(table))
        return self.sweep_size

    def __len__(self) -> int:
        return len(self.table)
