"""Session descriptions (SDP, RFC 8866 which obsoletes RFC 4566), parsed leniently.

`SessionDescription.parse` reads what a recorder needs to find and decode media: per m=
section the effective connection address and port, the payload type map (rtpmap with RFC
3551 static types filled in), the direction (RFC 3264), the SIPREC label (RFC 4574) and the
signs of encrypted media. Lines it cannot use are kept or recorded in ``problems`` with a
fixed message; only a description with no v= line or no usable m= line raises
`SdpParseError`. ``bytes(sdp)`` is the input.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from callscope.core.frozen import quick_init
from callscope.protocol.errors import SdpParseError
from callscope.protocol.recent import RecentParses
from callscope.protocol.sdpfields import (
    STATIC_PAYLOAD_TYPES,
    Connection,
    Crypto,
    Origin,
    RtpMap,
    SdpProblem,
    parse_bandwidth,
)
from callscope.protocol.sipuri import decode_text, is_digits

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Connection",
    "Crypto",
    "Direction",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpProblem",
    "SessionDescription",
    "parse_recent",
]

Attribute = tuple[str, str | None]

# RFC 8866 5: the line types a description may contain
_TYPES = frozenset("vosiuepcbtrzkam")


class Direction(enum.StrEnum):
    """Media direction attributes (RFC 3264 5.1, RFC 8866 6.7)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    # singletons: hashed by identity, in C (Enum's own __hash__, of the name, is a Python
    # call, and directions key the hold checks and the ladder's SDP details of every offer)
    __hash__ = object.__hash__


# RFC 3264 8.4: a connection address of 0.0.0.0 (RFC 2543 hold) means "do not send to me"
_WITHOUT_RECEIVE = {
    Direction.SENDRECV: Direction.SENDONLY,
    Direction.RECVONLY: Direction.INACTIVE,
    Direction.SENDONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}
_ZERO_ADDRESSES = frozenset({"0.0.0.0", "::"})  # noqa: S104 - an SDP address, not a bind
_DIRECTIONS = {d.value: d for d in Direction}
# a PBX writes the same c= and a=rtpmap values into every SDP it sends
_parse_connection = RecentParses(Connection.parse)
_parse_rtpmap = RecentParses(RtpMap.parse)
_parse_origin = RecentParses(Origin.parse)  # and the same o= line while the session lasts


@quick_init
@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section with its effective connection (media c= over session c=).

    ``formats`` are the m= line's fmt tokens; ``rtpmap`` maps every numeric payload type
    to its encoding, from a=rtpmap or, for RTP profiles, the RFC 3551 static table.
    ``direction`` is effective: media attribute over session attribute, default sendrecv,
    and a 0.0.0.0 connection removes receiving (RFC 3264 8.4 old-style hold).
    """

    media: str
    port: int
    port_count: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None
    bandwidth: tuple[tuple[str, int], ...]
    attributes: tuple[Attribute, ...]
    rtpmap: Mapping[int, RtpMap]
    fmtp: Mapping[int, str]
    declared_direction: Direction
    direction: Direction
    label: str | None
    rtcp_port: int | None
    rtcp_mux: bool
    crypto: tuple[Crypto, ...]
    zrtp_hash: str | None
    fingerprint: str | None
    ptime: int | None
    other_lines: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> str | None:
        """The effective connection address of the stream (None if no c= applies)."""
        return self.connection.address if self.connection is not None else None

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The numeric formats of the m= line, in preference order."""
        return tuple(int(f) for f in self.formats if is_digits(f) and len(f) <= 3)

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is rejected or disabled (RFC 3264 6, 8.2)."""
        return self.port == 0

    @property
    def zero_address(self) -> bool:
        """c=0.0.0.0: the RFC 2543 way to put the other side on hold."""
        return self.address in _ZERO_ADDRESSES

    @property
    def is_encrypted(self) -> bool:
        """SRTP profile, SDES crypto (RFC 4568), ZRTP (RFC 6189) or DTLS-SRTP (RFC 5763)."""
        return (
            "SAVP" in self.proto.upper()
            or bool(self.crypto)
            or self.zrtp_hash is not None
            or self.fingerprint is not None
        )

    def attribute(self, name: str) -> str | None:
        """Value of the first media-level ``a=name`` (None if absent or a flag)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


