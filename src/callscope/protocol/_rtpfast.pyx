# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled twins of `rtp_stats.StreamStats` and `rtp_receiver.RtpReceiver`.

The same figures as the Python classes, to the last bit (tests feed both the same packets):
integers as in Python for every value a packet can carry (64-bit times, 128-bit jitter
sums, floor division), the running mean in doubles in the same order of operations. Values
beyond what a packet carries are clipped on the way in: a time outside 64-bit nanoseconds
(years before 1678 or after 2262), a clock rate above 2^32, a sequence number or timestamp
wider than its field.

`RtpReceiver.take` is what the capture scanner (`callscope.capture._pcapscan`) calls for a
packet of a routed flow: the usual packet is accounted without a Python call.
"""

cimport cython
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.long cimport PyLong_AsLongLongAndOverflow

cdef enum:
    MAX_DROPOUT = 3000  # as in rtp_stats
    MAX_MISORDER = 100
    SEQ_MOD = 65536
    NS = 1000000000

cdef long long MAX_CLOCK = 4294967296
# 32-bit RTP timestamps (RFC 3550 5.1); typed here: Cython would make Python ints of the
# literals, which do not fit a C int
cdef long long TS_MASK = 0xFFFFFFFF
cdef long long TS_HALF = 0x80000000

cdef long long _INT64_MAX = 0x7FFFFFFFFFFFFFFF


cdef long long clip(object value) except? -1:
    """A Python int as a C long long, clipped to its range (the scanner's packet times
    too)."""
    cdef int overflow = 0
    cdef long long result = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow > 0:
        return _INT64_MAX
    if overflow < 0:
        return -_INT64_MAX - 1
    return result


cdef object _py(int128 value):
    """An int128 as a Python int."""
    if -_INT64_MAX - 1 <= value <= _INT64_MAX:
        return <long long>value
    cdef long long high = <long long>(value >> 64)
    cdef unsigned long long low = <unsigned long long>(value & <int128>0xFFFFFFFFFFFFFFFF)
    return (<object>high << 64) | <object>low


@cython.cdivision(True)
cdef inline int128 _floordiv(int128 num, long long den) noexcept:
    """Python's ``num // den`` for den > 0 (C division truncates towards zero)."""
    cdef long long small, small_q
    cdef int128 q
    if -_INT64_MAX <= num <= _INT64_MAX:  # the usual case: a 64-bit division is cheaper
        small = <long long>num
        small_q = small // den
        if small % den != 0 and small < 0:
            small_q -= 1
        return small_q
    q = num // den
    if num % den != 0 and num < 0:
        q -= 1
    return q


