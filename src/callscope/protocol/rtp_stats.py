"""Per-stream RTP reception statistics (RFC 3550 A.1, A.3, A.8), sans-IO.

Theory of operation
-------------------
`StreamStats.receive(at, sequence, timestamp, clock_rate)` is called once per packet of
one stream (one SSRC from one source), in arrival order. It keeps:

* Sequence state as in RFC 3550 A.1, with the extended highest sequence number kept as an
  unbounded integer (so no separate cycle count). A jump of MAX_DROPOUT or more, or a step
  back of more than MAX_MISORDER, is held on probation: if the next packet follows it, the
  sender restarted its sequence and a new run begins (`sequence_resets`); the numbers of
  earlier runs are kept. Late packets are `reordered`; a packet seen before (within the
  last 128 sequence numbers) is a `duplicate`. `lost` = expected - unique packets, floored
  at 0 (RFC 3550 6.4.1 lets it go negative; a call record never says "-2 lost").
* Interarrival jitter as in RFC 3550 A.8, ``J += (|D| - J) / 16`` in integers: D is
  ``(arrival delta) - (timestamp delta) / clock_rate``, computed exactly in nanoseconds from
  the int-ns arrival times, and J is kept scaled by 16. Packets with ``clock_rate`` 0 (RFC
  4733 events: their timestamp stays at the event start) do not update J and keep the
  previous timestamp as reference, but do move the arrival reference, as Wireshark 4.0
  does; this is what makes the figures equal to tshark's on streams that carry DTMF.
* The largest arrival delta between packets, and a mean and maximum of the jitter, over
  "regular" packets with the rules of Wireshark's RTP stream analysis (``tshark -z
  rtp,streams``): the first packet, packets with the marker bit (a talkspurt after silence
  suppression), comfort noise and the packet after it, and packets whose timestamp went
  backwards are left out. The mean is Wireshark's running mean, weighted by all packets
  received before. On the reference captures every figure equals tshark 4.0's to the
  printed microsecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from callscope.core.compiled import compiled_module

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "PythonStreamStats", "StreamReport", "StreamStats"]

#: RFC 3550 A.1: largest forward jump still taken as loss within one run.
MAX_DROPOUT = 3000
#: RFC 3550 A.1: largest step back still taken as a late packet.
MAX_MISORDER = 100
_SEQ_MOD = 1 << 16
_WINDOW_BITS = 128  # duplicate detection reaches this many sequence numbers back
_WINDOW_MASK = (1 << _WINDOW_BITS) - 1
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StreamReport:
    """A snapshot of `StreamStats`; times in int ns, jitter and delta also in ms."""

    packets: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    sequence_resets: int
    first_at: int | None
    last_at: int | None
    max_delta_ms: float
    jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float


class StreamStats:
    """Sans-IO accumulator for one RTP stream (see the module docs)."""

    __slots__ = (
        "_after_comfort_noise",
        "_bad_sequence",
        "_base",
        "_clock_rate",
        "_expected_before",
        "_highest",
        "_jitter16",
        "_max_jitter16",
        "_mean_jitter16",
        "_prev_at",
        "_prev_timestamp",
        "_window",
        "duplicates",
        "first_at",
        "last_at",
        "max_delta",
        "packets",
        "reordered",
        "sequence_resets",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.duplicates = 0
        self.reordered = 0
        self.sequence_resets = 0
        self.first_at: int | None = None
        self.last_at: int | None = None
        #: largest arrival delta between regular packets, ns
        self.max_delta = 0
        self._base = 0  # extended sequence number of the first packet of this run
        self._highest = 0  # extended highest sequence number of this run
        self._expected_before = 0  # packets expected in earlier runs
        self._bad_sequence = -1  # RFC 3550 A.1 bad_seq: probation after a big jump
        self._window = 0  # bit i: sequence number (highest - i) was received
        self._prev_at = 0
        self._prev_timestamp = 0
        self._clock_rate = 0
        self._jitter16 = 0  # RFC 3550 A.8 jitter in ns, scaled by 16
        self._mean_jitter16 = 0.0
        self._max_jitter16 = 0
        self._after_comfort_noise = False

    def receive(  # noqa: PLR0917 - positional: called per packet
        self,
        at: int,
        sequence: int,
        timestamp: int,
        clock_rate: int,
        marker: bool = False,
        comfort_noise: bool = False,
    ) -> None:
        """Account one packet: arrival time (int ns), RTP sequence number and timestamp,
        the payload's RTP clock rate (0 for telephone events), the marker bit and whether
        the payload is comfort noise (RFC 3389).

        Called for every media packet: the usual case (in order, a clock rate) is inline,
        with positional arguments; the rest is in `_sequence` and `_timing`.
        """
        packets = self.packets
        if packets == 0:
            self.first_at = self.last_at = self._prev_at = at
            self._base = self._highest = sequence
            self._window = 1
            self._prev_timestamp = timestamp
            self._after_comfort_noise = comfort_noise
            self._clock_rate = clock_rate
            self.packets = 1
            return
        step = (sequence - self._highest) & 0xFFFF
        if 0 < step < MAX_DROPOUT:  # in order, maybe after a loss
            self._highest += step
            self._window = ((self._window << step) | 1) & _WINDOW_MASK
        else:
            self._sequence(sequence, step)
        if clock_rate:  # `_timing`, inline
            # RFC 3550 5.1: timestamps wrap, so compare them modulo 2^32
            timestamp_delta = (
                (timestamp - self._prev_timestamp + 0x80000000) & 0xFFFFFFFF
            ) - 0x80000000
            delta = at - self._prev_at
            self._prev_at = at
            self._clock_rate = clock_rate
            self._prev_timestamp = timestamp
            jitter16 = self._jitter16
            difference = (delta * clock_rate - timestamp_delta * _NS) // clock_rate
            if difference < 0:
                difference = -difference
            self._jitter16 = jitter16 = jitter16 + difference - ((jitter16 + 8) >> 4)
            if not (marker or comfort_noise or timestamp_delta < 0 or self._after_comfort_noise):
                if delta > self.max_delta:  # noqa: PLR1730 - cheaper than max()
                    self.max_delta = delta
                # Wireshark divides by the packets received before this one
                self._mean_jitter16 = (self._mean_jitter16 * (packets - 1) + jitter16) / packets
                if jitter16 > self._max_jitter16:  # noqa: PLR1730
                    self._max_jitter16 = jitter16
        else:
            self._timing(at, timestamp, clock_rate, marker or comfort_noise)
        self._after_comfort_noise = comfort_noise
        self.last_at = at
        self.packets = packets + 1

    def _sequence(self, sequence: int, step: int) -> None:
        """RFC 3550 A.1 update_seq for the other cases, with duplicate and reordering counts."""
        if step == 0 or step > _SEQ_MOD - MAX_MISORDER:
            back = (self._highest - sequence) & 0xFFFF
            bit = 1 << back if back < _WINDOW_BITS else 0
            if self._window & bit:
                self.duplicates += 1
            else:
                self._window |= bit
                self.reordered += 1
        elif sequence == self._bad_sequence:
            # two sequential packets after a big jump: the sender restarted (RFC 3550 A.1);
            # the new run starts at the packet held on probation
            self._expected_before += self._highest - self._base + 1
            self.sequence_resets += 1
            self._highest = sequence + _SEQ_MOD
            self._base = self._highest - 1
            self._window = 0b11
            self._bad_sequence = -1
        else:
            self._bad_sequence = (sequence + 1) & 0xFFFF

    def _timing(self, at: int, timestamp: int, clock_rate: int, irregular: bool) -> None:
        """RFC 3550 A.8 jitter and the arrival delta (Wireshark's rules for regular packets)."""
        # RFC 3550 5.1: timestamps wrap, so compare them modulo 2^32
        timestamp_delta = (timestamp - self._prev_timestamp + 0x80000000) & 0xFFFFFFFF
        timestamp_delta -= 0x80000000
        delta = at - self._prev_at
        self._prev_at = at
        if clock_rate:
            self._clock_rate = clock_rate
            self._prev_timestamp = timestamp
            difference = abs((delta * clock_rate - timestamp_delta * _NS) // clock_rate)
            self._jitter16 += difference - ((self._jitter16 + 8) >> 4)
        if irregular or timestamp_delta < 0 or self._after_comfort_noise:
            return
        self.max_delta = max(self.max_delta, delta)
        if clock_rate:
            count = self.packets  # Wireshark divides by the packets received before this one
            self._mean_jitter16 = (self._mean_jitter16 * (count - 1) + self._jitter16) / count
            self._max_jitter16 = max(self._max_jitter16, self._jitter16)

    @property
    def expected(self) -> int:
        """Packets expected from the extended sequence numbers (RFC 3550 A.3), all runs."""
        if self.packets == 0:
            return 0
        return self._expected_before + self._highest - self._base + 1

    @property
    def lost(self) -> int:
        """Expected minus unique packets received, never negative."""
        return max(0, self.expected - (self.packets - self.duplicates))

    @property
    def extended_highest_sequence(self) -> int:
        """RFC 3550 6.4.1 extended highest sequence number received (32 bits)."""
        return self._highest & 0xFFFFFFFF

    @property
    def jitter(self) -> int:
        """Current interarrival jitter in RTP timestamp units (rounded), as an RR reports it."""
        return (self._jitter16 * self._clock_rate + 8 * _NS) // (16 * _NS)

    @property
    def jitter_ms(self) -> float:
        """Current interarrival jitter in milliseconds."""
        return self._jitter16 / 16e6

    @property
    def mean_jitter_ms(self) -> float:
        """Mean jitter over regular packets, computed as Wireshark does."""
        return self._mean_jitter16 / 16e6

    @property
    def max_jitter_ms(self) -> float:
        """Largest jitter over regular packets."""
        return self._max_jitter16 / 16e6

    @property
    def max_delta_ms(self) -> float:
        """Largest arrival gap between regular packets, in milliseconds."""
        return self.max_delta / 1e6

    def report(self) -> StreamReport:
        """A frozen snapshot of every figure."""
        return report_of(self)


def report_of(stats: StreamStats) -> StreamReport:
    """`StreamStats.report` of either class (the compiled twin's calls it too)."""
    return StreamReport(
        packets=stats.packets,
        expected=stats.expected,
        lost=stats.lost,
        duplicates=stats.duplicates,
        reordered=stats.reordered,
        sequence_resets=stats.sequence_resets,
        first_at=stats.first_at,
        last_at=stats.last_at,
        max_delta_ms=stats.max_delta_ms,
        jitter_ms=stats.jitter_ms,
        mean_jitter_ms=stats.mean_jitter_ms,
        max_jitter_ms=stats.max_jitter_ms,
    )


#: the Python class, also where the compiled twin replaces it (tests compare the two)
PythonStreamStats = StreamStats
_compiled = compiled_module("callscope.protocol._rtpfast")
if _compiled is not None and not TYPE_CHECKING:
    StreamStats = _compiled.StreamStats  # the compiled twin (callscope.core.compiled)
