# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled scanner of capture file records: RTP of routed flows without a Python frame.

`PacketPipeline.datagrams` (`callscope.capture.source`) decodes records one by one; for a
pcap or pcapng file read with the consumer's `MediaRoutes` it hands the file reader a
`PcapScanner`, and the reader lets it take the records it can finish by itself from each
buffer before yielding the next one (`CaptureFile._pcap_loop`: classic pcap records;
`CaptureFile._pcapng`: Enhanced Packet Blocks, with the reader's block checks). The
scanner takes a record only where the pipeline's own fast path would end it without a
`Datagram`:

* the frame is IPv4 / UDP behind an Ethernet header (at most one 802.1Q tag) or a Linux
  cooked header, with no IP options, not a fragment, whole - the same conditions;
* no housekeeping is due at its time (``housekeeping_at``);
* it is RTP of a routed flow before the routes' deadline: a mirror duplicate of it is
  dropped (the same key, hash and window as the pipeline's), else the receiver takes it;
  a compiled `RtpReceiver` accounts the usual packet itself (`RtpReceiver.take`), any
  other receiver is called as ``receiver(at, payload)``.

Any other record is left where it is (the scan returns its offset), and the Python path
decodes it as before. Counters go to the pipeline's `CaptureCounters` at the end of each
scan.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyObject_Hash

cdef extern from "Python.h":
    PyObject *PyDict_SetDefault(object table, object key, object default) except NULL

from callscope.protocol._rtpfast cimport RtpReceiver, clip


cdef inline unsigned int _u32(const unsigned char *p, bint big_endian) noexcept:
    if big_endian:
        return (<unsigned int>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
    return (<unsigned int>p[3] << 24) | (p[2] << 16) | (p[1] << 8) | p[0]


cdef inline unsigned int _be16(const unsigned char *p) noexcept:
    return (p[0] << 8) | p[1]


cdef extern from "Python.h":
    Py_hash_t _Py_HashBytes(const void *data, Py_ssize_t size)


# CPython's tuple hash (Objects/tupleobject.c, xxHash lanes, 64-bit): the duplicate key's
# hash is built from its items' hashes without making the tuple (or the payload's bytes),
# equal to ``hash((ident, flow, payload))`` of the Python path (a test holds them to it)
cdef extern from *:
    """
    #define CS_XXPRIME_1 ((Py_uhash_t)11400714785074694791ULL)
    #define CS_XXPRIME_2 ((Py_uhash_t)14029467366897019727ULL)
    #define CS_XXPRIME_5 ((Py_uhash_t)2870177450012600261ULL)
    static inline Py_uhash_t cs_lane(Py_uhash_t acc, Py_uhash_t lane) {
        acc += lane * CS_XXPRIME_2;
        acc = (acc << 31) | (acc >> 33);
        return acc * CS_XXPRIME_1;
    }
    static inline Py_hash_t cs_key_hash(Py_hash_t a, Py_hash_t b, Py_hash_t c) {
        Py_uhash_t acc = CS_XXPRIME_5;
        acc = cs_lane(acc, (Py_uhash_t)a);
        acc = cs_lane(acc, (Py_uhash_t)b);
        acc = cs_lane(acc, (Py_uhash_t)c);
        acc += 3 ^ (CS_XXPRIME_5 ^ 3527539UL);
        return acc == (Py_uhash_t)-1 ? 1546275796 : (Py_hash_t)acc;
    }
    """
    Py_hash_t cs_key_hash(Py_hash_t a, Py_hash_t b, Py_hash_t c) noexcept


cdef inline Py_hash_t _bytes_hash(const unsigned char *data, Py_ssize_t size) noexcept:
    # hash(b"") is 0 (Objects/bytesobject.c), _Py_HashBytes gives the rest
    return _Py_HashBytes(data, size) if size else 0


def key_hash(int ident, bytes flow, bytes payload):
    """``hash((ident, flow, payload))`` as the scanner computes it (for tests)."""
    return cs_key_hash(
        ident,
        _bytes_hash(<const unsigned char *>PyBytes_AS_STRING(flow), PyBytes_GET_SIZE(flow)),
        _bytes_hash(<const unsigned char *>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)),
    )


cdef extern from *:
    ctypedef unsigned long long uint128 "unsigned __int128"

cdef enum:
    LEAVE = 0  # the record is left to the pipeline's Python loop
    TAKEN = 1  # the record was taken (a duplicate dropped, or RTP handed to its receiver)
    MAX_INTERFACES = 16  # pcapng interfaces of a section the scanner keeps in C


cdef class PcapScanner:
    """Takes the records of a capture buffer that need no Python (see the module)."""

    cdef object routes, dedup, counters, sweep_size
    cdef dict flows, table
    cdef long long window, deadline
    cdef long long packets, octets, datagrams, duplicates
    cdef long long _housekeeping_at
    cdef long long _last_at  # taken here (when ``_any``)
    cdef bint _any
    cdef object _set_at  # set by the pipeline
    #: records taken by the last ``scan``
    cdef public Py_ssize_t taken

    def __init__(self, routes, dedup, counters, housekeeping_at):
        """The pipeline's media routes, duplicate filter, counters and next housekeeping;
        each scan gets the layout of its records from the file reader."""
        self.routes = routes
        self.flows = routes.flows
        self.dedup = dedup
        self.table = dedup.table
        self.window = clip(dedup.window_ns)
        self.counters = counters
        self._housekeeping_at = clip(housekeeping_at)

    @property
    def housekeeping_at(self):
        """Packet time from which the pipeline must see every record (its housekeeping)."""
        return self._housekeeping_at

    @housekeeping_at.setter
    def housekeeping_at(self, at):
        self._housekeeping_at = clip(at)

    @property
    def last_at(self):
        """Time of the last record decoded: taken here or set by the pipeline (None before
        the first)."""
        return self._last_at if self._any else self._set_at

    @last_at.setter
    def last_at(self, at):
        self._set_at = at  # any int: a damaged pcapng block may carry a time out of range
        self._any = False

    def scan(self, bytes buf, Py_ssize_t pos, Py_ssize_t end, int linktype, bint big_endian,
             long long multiplier, Py_ssize_t header_length):
        """Take classic pcap records from ``buf[pos:end]`` while they need no Python, with
        the file's link type, byte order, time multiplier (to ns) and record header length;
        return the offset of the first record left (``end`` or an incomplete record when
        all were taken)."""
        cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t size
        cdef long long at
        if end > PyBytes_GET_SIZE(buf):
            end = PyBytes_GET_SIZE(buf)
        self._begin()
        try:
            while end - pos >= header_length:
                size = _u32(base + pos + 8, big_endian)
                if size > end - pos - header_length:
                    break
                at = <long long>_u32(base + pos, big_endian) * 1000000000 + (
                    <long long>_u32(base + pos + 4, big_endian) * multiplier
                )
                if self._frame(at, linktype, base + pos + header_length, size) == LEAVE:
                    break
                pos += header_length + size
        finally:
            self._end()
        return pos

    def scan_pcapng(self, bytes buf, Py_ssize_t pos, Py_ssize_t end, bint big_endian,
                    list interfaces):
        """Take the Enhanced Packet Blocks (pcapng 4.3) from ``buf[pos:end]`` while they
        need no Python, with the section's byte order and ``interfaces`` (``(linktype,
        multiplier, divisor, offset ns, snaplen)``, `callscope.capture.pcapng`); return the
        offset of the first block left. The block checks are the reader's."""
        cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(buf)
        cdef int linktypes[MAX_INTERFACES]
        cdef unsigned long long mults[MAX_INTERFACES]
        cdef unsigned long long divs[MAX_INTERFACES]
        cdef long long offsets[MAX_INTERFACES]
        cdef bint usable[MAX_INTERFACES]
        cdef Py_ssize_t count = min(len(interfaces), MAX_INTERFACES), i
        cdef unsigned int block_type, length, iface, captured
        cdef uint128 ticks
        cdef long long at
        cdef int overflow
        for i in range(count):
            linktype, mult, div, offset, _snap = interfaces[i]
            usable[i] = (
                0 <= linktype < 65536 and 0 < mult < (1 << 40) and 0 < div < (1 << 63)
                and -(1 << 62) < offset < (1 << 62)
            )
            if usable[i]:
                linktypes[i], mults[i], divs[i], offsets[i] = linktype, mult, div, offset
        if end > PyBytes_GET_SIZE(buf):
            end = PyBytes_GET_SIZE(buf)
        self._begin()
        try:
            while end - pos >= 32:
                block_type = _u32(base + pos, big_endian)
                length = _u32(base + pos + 4, big_endian)
                if block_type != 6 or length < 32 or length > end - pos or length & 3:
                    break
                iface = _u32(base + pos + 8, big_endian)
                captured = _u32(base + pos + 20, big_endian)
                if (
                    captured > length - 32 or iface >= count or not usable[iface]
                    or _u32(base + pos + length - 4, big_endian) != length
                ):
                    break
                ticks = (<uint128>_u32(base + pos + 12, big_endian) << 32) | _u32(
                    base + pos + 16, big_endian
                )
                ticks = ticks * mults[iface] // divs[iface]
                if ticks >= (<uint128>1 << 62):
                    break  # beyond year 2116 with any offset: the Python loop's business
                at = <long long>ticks + offsets[iface]
                if self._frame(at, linktypes[iface], base + pos + 28, captured) == LEAVE:
                    break
                pos += length
        finally:
            self._end()
        return pos

    cdef void _begin(self):
        self.packets = self.octets = self.datagrams = self.duplicates = 0
        self.taken = 0
        self.deadline = clip(self.routes.deadline)
        self.sweep_size = self.dedup.sweep_size

    cdef void _end(self) except *:
        if self.taken:
            counters = self.counters
            counters.packets += self.packets
            counters.bytes += self.octets
            counters.datagrams += self.datagrams
            counters.duplicates += self.duplicates

    cdef int _frame(self, long long at, int linktype, const unsigned char *frame,
                    Py_ssize_t size) except -1:
        """One record's frame: TAKEN if done here, LEAVE for the pipeline's loop."""
        cdef Py_ssize_t l3, start, stop, udp_stop
        cdef unsigned int kind
        cdef const unsigned char *udp
        cdef Py_hash_t flow_hash
        cdef PyObject *found
        cdef long long last, window = self.window
        cdef object flow, route, key, key_at
        if at >= self._housekeeping_at:
            return LEAVE
        # the pipeline's fast path conditions (PacketPipeline.datagrams)
        if linktype == 1:
            if size < 14:
                return LEAVE
            kind = _be16(frame + 12)
            if kind == 0x0800:
                l3 = 14
            elif kind == 0x8100 and size >= 18 and _be16(frame + 16) == 0x0800:
                l3 = 18
            else:
                return LEAVE
        elif linktype == 113:
            if size < 16 or _be16(frame + 14) != 0x0800:
                return LEAVE
            l3 = 16
        elif linktype == 276:
            if size < 2 or _be16(frame) != 0x0800:
                return LEAVE
            l3 = 20
        else:
            return LEAVE
        if size < l3 + 28:
            return LEAVE
        if frame[l3] != 0x45 or frame[l3 + 9] != 17 or _be16(frame + l3 + 6) & 0x3FFF:
            return LEAVE
        start = l3 + 28
        stop = l3 + _be16(frame + l3 + 2)
        udp_stop = l3 + 20 + _be16(frame + l3 + 24)
        if stop > size or not start <= udp_stop <= stop:
            return LEAVE
        udp = frame + start
        flow = PyBytes_FromStringAndSize(<const char *>frame + l3 + 12, 12)
        flow_hash = PyObject_Hash(flow)  # kept in the bytes for the lookup below
        # a routed flow's RTP (RFC 3550 5.1: version 2, 12 octets at least)
        found = PyDict_GetItem(self.flows, flow)
        if found is NULL or at >= self.deadline or udp_stop - start < 12 or udp[0] & 0xC0 != 0x80:
            return LEAVE
        route = <object>found
        self.packets += 1
        self.octets += size
        self.taken += 1
        self._last_at = at
        self._any = True
        if window:  # DuplicateFilter.seen with the pipeline's key
            key = cs_key_hash(
                _be16(frame + l3 + 4), flow_hash, _bytes_hash(udp, udp_stop - start)
            )
            key_at = at
            found = PyDict_SetDefault(self.table, key, key_at)  # one lookup if new
            if found is not <PyObject *>key_at:
                last = <object>found
                if -window <= at - last <= window:
                    self.duplicates += 1
                    return TAKEN
                PyDict_SetItem(self.table, key, key_at)  # in place, as the pipeline does
            if len(self.table) > self.sweep_size:
                self.sweep_size = self.dedup.sweep(at)
        self.datagrams += 1
        if isinstance(route, RtpReceiver) and (<RtpReceiver>route).take(
            at, udp, udp_stop - start
        ):
            return TAKEN
        route(at, PyBytes_FromStringAndSize(<const char *>udp, udp_stop - start))
        self.deadline = clip(self.routes.deadline)  # the receiver may have moved it
        return TAKEN


def drop_stale(dict table, long long limit):
    """`DuplicateFilter.sweep`'s loop: delete the entries at the front of ``table`` (key hash
    -> packet time, in insertion order) older than ``limit``, up to the first that is not.

    Nearly every entry is stale at a sweep: the table is emptied and the rest (the entries
    from the first that is not stale on) put back in their order, cheaper than deleting the
    stale ones one by one. The kept keys and times wait in two lists, not in a tuple each:
    a tuple is an object the cyclic collector counts, and a sweep that kept 10,000 entries
    would bring its next collection half-way.
    """
    cdef Py_ssize_t pos = 0, before, n
    cdef PyObject *key
    cdef PyObject *value
    cdef int overflow
    cdef long long at
    cdef list keys = []
    cdef list times = []
    cdef bint stale_seen = False
    while True:
        before = pos
        if not PyDict_Next(table, &pos, &key, &value):
            break
        at = PyLong_AsLongLongAndOverflow(<object>value, &overflow)
        if overflow > 0 or (overflow == 0 and at >= limit):
            pos = before
            break
        stale_seen = True
    if not stale_seen:
        return
    while PyDict_Next(table, &pos, &key, &value):
        keys.append(<object>key)
        times.append(<object>value)
    table.clear()
    for n in range(len(keys)):
        table[keys[n]] = times[n]
