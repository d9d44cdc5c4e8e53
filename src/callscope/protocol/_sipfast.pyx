# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of `callscope.protocol.sip.SipMessage.parse`'s framing (see core.compiled).

`split_message` does what the Python ``SipMessage.parse`` does up to building the message:
leading line ends, the header block and where the body starts, the lines (CRLF, or bare LF
as HEP sends them), the start line and the header lines through the same tables of lines
seen lately (`protocol.recent.RecentParses`: the tables' dicts are read here, a line not
in them goes through the table's own parse), folded lines, and the body cut by
Content-Length. It returns the message's fields with its defects as bits, in the order the
Python code finds them; the Python code stays the reference (tests compare the two on
fuzzed input), and raises the error for an empty message itself (None here).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.string cimport memchr

# defect bits, in the order SipMessage.parse lists its defects (sip._DEFECT_BITS)
cdef enum:
    LEADING_CRLF = 1
    BARE_LF = 2
    NO_BLANK_LINE = 4
    BAD_HEADER_LINE = 8
    NOT_UTF8 = 16
    BODY_EXCESS = 32
    BODY_TRUNCATED = 64
    BAD_CONTENT_LENGTH = 128


cdef inline Py_ssize_t _find(const char* s, Py_ssize_t start, Py_ssize_t end,
                             const char* what, Py_ssize_t n):
    """bytes.find(what, start, end) for a 2- or 3-byte needle (-1 when absent)."""
    cdef Py_ssize_t i = start
    cdef const char* hit
    while i + n <= end:
        hit = <const char*>memchr(s + i, what[0], end - n + 1 - i)
        if hit == NULL:
            return -1
        i = hit - s
        if s[i + 1] == what[1] and (n == 2 or s[i + 2] == what[2]):
            return i
        i += 1
    return -1


cdef inline bint _ascii(const char* s, Py_ssize_t n):
    cdef Py_ssize_t i
    for i in range(n):
        if <unsigned char>s[i] >= 128:
            return False
    return True


cdef inline bint _digits(bytes text):
    """text.isdigit() and text.isascii() for bytes: ASCII digits only, not empty."""
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(text)
    cdef const char* s = PyBytes_AS_STRING(text)
    if n == 0:
        return False
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return False
    return True


def split_message(bytes data, dict start_seen, object start_parse, dict line_seen,
                  object line_parse):
    """The fields of SipMessage.parse(data) but the defects, given as bits; None for an
    empty message. ``start_seen``/``line_seen`` are the dicts of the start-line and
    header-line tables, ``start_parse``/``line_parse`` the tables themselves."""
    cdef const char* s = PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t start = 0, crlf, lf, end, body_start, head_end, i, line_start, line_end
    cdef int flags = 0
    cdef bint terminated = True, bare = False
    cdef const char* hit
    cdef PyObject* found
    if size and (s[0] == 13 or s[0] == 10):
        while start < size and (s[start] == 13 or s[start] == 10):
            start += 1
        flags |= LEADING_CRLF
    if start >= size:
        return None
    # the header block: up to the first blank line (CRLF CRLF, or LF LF from HEP)
    crlf = _find(s, start, size, b"\n\r\n", 3)
    lf = _find(s, start, crlf + 1 if crlf >= 0 else size, b"\n\n", 2)
    if lf >= 0:
        end, body_start = lf, lf + 2
    elif crlf >= 0:
        end, body_start = crlf, crlf + 3
    else:
        end, body_start, terminated = size, size, False
        while end > start and (s[end - 1] == 13 or s[end - 1] == 10):
            end -= 1
    head_end = end
    if terminated and end > start and s[end - 1] == 13:
        head_end = end - 1
    # bare LF: some line end of the head is LF without CR before it
    for i in range(start, head_end):
        if s[i] == 10 and (i == start or s[i - 1] != 13):
            bare = True
            break
    lines = []
    line_start = start
    while True:
        hit = <const char*>memchr(s + line_start, 10, head_end - line_start)
        if hit == NULL:
            line_end = head_end
            # the last line keeps a CR in a CRLF head (split on CRLF), loses it with bare LF
            if bare and line_end > line_start and s[line_end - 1] == 13:
                line_end -= 1
            lines.append(PyBytes_FromStringAndSize(s + line_start, line_end - line_start))
            break
        i = hit - s
        line_end = i - 1 if i > line_start and s[i - 1] == 13 else i
        lines.append(PyBytes_FromStringAndSize(s + line_start, line_end - line_start))
        line_start = i + 1
    first = lines[0]
    found = PyDict_GetItem(start_seen, first)
    if found != NULL:
        method, uri, code, reason, version = <object>found
    else:
        method, uri, code, reason, version = start_parse(first)
    # the header lines: a line met lately from the table, else parsed by it
    headers = []
    names = []
    cdef Py_ssize_t count = PyList_GET_SIZE(lines), k
    cdef bytes line
    for k in range(1, count):
        line = lines[k]
        found = PyDict_GetItem(line_seen, line)
        if found != NULL:
            pair = <object>found
        else:
            pair = line_parse(line)
        if pair is not None:
            headers.append(pair[0])
            names.append(pair[1])
        elif PyBytes_GET_SIZE(line) and (line[0] == 32 or line[0] == 9) and headers:
            last = len(headers) - 1  # (no negative indexes: wraparound is off)
            previous, joined = headers[last]
            headers[last] = (previous, (joined + b" " + line.strip()).strip())
        elif PyBytes_GET_SIZE(line):
            flags |= BAD_HEADER_LINE
    if bare:
        flags |= BARE_LF
    if not terminated:
        flags |= NO_BLANK_LINE
    if not _ascii(s + start, head_end - start):
        try:
            data[start:head_end].decode("utf-8")
        except UnicodeDecodeError:
            flags |= NOT_UTF8
    body = data[body_start:]
    content_length = None
    if "content-length" in names:
        text = headers[names.index("content-length")][1]
        if _digits(text):
            content_length = int(text)
            if content_length < PyBytes_GET_SIZE(body):
                body = body[:content_length]
                flags |= BODY_EXCESS
            elif content_length > PyBytes_GET_SIZE(body):
                flags |= BODY_TRUNCATED
        else:
            flags |= BAD_CONTENT_LENGTH
    return (method, uri, code, reason, version, tuple(headers), tuple(names), body,
            content_length, flags)
