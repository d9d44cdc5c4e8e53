# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled twin of `callscope.capture.hepwalk.hep_fields`: a HEPv3 packet's chunks, walked in C.

The Python function reads an agent's packets with one ``struct`` call per packet once it
has learned the agent's layout; here the chunks are simply walked, which in C costs less
than that one call, so no layout is learned. The result is the Python function's for every
input: the same fields, or None in the same cases (a chunk of the wrong size for its type,
a compressed payload, lengths that do not add up, addresses of both families or of one
side only), where `HepPacket.parse` decides. tests/capture/test_hepfast.py holds the two to
it on the test captures and on fuzzed packets.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from libc.string cimport memcpy

from callscope.capture.hepwalk import _key_bytes

# vendor 0 chunk types kept (their value's offset and size); others are walked over
DEF KEPT = 19
DEF COMPRESSED = 16
DEF PAYLOAD = 15

# the only value size `HepPacket.parse` accepts for a chunk type (0: any), as hepwalk._FIXED
cdef int FIXED[KEPT]
FIXED[:] = [0, 1, 1, 4, 4, 16, 16, 2, 2, 4, 4, 1, 4, 2, 0, 0, 0, 0, 2]


cdef inline unsigned int _be16(const unsigned char *p) noexcept:
    return (p[0] << 8) | p[1]


cdef inline unsigned int _be32(const unsigned char *p) noexcept:
    return (<unsigned int>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]


cdef bytes _address(const unsigned char *p, Py_ssize_t ip, Py_ssize_t ip_size, Py_ssize_t port):
    """The address octets followed by the 2-octet port (zeros without a port chunk)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ip_size + 2)
    cdef char *dst = PyBytes_AS_STRING(out)
    memcpy(dst, p + ip, ip_size)
    if port >= 0:
        memcpy(dst + ip_size, p + port, 2)
    else:
        dst[ip_size] = 0
        dst[ip_size + 1] = 0
    return out


def hep_fields(bytes data):
    """The collector's fields of a HEPv3 packet, or None (see `hepwalk.hep_fields`)."""
    cdef Py_ssize_t total = PyBytes_GET_SIZE(data)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t start[KEPT]
    cdef Py_ssize_t size[KEPT]
    cdef Py_ssize_t offset = 6, end, length, n
    cdef unsigned int vendor, kind
    cdef bint v4, v6
    cdef Py_ssize_t src_ip, dst_ip, ip_size
    cdef long long at_ns
    if total < 6 or <Py_ssize_t>_be16(p + 4) != total:
        return None
    for n in range(KEPT):
        start[n] = -1
        size[n] = 0
    while offset < total:
        if offset + 6 > total:
            return None
        vendor = _be16(p + offset)
        kind = _be16(p + offset + 2)
        length = _be16(p + offset + 4)
        end = offset + length
        if length < 6 or end > total:
            return None
        if vendor == 0:
            if kind == COMPRESSED:
                return None
            if kind < KEPT:
                if FIXED[kind] and FIXED[kind] != length - 6:
                    return None
                start[kind] = offset + 6  # a repeated chunk: the last one counts
                size[kind] = length - 6
        offset = end
    v4 = start[3] >= 0 or start[4] >= 0
    v6 = start[5] >= 0 or start[6] >= 0
    if v4 and v6:
        return None
    src = dst = None
    if v4 or v6:
        if v4:
            src_ip, dst_ip, ip_size = start[3], start[4], 4
        else:
            src_ip, dst_ip, ip_size = start[5], start[6], 16
        if src_ip < 0 or dst_ip < 0:
            return None
        src = _address(p, src_ip, ip_size, start[7])
        dst = _address(p, dst_ip, ip_size, start[8])
    at = None
    if start[9] >= 0:
        at_ns = <long long>_be32(p + start[9]) * 1_000_000_000
        if start[10] >= 0:
            at_ns += <long long>_be32(p + start[10]) * 1000
        at = at_ns
    key = None
    if start[14] >= 0:
        key = _key(data, p, start[14], size[14])
    return (
        p[start[11]] if start[11] >= 0 else None,
        p[start[2]] if start[2] >= 0 else None,
        src,
        dst,
        at,
        _be32(p + start[12]) if start[12] >= 0 else None,
        key,
        _be16(p + start[18]) if start[18] >= 0 else None,
        data[start[PAYLOAD] : start[PAYLOAD] + size[PAYLOAD]] if start[PAYLOAD] >= 0 else b"",
    )


cdef bytes _key(bytes data, const unsigned char *p, Py_ssize_t at, Py_ssize_t size):
    """The auth key's octets: as sent when ASCII without a closing NUL (the usual key),
    else as `hepwalk._key_bytes` reads them."""
    cdef Py_ssize_t n
    cdef bytes raw = data[at : at + size]
    if size and p[at + size - 1] == 0:
        return _key_bytes(raw)
    for n in range(at, at + size):
        if p[n] >= 0x80:
            return _key_bytes(raw)
    return raw
