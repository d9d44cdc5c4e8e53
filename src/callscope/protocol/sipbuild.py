"""Building the few SIP messages a recording server (SIPREC SRS) sends as a UAS.

Responses follow RFC 3261 8.2.6: Via (every value, in order), From, Call-ID and CSeq are
copied byte for byte from the request, To is copied and gets the UAS tag. Content-Length
is the body's length in bytes - a UTF-8 body has more bytes than characters, the mistake
that makes other stacks drop messages. Header names are written in full, lines end in CRLF.
"""

from __future__ import annotations

from collections.abc import Sequence

from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage

#: headers a response copies from its request (RFC 3261 8.2.6.2), in the order written
_COPIED = (
    ("via", b"Via"),
    ("from", b"From"),
    ("to", b"To"),
    ("call-id", b"Call-ID"),
    ("cseq", b"CSeq"),
)


def _encode(value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    if b"\r" in data or b"\n" in data:
        raise ValueError("header text contains a line break")
    return data


def _tail(
    lines: list[bytes],
    headers: Sequence[tuple[str, str]],
    body: bytes | str,
    content_type: str | None,
) -> bytes:
    """Append extra headers, Content-Type, Content-Length and the body."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    for name, value in headers:
        lines.append(_encode(name) + b": " + _encode(value))
    if content_type is not None:
        lines.append(b"Content-Type: " + _encode(content_type))
    lines.append(b"Content-Length: " + str(len(payload)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def _with_tag(raw: bytes, tag: str) -> bytes:
    return raw + b";tag=" + _encode(tag)


def build_response(
    request: SipMessage,
    code: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | str = b"",
    content_type: str | None = None,
) -> bytes:
    """Build the response to ``request`` (RFC 3261 8.2.6).

    ``to_tag`` is added to To unless the request's To already has a tag (in-dialog) or the
    response is 100 Trying (RFC 3261 8.2.6.2). Record-Route is copied into 101-299
    responses (RFC 3261 12.1.1) and Timestamp into 100 (RFC 3261 8.2.6.1). ``headers`` are
    appended as given; a str ``body`` is sent as UTF-8.
    """
    if not 100 <= code <= 699:
        raise ValueError("status code out of range")
    lines = [b"SIP/2.0 " + str(code).encode("ascii") + b" " + _encode(reason)]
    add_tag = bool(to_tag) and code != 100 and request.to is not None and request.to.tag is None
    copied = list(_COPIED)
    if 100 < code < 300:
        copied.append(("record-route", b"Record-Route"))
    elif code == 100:
        copied.append(("timestamp", b"Timestamp"))
    for key, name in copied:
        for (_, value), canon in zip(request.headers, request.names, strict=True):
            if canon == key:
                tagged = _with_tag(value, to_tag) if key == "to" and add_tag and to_tag else value
                lines.append(name + b": " + tagged)
    return _tail(lines, headers, body, content_type)


def build_request(
    method: str,
    request_uri: str,
    *,
    via: str,
    from_: str | bytes,
    to: str | bytes,
    call_id: str,
    cseq: int,
    max_forwards: int = 70,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | str = b"",
    content_type: str | None = None,
) -> bytes:
    """Build a request (RFC 3261 8.1.1) from ready header values.

    ``via`` must carry a fresh ``branch=z9hG4bK...``; ``from_``/``to`` are full name-addr
    values with their tags (bytes are written as they are). Route or Contact go in
    ``headers``.
    """
    method_bytes = _encode(method)
    lines = [
        method_bytes + b" " + _encode(request_uri) + b" SIP/2.0",
        b"Via: " + _encode(via),
        b"Max-Forwards: " + str(max_forwards).encode("ascii"),
        b"From: " + _encode(from_),
        b"To: " + _encode(to),
        b"Call-ID: " + _encode(call_id),
        b"CSeq: " + str(cseq).encode("ascii") + b" " + method_bytes,
    ]
    return _tail(lines, headers, body, content_type)


def build_bye(
    invite: SipMessage,
    *,
    local_tag: str,
    via: str,
    cseq: int,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A BYE from the UAS side of the dialog ``invite`` created (RFC 3261 12.1.1, 15.1.1).

    The remote target is the INVITE's Contact, the route set its Record-Route in order;
    From is the INVITE's To with ``local_tag``, To is the INVITE's From. Raises
    SipParseError if the INVITE lacks the headers a dialog needs.
    """
    contact, to, from_ = invite.contact, invite.header_bytes("to"), invite.header_bytes("from")
    call_id = invite.call_id
    if contact is None or to is None or from_ is None or call_id is None:
        raise SipParseError("INVITE cannot form a dialog")
    local = to if invite.to is not None and invite.to.tag else _with_tag(to, local_tag)
    routes = [("Route", route) for route in invite.header_list("record-route")]
    return build_request(
        "BYE",
        str(contact.uri),
        via=via,
        from_=local,
        to=from_,
        call_id=call_id,
        cseq=cseq,
        headers=[*routes, *headers],
    )