@quick_init
@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body; ``bytes(sdp)`` returns the bytes it was parsed from."""

    raw: bytes
    version: int
    origin: Origin | None
    session_name: str | None
    connection: Connection | None
    bandwidth: tuple[tuple[str, int], ...]
    attributes: tuple[Attribute, ...]
    direction: Direction
    media: tuple[MediaDescription, ...]
    problems: tuple[SdpProblem, ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body; raises SdpParseError with a fixed message if unusable."""
        return _Parser(data).run()

    def __bytes__(self) -> bytes:
        return self.raw

    @property
    def is_encrypted(self) -> bool:
        """True if any media stream is encrypted (see `MediaDescription.is_encrypted`)."""
        return any(media.is_encrypted for media in self.media)

    def attribute(self, name: str) -> str | None:
        """Value of the first session-level ``a=name`` (None if absent or a flag)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


#: `SessionDescription.parse` for a body seen lately: the same body again (the copy of a
#: message on a tracing proxy's other side, a retransmission, a re-INVITE repeating its
#: offer) is one parse; the value is immutable, so the messages share it
parse_recent: RecentParses[bytes, SessionDescription] = RecentParses(
    SessionDescription.parse, limit=1024, max_text=4096
)


class _Section:
    """Lines collected for one level (session or one m=) before they are interpreted."""

    __slots__ = ("attributes", "bandwidth", "connection", "m_line", "other", "usable")

    def __init__(self, m_line: str | None = None) -> None:
        self.m_line = m_line
        self.connection: Connection | None = None
        self.bandwidth: list[tuple[str, int]] = []
        self.attributes: list[Attribute] = []
        self.other: list[tuple[str, str]] = []
        self.usable = True


class _Parser:
    """One parse: splits lines, routes them to the session or the current m= section."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.problems: list[SdpProblem] = []
        self.session = _Section()
        self.sections: list[_Section] = []
        self.current = self.session  # the section lines go to: the last m= one, if any
        self.version: int | None = None
        self.origin: Origin | None = None
        self.session_name: str | None = None
        self._session_direction: Direction | None = None

    def problem(self, message: str, line: str) -> None:
        self.problems.append(SdpProblem(message, line))

    def run(self) -> SessionDescription:
        text, not_utf8 = decode_text(self.data)
        if not_utf8:
            self.problem("SDP is not UTF-8", "")
        route = self.line
        attributes = self.current.attributes
        for raw in text.split("\n"):
            line = raw.strip()
            if line[:2] == "a=":  # most lines: `on_attribute`, inline
                name, has_value, value = line[2:].partition(":")
                attributes.append((name.strip(), value.strip() if has_value else None))
                continue
            while line:  # the rest of a glued line comes next (see `split_glued`)
                line = route(line)
            attributes = self.current.attributes  # an m= line starts a section
        if self.version is None:
            raise SdpParseError("SDP has no v= line")
        session = self.session
        media: list[MediaDescription] = []
        for section in self.sections:
            found = self.media(section) if section.usable else None
            if found is not None:
                media.append(found)
        if not media:
            raise SdpParseError("SDP has no usable m= line")
        return SessionDescription(
            self.data, self.version, self.origin, self.session_name, session.connection,
            tuple(session.bandwidth), tuple(session.attributes), self.session_direction(),
            tuple(media), tuple(self.problems), tuple(session.other),
        )  # fmt: skip

    def line(self, line: str) -> str:
        """Route one line to its handler; returns the rest of a glued line, else ``""``."""
        kind = line[0]  # a one-character type, then "=" (the line is not empty)
        if line[1:2] != "=" or kind not in _TYPES:
            self.problem("line is not type=value", line)
            return ""
        value = line[2:]
        rest = ""
        if kind in "oc" and "=" in value:  # one character: o= or c=
            value, rest = self.split_glued(kind, value)
        handler = _LINE_HANDLERS.get(kind)
        if handler is None:
            self.current.other.append((kind, value))
        else:
            handler(self, self.current, value)
        return rest

    def on_version(self, _current: _Section, value: str) -> None:
        self.version = int(value) if is_digits(value) else 0
        if value != "0":
            self.problem("unknown SDP version", f"v={value}")

    def on_origin(self, _current: _Section, value: str) -> None:
        self.origin = _parse_origin(value)
        if self.origin is None:
            self.problem("bad o= line", f"o={value}")

    def on_session_name(self, current: _Section, value: str) -> None:
        if current is self.session:
            self.session_name = value
        else:
            current.other.append(("s", value))

    def on_media(self, _current: _Section, value: str) -> None:
        self.current = _Section(m_line=value)
        self.sections.append(self.current)

    def on_connection(self, current: _Section, value: str) -> None:
        current.connection = _parse_connection(value)
        if current.connection is None:
            self.problem("bad c= line", f"c={value}")

    def on_bandwidth(self, current: _Section, value: str) -> None:
        bandwidth = parse_bandwidth(value)
        if bandwidth is None:
            self.problem("bad b= line", f"b={value}")
        else:
            current.bandwidth.append(bandwidth)

    def on_attribute(self, current: _Section, value: str) -> None:
        name, has_value, attr = value.partition(":")
        current.attributes.append((name.strip(), attr.strip() if has_value else None))

    def split_glued(self, kind: str, value: str) -> tuple[str, str]:
        """Undo a missing line break, as in ``o=... IN IP4 127.0.0.1s=name`` (seen in HEP):
        the value and the glued line that follows it (``""`` if none)."""
        equals = value.find("=")
        if equals >= 2 and value[equals - 1] in _TYPES and value[equals - 2] != " ":
            self.problem("line break missing", f"{kind}={value}")
            return value[: equals - 1], value[equals - 1 :]
        return value, ""

    def session_direction(self) -> Direction:
        """The session-level direction attribute (sendrecv by default), found once."""
        if self._session_direction is None:
            self._session_direction = _direction(self.session.attributes)
        return self._session_direction

    def media(self, section: _Section) -> MediaDescription | None:
        """Interpret one m= section; a bad m= line is recorded and the section dropped."""
        parts = (section.m_line or "").split()
        port_text, _, count_text = parts[1].partition("/") if len(parts) >= 3 else ("", "", "")
        if not is_digits(port_text) or (count_text and not is_digits(count_text)):
            self.problem("bad m= line", f"m={section.m_line}")
            return None
        proto, formats = parts[2], tuple(parts[3:])
        attrs = tuple(section.attributes)
        key = (attrs, proto, formats)
        meaning = _MEANINGS.get(key)
        if meaning is None:
            meaning = _Meaning.of(attrs, proto, formats)
            if len(self.data) <= _MAX_REMEMBERED_SDP:
                if len(_MEANINGS) >= _MAX_MEANINGS:
                    _MEANINGS.clear()
                _MEANINGS[key] = meaning
        self.problems.extend(meaning.problems)
        declared = meaning.declared or self.session_direction()
        connection = section.connection or self.session.connection
        zero = connection is not None and connection.address in _ZERO_ADDRESSES
        session_attrs = self.session.attributes
        return MediaDescription(
            media=parts[0].lower(),
            port=int(port_text),
            port_count=int(count_text) if count_text else 1,
            proto=proto,
            formats=formats,
            connection=connection,
            bandwidth=tuple(section.bandwidth),
            attributes=attrs,
            rtpmap=dict(meaning.rtpmap),  # each description its own (a dict is mutable)
            fmtp=dict(meaning.fmtp),
            declared_direction=declared,
            direction=_WITHOUT_RECEIVE[declared] if zero else declared,
            label=meaning.label,
            rtcp_port=meaning.rtcp_port,
            rtcp_mux=meaning.rtcp_mux,
            crypto=meaning.crypto,
            zrtp_hash=meaning.zrtp_hash or _value(session_attrs, "zrtp-hash"),
            fingerprint=meaning.fingerprint or _value(session_attrs, "fingerprint"),
            ptime=meaning.ptime,
            other_lines=tuple(section.other),
        )


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What an m= section's attributes say, with its profile and formats: payload maps,
    declared direction (None: the session's), RTCP, encryption, packet time, and the
    problems found. A PBX sends the same attributes in every call, so the meaning of a
    section is remembered (`_MEANINGS`) and only ports and addresses are read each time."""

    rtpmap: dict[int, RtpMap]
    fmtp: dict[int, str]
    declared: Direction | None
    label: str | None
    rtcp_port: int | None
    rtcp_mux: bool
    crypto: tuple[Crypto, ...]
    zrtp_hash: str | None
    fingerprint: str | None
    ptime: int | None
    problems: tuple[SdpProblem, ...]

    @classmethod
    def of(cls, attrs: tuple[Attribute, ...], proto: str, formats: tuple[str, ...]) -> _Meaning:
        problems: list[SdpProblem] = []
        # the first value of each attribute name (the dict keeps the last it is given)
        first: dict[str, str | None] = dict(reversed(attrs))
        declared: Direction | None = None
        for name, value in attrs:  # the first direction flag
            if value is None:
                declared = _DIRECTIONS.get(name.lower())
                if declared is not None:
                    break
        if "rtpmap" in first or "fmtp" in first:
            rtpmap, fmtp = _payload_maps(attrs, problems)
        else:
            rtpmap, fmtp = {}, {}
        if "RTP" in proto.upper():
            # m= line order first (preference order), then rtpmaps for unlisted types
            ordered: dict[int, RtpMap] = {}
            for text in formats:
                if len(text) <= 3 and text.isascii() and text.isdigit():
                    pt = int(text)
                    found = rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
                    if found is not None:
                        ordered[pt] = found
            rtpmap = ordered | rtpmap
        return cls(
            rtpmap=rtpmap,
            fmtp=fmtp,
            declared=declared,
            label=first.get("label"),
            rtcp_port=_rtcp_port(first.get("rtcp"), problems),
            rtcp_mux="rtcp-mux" in first,
            crypto=_crypto(attrs, problems) if "crypto" in first else (),
            zrtp_hash=first.get("zrtp-hash"),
            fingerprint=first.get("fingerprint"),
            ptime=_ptime(first.get("ptime"), problems),
            problems=tuple(problems),
        )


def _payload_maps(
    attrs: tuple[Attribute, ...], problems: list[SdpProblem]
) -> tuple[dict[int, RtpMap], dict[int, str]]:
    rtpmap: dict[int, RtpMap] = {}
    fmtp: dict[int, str] = {}
    for name, value in attrs:
        if name not in ("rtpmap", "fmtp"):
            continue
        pt_text, _, rest = (value or "").partition(" ")
        if not is_digits(pt_text) or int(pt_text) > 127:
            message = "bad a=fmtp" if name == "fmtp" else "bad a=rtpmap"
            problems.append(SdpProblem(message, f"a={name}:{value}"))
        elif name == "fmtp":
            fmtp.setdefault(int(pt_text), rest.strip())
        else:
            parsed = _parse_rtpmap(rest)
            if parsed is None:
                problems.append(SdpProblem("bad a=rtpmap", f"a=rtpmap:{value}"))
            else:
                rtpmap.setdefault(int(pt_text), parsed)
    return rtpmap, fmtp


def _rtcp_port(value: str | None, problems: list[SdpProblem]) -> int | None:
    # RFC 3605 2.1: a=rtcp:port [nettype addrtype connection-address]
    if value is None:
        return None
    port = value.split()[0] if value.split() else ""
    if is_digits(port) and int(port) < 65536:
        return int(port)
    problems.append(SdpProblem("bad a=rtcp", f"a=rtcp:{value}"))
    return None


def _crypto(attrs: tuple[Attribute, ...], problems: list[SdpProblem]) -> tuple[Crypto, ...]:
    found: list[Crypto] = []
    for name, value in attrs:
        if name == "crypto":
            crypto = Crypto.parse(value or "")
            if crypto is None:
                problems.append(SdpProblem("bad a=crypto", "a=crypto"))
            else:
                found.append(crypto)
    return tuple(found)


def _ptime(value: str | None, problems: list[SdpProblem]) -> int | None:
    # RFC 8866 6.4: packet time in milliseconds (some UAs write a decimal point)
    if value is None:
        return None
    whole = value.partition(".")[0]
    if is_digits(whole):
        return int(whole)
    problems.append(SdpProblem("bad a=ptime", f"a=ptime:{value}"))
    return None


# the meanings of recent media sections, by (attributes, profile, formats); bounded as
# `RecentParses` (emptied when full; the sections of long descriptions are not kept)
_MEANINGS: dict[tuple[tuple[Attribute, ...], str, tuple[str, ...]], _Meaning] = {}
_MAX_MEANINGS = 1024
_MAX_REMEMBERED_SDP = 4096


_LINE_HANDLERS: dict[str, Callable[[_Parser, _Section, str], None]] = {
    "v": _Parser.on_version,
    "o": _Parser.on_origin,
    "s": _Parser.on_session_name,
    "m": _Parser.on_media,
    "c": _Parser.on_connection,
    "b": _Parser.on_bandwidth,
    "a": _Parser.on_attribute,
}


def _value(attrs: list[Attribute] | tuple[Attribute, ...], name: str) -> str | None:
    for key, value in attrs:
        if key == name:
            return value
    return None


def _direction(
    attrs: list[Attribute] | tuple[Attribute, ...], default: Direction = Direction.SENDRECV
) -> Direction:
    for key, value in attrs:
        if value is None and key.lower() in _DIRECTIONS:
            return _DIRECTIONS[key.lower()]
    return default
