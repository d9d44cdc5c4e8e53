"""Framing SIP messages out of a byte stream (TCP or decrypted TLS, RFC 3261 18.3).

On a stream the only message boundary is Content-Length: the header block ends at the
first blank line and the body is exactly Content-Length bytes (a missing Content-Length
counts as 0, since RFC 3261 18.3 makes it mandatory on streams). Between messages a peer
may send CRLF keepalives (RFC 5626 4.4.1: ``CRLFCRLF`` ping, ``CRLF`` pong). After bytes
that are not SIP (a capture that starts mid-message, a lost segment) the framer skips to
the next line that is a SIP start line. The buffer is bounded: when it would grow past
``max_buffer`` it is dropped and counted. `SipFramer.feed` never raises.
"""

from __future__ import annotations

from callscope.protocol.sip import is_start_line
from callscope.protocol.sipheaders import canonical_name

# a start line longer than this is not waited for: its bytes are treated as garbage
_MAX_START_LINE = 8192


class SipFramer:
    """Cuts one direction of a stream into complete SIP messages.

    ``overflows`` counts buffers dropped for exceeding ``max_buffer``; ``garbage_bytes``
    counts bytes skipped while looking for a start line; ``keepalives`` counts CRLF runs
    seen between messages.
    """

    def __init__(self, max_buffer: int = 65536 * 4) -> None:
        self.max_buffer = max_buffer
        self.overflows = 0
        self.garbage_bytes = 0
        self.keepalives = 0
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add stream bytes; return every message completed by them, in order."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            message = self._next()
            if message is None:
                break
            messages.append(message)
        if len(self._buffer) > self.max_buffer:
            self._drop_buffer()
        return messages

    def _drop_buffer(self) -> None:
        self.overflows += 1
        self._buffer.clear()

    def _skip_keepalives(self) -> None:
        buffer = self._buffer
        count = 0
        while count < len(buffer) and buffer[count] in (13, 10):
            count += 1
        if count:
            self.keepalives += 1
            del buffer[:count]

    def _next(self) -> bytes | None:
        """One complete message off the front of the buffer, or None if more is needed."""
        buffer = self._buffer
        while True:
            self._skip_keepalives()
            eol = buffer.find(b"\n")
            if eol < 0:
                if len(buffer) > _MAX_START_LINE:
                    self.garbage_bytes += len(buffer)
                    buffer.clear()
                return None
            line = bytes(buffer[: eol - 1 if eol and buffer[eol - 1] == 13 else eol])
            if is_start_line(line):
                break
            # resynchronise: drop this line and look at the next one
            self.garbage_bytes += eol + 1
            del buffer[: eol + 1]
        return self._complete(eol)

    def _complete(self, first_eol: int) -> bytes | None:
        buffer = self._buffer
        crlf = buffer.find(b"\n\r\n", first_eol)
        lf = buffer.find(b"\n\n", first_eol, crlf + 1 if crlf >= 0 else len(buffer))
        if lf >= 0:
            head_end, body_start = lf, lf + 2
        elif crlf >= 0:
            head_end, body_start = crlf, crlf + 3
        else:
            return None
        total = body_start + _content_length(bytes(buffer[first_eol + 1 : head_end]))
        if total > self.max_buffer:
            self._drop_buffer()
            return None
        if len(buffer) < total:
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        return message


def _content_length(head: bytes) -> int:
    """Content-Length from the header lines (compact ``l`` too); 0 if absent or bad."""
    for line in head.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and canonical_name(name) == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() and len(value) <= 9 else 0
    return 0
