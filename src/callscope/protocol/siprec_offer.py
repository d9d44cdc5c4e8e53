"""A SIPREC request's body and the recording server's SDP answer (RFC 7866 6, 8).

`is_siprec` says whether an INVITE starts a recording session: RFC 7866 6.1.1 has the
client put ``siprec`` in Require and ``+sip.src`` on its Contact; clients following the
drafts send only ``;src`` or only the metadata part, so any one of the signs counts.

`RecordingBody.of` finds the SDP and the metadata in a plain or ``multipart/mixed`` body.
The metadata part is found by its type (``application/rs-metadata+xml`` or the older
``application/rs-metadata``) or, when a client mangled the type, by its disposition
``recording-session`` (RFC 7866 8.2). A datagram whose Content-Length is shorter than its
multipart body (a documentation sample that was edited by hand) is read whole when the
cut would lose the close delimiter: over UDP the datagram is the message. Problems are
kept as fixed messages; `RecordingBody.of` never raises.

`answer_sdp` builds the SRS's answer (RFC 3264 6, RFC 7866 8.1.1): one m= line per offered
one in the same order, ``recvonly`` (``inactive`` to an inactive offer), the offer's
``a=label``, the offered payload types the recorder can decode, and port 0 for a stream
it refuses (not audio, SRTP, or no decodable codec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from callscope.protocol.errors import ProtocolParseError, SipParseError
from callscope.protocol.multipart import BodyPart, body_part, parse_multipart
from callscope.protocol.sdp import Direction, MediaDescription, SessionDescription
from callscope.protocol.sip import SipDefect, SipMessage
from callscope.protocol.siprec import RecordingMetadata
from callscope.protocol.sipuri import split_outside_quotes

__all__ = [
    "DEFAULT_CODECS",
    "METADATA_TYPES",
    "RecordingBody",
    "acceptable_formats",
    "answer_sdp",
    "is_siprec",
]

#: metadata content types (RFC 7866 12.1, and the pre-RFC registration still in use)
METADATA_TYPES: Final = ("application/rs-metadata+xml", "application/rs-metadata")
#: encodings a recorder can decode (the audio layer's registry names, upper case)
DEFAULT_CODECS: Final = frozenset({"PCMU", "PCMA", "G722", "G729", "OPUS", "CN", "TELEPHONE-EVENT"})
_RECORDING_SESSION: Final = "recording-session"  # RFC 7866 12.2: Content-Disposition value
_ANSWER_DIRECTION: Final = {
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.SENDRECV: Direction.RECVONLY,
    Direction.RECVONLY: Direction.INACTIVE,
    Direction.INACTIVE: Direction.INACTIVE,
}


def is_siprec(msg: SipMessage) -> bool:
    """True if ``msg`` asks for a recording session (see the module docs)."""
    if any(tag.lower() == "siprec" for tag in msg.require):
        return True
    for contact in msg.headers_all("contact"):
        for param in split_outside_quotes(contact, ";")[1:]:
            name = param.strip().lower().rstrip(">").partition("=")[0].strip()
            if name in ("+sip.src", "src"):
                return True
    ctype = msg.content_type
    if ctype is not None and ctype.mime in METADATA_TYPES:
        return True
    return b"rs-metadata" in msg.body


@dataclass(frozen=True, slots=True)
class RecordingBody:
    """The SDP offer and recording metadata of a request, each None when absent or
    unreadable; ``problems`` are fixed messages (``metadata_error`` among them is the
    metadata parser's reason)."""

    sdp: SessionDescription | None
    metadata: RecordingMetadata | None
    metadata_error: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def has_metadata_part(self) -> bool:
        """The request carried metadata, readable or not."""
        return self.metadata is not None or self.metadata_error is not None

    @classmethod
    def of(cls, msg: SipMessage) -> RecordingBody:
        """Find and parse the SDP and metadata of ``msg``; never raises."""
        problems: list[str] = []
        body = _whole_body(msg)
        if body is not msg.body:
            problems.append("Content-Length shorter than the multipart body")
        try:
            sdp_part = _find(msg, body, ("application/sdp",))
            meta_part = _find(msg, body, METADATA_TYPES) or _disposition_part(msg, body)
        except SipParseError as exc:
            return cls(None, None, None, (*problems, str(exc)))
        sdp = None
        if sdp_part is not None:
            try:
                sdp = SessionDescription.parse(sdp_part.body)
            except ProtocolParseError as exc:
                problems.append(str(exc))
        metadata, error = None, None
        if meta_part is not None:
            try:
                metadata = RecordingMetadata.parse(meta_part.body)
            except ProtocolParseError as exc:
                error = str(exc)
                problems.append(error)
        return cls(sdp, metadata, error, tuple(problems))


def _whole_body(msg: SipMessage) -> bytes:
    """The body, or the whole rest of the datagram when Content-Length cut a multipart
    body before its close delimiter."""
    ctype = msg.content_type
    if SipDefect.BODY_EXCESS not in msg.defects or ctype is None or ctype.type != "multipart":
        return msg.body
    boundary = ctype.param("boundary")
    if not boundary:
        return msg.body
    close = b"--" + boundary.encode("utf-8") + b"--"
    raw = msg.raw
    start = raw.find(msg.body) if msg.body else -1
    if start < 0 or close in msg.body or close not in raw[start:]:
        return msg.body
    return raw[start:]


def _find(msg: SipMessage, body: bytes, mimes: tuple[str, ...]) -> BodyPart | None:
    if body is msg.body:
        return body_part(msg, *mimes)
    for part in parse_multipart(body, msg.content_type):
        if part.mime in mimes:
            return part
    return None


def _disposition_part(msg: SipMessage, body: bytes) -> BodyPart | None:
    """A part whose Content-Disposition is ``recording-session`` (type mangled)."""
    ctype = msg.content_type
    if ctype is None or ctype.type != "multipart":
        return None
    for part in parse_multipart(body, ctype):
        disposition = part.header("content-disposition") or ""
        if disposition.partition(";")[0].strip().lower() == _RECORDING_SESSION:
            return part
    return None


def answer_sdp(
    offer: SessionDescription,
    ports: Sequence[int],
    *,
    address: str,
    session_id: int,
    version: int,
    codecs: frozenset[str] = DEFAULT_CODECS,
) -> bytes:
    """The answer to ``offer`` with ``ports[i]`` for its i-th m= line (0: refused).

    ``address`` goes into o= and c=; ``session_id``/``version`` into o= (RFC 8866 5.2).
    Use `acceptable_formats` to decide which lines get a port.
    """
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=callscope {session_id} {version} IN {family} {address}",
        "s=callscope",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for media, port in zip(offer.media, ports, strict=True):
        lines.extend(_answer_media(media, port, codecs))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def acceptable_formats(media: MediaDescription, codecs: frozenset[str]) -> tuple[int, ...]:
    """Payload types of an offered audio stream the recorder can decode; empty for a
    stream to refuse (port 0, not audio, nothing decodable, SRTP: no keys are kept)."""
    if media.rejected or media.media != "audio" or "RTP" not in media.proto.upper():
        return ()
    if media.is_encrypted:
        return ()
    found = tuple(
        pt
        for pt in media.payload_types
        if pt in media.rtpmap and media.rtpmap[pt].encoding.upper() in codecs
    )
    events = {"CN", "TELEPHONE-EVENT"}
    if all(media.rtpmap[pt].encoding.upper() in events for pt in found):
        return ()  # only comfort noise or DTMF: nothing to record
    return found


def _answer_media(media: MediaDescription, port: int, codecs: frozenset[str]) -> list[str]:
    formats = acceptable_formats(media, codecs) if port else ()
    if not formats:
        # RFC 3264 6: a refused stream keeps its m= line with port 0 and the offered formats
        return [f"m={media.media} 0 {media.proto} {' '.join(media.formats) or '0'}"]
    lines = [f"m=audio {port} {media.proto} {' '.join(str(pt) for pt in formats)}"]
    for pt in formats:
        fmt = media.rtpmap[pt]
        channels = f"/{fmt.channels}" if fmt.channels != 1 else ""
        lines.append(f"a=rtpmap:{pt} {fmt.encoding}/{fmt.clock_rate}{channels}")
        if pt in media.fmtp:
            lines.append(f"a=fmtp:{pt} {media.fmtp[pt]}")
    if media.label is not None:
        lines.append(f"a=label:{media.label}")
    lines.append(f"a={_ANSWER_DIRECTION[media.declared_direction].value}")
    return lines
