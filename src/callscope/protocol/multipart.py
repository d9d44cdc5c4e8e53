"""MIME multipart bodies (RFC 2046 5.1) as SIPREC sends them (RFC 7866 8.1).

A SIPREC INVITE carries ``multipart/mixed`` with an ``application/sdp`` part and an
``application/rs-metadata+xml`` part. Real recording clients bend the rules: LF-only line
ends, a missing close delimiter, preambles, a boundary parameter that is absent (bodies
logged without their headers). `parse_multipart` tolerates all of these and raises
`SipParseError` (fixed message) only when no part can be found at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipheaders import ContentType, RawHeader, canonical_name, parse_header_lines
from callscope.protocol.sipuri import decode_text

#: nested multiparts deeper than this are not searched by `body_part`
_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One body part: raw headers (as in `SipMessage.headers`), content type, body bytes.

    A part without Content-Type has ``content_type`` None (RFC 2046 5.1: ``text/plain``).
    """

    headers: tuple[RawHeader, ...]
    names: tuple[str, ...]
    content_type: ContentType | None
    body: bytes

    @property
    def mime(self) -> str:
        """The lower-case ``type/subtype`` of the part (``text/plain`` by default)."""
        return self.content_type.mime if self.content_type is not None else "text/plain"

    def header(self, name: str) -> str | None:
        """Decoded value of the first part header called ``name`` (any case)."""
        key = canonical_name(name)
        if key not in self.names:
            return None
        return decode_text(self.headers[self.names.index(key)][1])[0]


def _boundary(body: bytes, content_type: ContentType | str | None) -> bytes:
    if isinstance(content_type, str):
        content_type = ContentType.parse(content_type)
    if content_type is not None:
        value = content_type.param("boundary")
        if value:
            return value.encode("utf-8")
    # no parameter: take it from the first delimiter line (bodies logged without headers)
    stripped = body.lstrip(b" \t\r\n")
    if stripped.startswith(b"--"):
        line = stripped.split(b"\n", 1)[0].rstrip(b"\r \t")
        if len(line) > 2:
            return line[2:]
    raise SipParseError("multipart body has no boundary")


def _delimiters(body: bytes, marker: bytes) -> list[int]:
    """Offsets of every ``--boundary`` that starts a line (RFC 2046 5.1.1)."""
    found: list[int] = []
    pos = body.find(marker)
    while pos >= 0:
        if pos == 0 or body[pos - 1] == 10:
            found.append(pos)
        pos = body.find(marker, pos + len(marker))
    return found


def _part(chunk: bytes) -> BodyPart:
    """Parse one part: headers, a blank line, then content (RFC 2046 5.1.1)."""
    if chunk.startswith(b"\r\n"):
        return BodyPart((), (), None, chunk[2:])
    if chunk.startswith(b"\n"):
        return BodyPart((), (), None, chunk[1:])
    crlf = chunk.find(b"\r\n\r\n")
    lf = chunk.find(b"\n\n", 0, crlf if crlf >= 0 else len(chunk))
    if lf >= 0:
        head, content = chunk[:lf], chunk[lf + 2 :]
    elif crlf >= 0:
        head, content = chunk[:crlf], chunk[crlf + 4 :]
    else:
        head, content = chunk, b""
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    headers, names, _ = parse_header_lines(lines)
    ctype = None
    if "content-type" in names:
        ctype = ContentType.parse(decode_text(headers[names.index("content-type")][1])[0])
    return BodyPart(tuple(headers), tuple(names), ctype, content)


def parse_multipart(body: bytes, content_type: ContentType | str | None) -> tuple[BodyPart, ...]:
    """Split a multipart body into its parts.

    ``content_type`` is the enclosing Content-Type (its ``boundary`` parameter is used);
    without one, the boundary is taken from the first ``--`` line. Preamble and epilogue
    are dropped; a missing close delimiter ends the last part at the end of the body.
    """
    boundary = _boundary(body, content_type)
    marker = b"--" + boundary
    offsets = _delimiters(body, marker)
    if not offsets:
        raise SipParseError("multipart body has no delimiter")
    parts: list[BodyPart] = []
    for index, start in enumerate(offsets):
        after = start + len(marker)
        if body[after : after + 2] == b"--":
            break  # close delimiter: the rest is epilogue
        eol = body.find(b"\n", after)
        if eol < 0:
            break
        end = offsets[index + 1] if index + 1 < len(offsets) else len(body)
        chunk = body[eol + 1 : end]
        if index + 1 < len(offsets):
            # RFC 2046 5.1.1: the line end before a delimiter belongs to the delimiter
            chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk.removesuffix(b"\n")
        parts.append(_part(chunk))
    if not parts:
        raise SipParseError("multipart body has no parts")
    return tuple(parts)


def body_part(msg: SipMessage, *mime: str) -> BodyPart | None:
    """The first body part of one of the given types, from a plain or multipart body.

    ``body_part(invite, "application/sdp")`` works for a plain SDP body and for a SIPREC
    multipart; ``body_part(invite, "application/rs-metadata+xml", "application/rs-metadata")``
    finds the metadata in either spelling. Raises SipParseError on a broken multipart.
    """
    wanted = {m.lower() for m in mime}
    ctype = msg.content_type
    if ctype is None or not msg.body:
        return None
    names = tuple(n for n in msg.names if n.startswith("content-"))
    headers = tuple(
        h for h, n in zip(msg.headers, msg.names, strict=True) if n.startswith("content-")
    )
    return _find(BodyPart(headers, names, ctype, msg.body), wanted, 0)


def body_bytes(msg: SipMessage, *mime: str) -> bytes | None:
    """The content of `body_part` (same arguments, same answer and errors), without building
    the part when the whole body is of a wanted type: the tracker asks every SIP message
    with a body for its SDP, and a plain ``application/sdp`` body is the usual case."""
    ctype = msg.content_type
    if ctype is None or not msg.body:
        return None
    mime_type = ctype.mime
    for wanted in mime:
        if mime_type == wanted.lower():
            return msg.body
    part = body_part(msg, *mime)
    return None if part is None else part.body


def _find(part: BodyPart, wanted: set[str], depth: int) -> BodyPart | None:
    if part.mime in wanted:
        return part
    if part.content_type is None or part.content_type.type != "multipart" or depth >= _MAX_DEPTH:
        return None
    for child in parse_multipart(part.body, part.content_type):
        found = _find(child, wanted, depth + 1)
        if found is not None:
            return found
    return None