cdef class StreamStats:
    """Sans-IO accumulator for one RTP stream (see `callscope.protocol.rtp_stats`)."""

    def __cinit__(self):
        self._bad_sequence = -1

    def receive(self, at, sequence, timestamp, clock_rate, marker=False, comfort_noise=False):
        """Account one packet (see `callscope.protocol.rtp_stats.StreamStats.receive`)."""
        cdef long long clock = clip(clock_rate)
        if clock < 0:
            clock = 0
        elif clock > MAX_CLOCK:
            clock = MAX_CLOCK
        self.account(
            clip(at), clip(sequence) & 0xFFFF, clip(timestamp) & TS_MASK, clock,
            bool(marker), bool(comfort_noise),
        )

    cdef void account(self, long long at, long long sequence, long long timestamp,
                      long long clock_rate, bint marker, bint comfort_noise) noexcept:
        cdef long long packets = self.packets
        cdef long long step, timestamp_delta, delta
        cdef int128 difference, jitter16
        if packets == 0:
            self._first_at = self._last_at = self._prev_at = at
            self._base = self._highest = sequence
            self._window_lo = 1
            self._window_hi = 0
            self._prev_timestamp = timestamp
            self._after_comfort_noise = comfort_noise
            self._clock_rate = clock_rate
            self.packets = 1
            return
        step = (sequence - self._highest) & 0xFFFF
        if 0 < step < MAX_DROPOUT:  # in order, maybe after a loss
            self._highest += step
            if step >= 128:
                self._window_hi = 0
                self._window_lo = 1
            elif step >= 64:
                self._window_hi = self._window_lo << (step - 64)
                self._window_lo = 1
            else:
                self._window_hi = (self._window_hi << step) | (self._window_lo >> (64 - step))
                self._window_lo = (self._window_lo << step) | 1
        else:
            self._sequence(sequence, step)
        if clock_rate:
            # RFC 3550 5.1: timestamps wrap, so compare them modulo 2^32
            timestamp_delta = (
                (timestamp - self._prev_timestamp + TS_HALF) & TS_MASK
            ) - TS_HALF
            delta = at - self._prev_at
            self._prev_at = at
            self._clock_rate = clock_rate
            self._prev_timestamp = timestamp
            difference = _floordiv(
                <int128>delta * clock_rate - <int128>timestamp_delta * NS, clock_rate
            )
            if difference < 0:
                difference = -difference
            jitter16 = self._jitter16
            jitter16 = jitter16 + difference - ((jitter16 + 8) >> 4)
            self._jitter16 = jitter16
            if not (marker or comfort_noise or timestamp_delta < 0 or self._after_comfort_noise):
                if delta > self.max_delta:
                    self.max_delta = delta
                # Wireshark divides by the packets received before this one
                self._mean_jitter16 = (
                    self._mean_jitter16 * <double>(packets - 1) + <double>jitter16
                ) / <double>packets
                if jitter16 > self._max_jitter16:
                    self._max_jitter16 = jitter16
        else:
            self._timing(at, timestamp, clock_rate, marker or comfort_noise)
        self._after_comfort_noise = comfort_noise
        self._last_at = at
        self.packets = packets + 1

    cdef void _sequence(self, long long sequence, long long step) noexcept:
        cdef long long back
        cdef bint seen
        if step == 0 or step > SEQ_MOD - MAX_MISORDER:
            back = (self._highest - sequence) & 0xFFFF
            if back < 64:
                seen = (self._window_lo >> back) & 1
            elif back < 128:
                seen = (self._window_hi >> (back - 64)) & 1
            else:
                seen = False  # beyond the window: taken as late, not as a duplicate
            if seen:
                self.duplicates += 1
            else:
                if back < 64:
                    self._window_lo |= (<unsigned long long>1) << back
                elif back < 128:
                    self._window_hi |= (<unsigned long long>1) << (back - 64)
                self.reordered += 1
        elif sequence == self._bad_sequence:
            # two sequential packets after a big jump: the sender restarted (RFC 3550 A.1)
            self._expected_before += self._highest - self._base + 1
            self.sequence_resets += 1
            self._highest = sequence + SEQ_MOD
            self._base = self._highest - 1
            self._window_lo = 0b11
            self._window_hi = 0
            self._bad_sequence = -1
        else:
            self._bad_sequence = (sequence + 1) & 0xFFFF

    cdef void _timing(self, long long at, long long timestamp, long long clock_rate,
                      bint irregular) noexcept:
        cdef long long timestamp_delta = (
            (timestamp - self._prev_timestamp + TS_HALF) & TS_MASK
        ) - TS_HALF
        cdef long long delta = at - self._prev_at
        cdef int128 difference
        cdef long long count
        self._prev_at = at
        if clock_rate:
            self._clock_rate = clock_rate
            self._prev_timestamp = timestamp
            difference = _floordiv(
                <int128>delta * clock_rate - <int128>timestamp_delta * NS, clock_rate
            )
            if difference < 0:
                difference = -difference
            self._jitter16 += difference - ((self._jitter16 + 8) >> 4)
        if irregular or timestamp_delta < 0 or self._after_comfort_noise:
            return
        if delta > self.max_delta:
            self.max_delta = delta
        if clock_rate:
            count = self.packets
            self._mean_jitter16 = (
                self._mean_jitter16 * <double>(count - 1) + <double>self._jitter16
            ) / <double>count
            if self._jitter16 > self._max_jitter16:
                self._max_jitter16 = self._jitter16

    @property
    def first_at(self):
        return self._first_at if self.packets else None

    @property
    def last_at(self):
        return self._last_at if self.packets else None

    @property
    def expected(self):
        if self.packets == 0:
            return 0
        return self._expected_before + self._highest - self._base + 1

    @property
    def lost(self):
        return max(0, self.expected - (self.packets - self.duplicates))

    @property
    def extended_highest_sequence(self):
        return self._highest & 0xFFFFFFFF

    @property
    def jitter(self):
        return _py(
            _floordiv(self._jitter16 * self._clock_rate + 8 * <int128>NS, 16 * <long long>NS)
        )

    @property
    def jitter_ms(self):
        return <double>self._jitter16 / 16e6

    @property
    def mean_jitter_ms(self):
        return self._mean_jitter16 / 16e6

    @property
    def max_jitter_ms(self):
        return <double>self._max_jitter16 / 16e6

    @property
    def max_delta_ms(self):
        return self.max_delta / 1e6

    def report(self):
        """A frozen snapshot of every figure."""
        from callscope.protocol.rtp_stats import report_of

        return report_of(self)


cdef class RtpReceiver:
    """The hot path of one RTP flow (see `callscope.protocol.rtp_receiver.RtpReceiver`)."""

    def __cinit__(self):
        self._hot_ssrc = -1
        self._run_pt = -1

    cdef bint take(self, long long at, const unsigned char *data, Py_ssize_t size) except -1:
        """Account the usual packet (version 2, no CSRC, extension, padding or marker; the
        SSRC and payload type of the packet before); False for any other packet. ``data``:
        the datagram's ``size`` octets."""
        cdef long long ssrc
        cdef int second
        cdef long long seq, timestamp
        if size < 12 or data[0] != 0x80:
            return False
        second = data[1]
        ssrc = (<long long>data[8] << 24) | (data[9] << 16) | (data[10] << 8) | data[11]
        if ssrc != self._hot_ssrc or second != self._run_pt or self._hot_stats is None:
            return False
        seq = (data[2] << 8) | data[3]
        timestamp = (<long long>data[4] << 24) | (data[5] << 16) | (data[6] << 8) | data[7]
        self._hot_stats.account(at, seq, timestamp, self._hot_clock, False, False)
        self.last_at = at
        self._run += 1
        sink = self._sink
        if sink is not None:
            sink.write(
                self.owner.key, self.direction, at, ssrc, seq, timestamp, second, False,
                PyBytes_FromStringAndSize(<const char *>data + 12, size - 12),
            )
        return True

    cdef _deliver(self, at, payload):
        if PyBytes_CheckExact(payload) and self.take(
            clip(at), <const unsigned char *>PyBytes_AS_STRING(payload),
            PyBytes_GET_SIZE(payload),
        ):
            return
        self._general(at, payload)

    def receive(self, at, payload):
        """One datagram of this flow: the usual packet here, any other in ``_general``."""
        self._deliver(at, payload)

    def __call__(self, at, payload):
        self._deliver(at, payload)

    def _general(self, at, payload):
        raise NotImplementedError
