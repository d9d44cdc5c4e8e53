# Declarations of the compiled RTP hot path (see _rtpfast.pyx), for the capture scanner.

cdef extern from *:
    ctypedef long long int128 "__int128"

cdef long long clip(object value) except? -1

cdef class StreamStats:
    cdef public long long packets, duplicates, reordered, sequence_resets, max_delta
    cdef long long _first_at, _last_at, _base, _highest, _expected_before, _bad_sequence
    cdef unsigned long long _window_lo, _window_hi
    cdef long long _prev_at, _prev_timestamp, _clock_rate
    cdef int128 _jitter16, _max_jitter16
    cdef double _mean_jitter16
    cdef bint _after_comfort_noise

    cdef void account(self, long long at, long long sequence, long long timestamp,
                      long long clock_rate, bint marker, bint comfort_noise) noexcept
    cdef void _sequence(self, long long sequence, long long step) noexcept
    cdef void _timing(self, long long at, long long timestamp, long long clock_rate,
                      bint irregular) noexcept


cdef class RtpReceiver:
    cdef public object owner, direction, _sink
    cdef public StreamStats _hot_stats
    cdef public long long last_at, _run, _hot_ssrc, _hot_clock
    cdef public int _run_pt

    cdef bint take(self, long long at, const unsigned char *data, Py_ssize_t size) except -1
    cdef _deliver(self, at, payload)
