"""SIP messages (RFC 3261 7): a lenient parser that keeps the bytes it was given.

Theory of operation: `SipMessage.parse` does the minimum every packet needs - the start
line, one split of the header block into raw ``(name, value)`` pairs with canonical names,
and the body cut by Content-Length. Everything else (From/To, Via, CSeq, Content-Type, ...)
is parsed only when asked for and then cached on the message. Captured traffic is full of
small sins (bare LF line ends from HEP, folded headers, wrong Content-Length, non-UTF-8 text):
they are recorded in `SipMessage.defects` instead of failing the parse. Only bytes that are
not SIP at all raise `SipParseError`, with a fixed message.

`looks_like_sip` is the cheap content test run on every payload of a mirror port: SIP is
recognised by what it says, never by the port it uses.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from callscope.core.compiled import compiled_module
from callscope.core.frozen import quick_init
from callscope.protocol.errors import SipParseError
from callscope.protocol.recent import RecentParses
from callscope.protocol.sipheaders import (
    HEADER_LINES,
    ContentType,
    RawHeader,
    Reason,
    Replaces,
    Via,
    canonical_name,
    parse_cseq,
    parse_header_lines,
    parse_token_list,
)
from callscope.protocol.sipuri import NameAddr, decode_text, parse_params, split_outside_quotes

_T = TypeVar("_T")

#: methods `looks_like_sip` accepts (RFC 3261, 3262, 3311, 3428, 3515, 3903, 6086, 6665)
KNOWN_METHODS: frozenset[bytes] = frozenset(
    {
        b"INVITE",
        b"ACK",
        b"BYE",
        b"CANCEL",
        b"OPTIONS",
        b"REGISTER",
        b"PRACK",
        b"SUBSCRIBE",
        b"NOTIFY",
        b"PUBLISH",
        b"INFO",
        b"REFER",
        b"MESSAGE",
        b"UPDATE",
    }
)
_MAX_METHOD = max(len(m) for m in KNOWN_METHODS) + 1
# the request line must end within this many bytes for `looks_like_sip` (URIs are short)
_MAX_REQUEST_LINE = 2048
# RFC 3261 25.1 token characters
_TOKEN_CHARS = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


class SipDefect(enum.StrEnum):
    """Something wrong but survivable in a parsed message; the value is the Anomaly kind."""

    LEADING_CRLF = "sip.leading_crlf"  # RFC 3261 7.5: CRLFs before the start line
    BARE_LF = "sip.bare_lf"  # LF instead of CRLF line ends (normal for HEP payloads)
    NO_BLANK_LINE = "sip.no_blank_line"  # header block not terminated: message is cut
    BAD_HEADER_LINE = "sip.bad_header_line"  # a header line without a colon (skipped)
    BAD_CONTENT_LENGTH = "sip.bad_content_length"  # not a number: body taken as the rest
    BODY_TRUNCATED = "sip.body_truncated"  # fewer body bytes than Content-Length says
    BODY_EXCESS = "sip.body_excess"  # bytes after the Content-Length body (kept in raw)
    NOT_UTF8 = "sip.not_utf8"  # header text is not UTF-8 (decoded with replacement)


def looks_like_sip(payload: bytes) -> bool:
    """True if ``payload`` starts with a SIP status line or a request line of a known method.

    Cheap enough for every UDP/TCP payload: a few slice compares and bounded ``find`` calls.
    """
    if payload[:8] == b"SIP/2.0 ":
        return True
    space = payload.find(b" ", 0, _MAX_METHOD)
    if space < 3 or payload[:space] not in KNOWN_METHODS:
        return False
    eol = payload.find(b"\n", space, _MAX_REQUEST_LINE)
    if eol < 0:
        return False
    end = eol - 1 if payload[eol - 1] == 13 else eol
    return payload[end - 8 : end] == b" SIP/2.0"


def is_start_line(line: bytes) -> bool:
    """True if ``line`` (without its line end) is a SIP status line or request line.

    Any token is accepted as a method here (unlike `looks_like_sip`): used to find where
    the next message starts in a stream.
    """
    if line[:8] == b"SIP/2.0 ":
        code = line[8:11]
        return len(code) == 3 and code.isdigit()
    parts = line.split(b" ")
    return len(parts) == 3 and parts[2] == b"SIP/2.0" and bool(parts[1]) and _is_token(parts[0])


def _is_token(text: bytes) -> bool:
    """RFC 3261 25.1 token: alphanumerics and ``-.!%*_+`'~``."""
    return text in KNOWN_METHODS or (bool(text) and all(c in _TOKEN_CHARS for c in text))


def _split_head(data: bytes, start: int) -> tuple[bytes, int, bool]:
    """Find the blank line ending the header block (CRLF CRLF, or LF LF from HEP).

    Returns the header block without its final line end, where the body starts, and whether
    a blank line was found. Only the first blank line counts: bodies are never split.
    """
    crlf = data.find(b"\n\r\n", start)
    # in b"\n\n\r\n" the LF LF blank line starts first, one byte before the "\n\r\n"
    lf = data.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(data))
    if lf >= 0:
        end, body_start = lf, lf + 2
    elif crlf >= 0:
        end, body_start = crlf, crlf + 3
    else:
        head = data[start:]
        return head.rstrip(b"\r\n"), len(data), False
    if end > start and data[end - 1] == 13:
        return data[start : end - 1], body_start, True
    return data[start:end], body_start, True


StartLine = tuple[str | None, str | None, int | None, str | None, str]


def _parse_start_line(line: bytes) -> StartLine:
    """Parse a request line or status line (RFC 3261 7.1, 7.2)."""
    if line[:4].upper() == b"SIP/":
        version, _, rest = line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if len(code) != 3 or not code.isdigit() or not code.isascii():
            raise SipParseError("bad status line")
        return None, None, int(code), decode_text(reason.strip())[0], version.decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or parts[2][:4].upper() != b"SIP/":
        raise SipParseError("not a SIP start line")
    method, uri, version = parts
    if not _is_token(method):
        raise SipParseError("bad request method")
    # interned: calls keep the method of each message they remember (duplicates, ladder)
    name = sys.intern(method.decode("ascii"))
    return name, decode_text(uri)[0], None, None, version.decode("latin-1")


#: what ``str.strip`` takes from an ASCII text
_ASCII_SPACE = bytes(c for c in range(128) if chr(c).isspace())
# status lines repeat in every call, request lines of a dialog in each of its requests
_start_line: RecentParses[bytes, StartLine] = RecentParses(_parse_start_line)
_known_start_line = _start_line.known

# the compiled twin of SipMessage.parse up to building the message (callscope.core.compiled):
# it reads the tables of start lines and header lines seen lately, and gives the defects as
# bits, in this order
_sipfast = compiled_module("callscope.protocol._sipfast")
_split_message: Callable[..., tuple[Any, ...] | None] | None = (
    None if _sipfast is None else _sipfast.split_message
)
_HEADER_TABLE = HEADER_LINES.table
_START_TABLE = _start_line.table
_DEFECT_BITS = (
    SipDefect.LEADING_CRLF, SipDefect.BARE_LF, SipDefect.NO_BLANK_LINE,
    SipDefect.BAD_HEADER_LINE, SipDefect.NOT_UTF8, SipDefect.BODY_EXCESS,
    SipDefect.BODY_TRUNCATED, SipDefect.BAD_CONTENT_LENGTH,
)  # fmt: skip
_DEFECTS_BY_BITS = tuple(
    tuple(d for i, d in enumerate(_DEFECT_BITS) if bits >> i & 1) for bits in range(256)
)


@quick_init
@dataclass(frozen=True, slots=True)
class SipMessage:
    """One SIP request or response, parsed leniently, with the exact bytes it came from.

    ``headers`` are the raw ``(name, value)`` pairs in wire order (values trimmed, folded
    lines joined by one SP); ``names`` are their canonical lower-case names, compact forms
    expanded. ``body`` is cut by Content-Length when present. ``bytes(msg)`` is the input.
    Typed accessors return None when a header is absent and raise `SipParseError` (fixed
    message) when it is present but unusable; their results are cached on the message.
    """

    raw: bytes
    method: str | None
    request_uri: str | None
    status_code: int | None
    reason: str | None
    version: str
    headers: tuple[RawHeader, ...]
    names: tuple[str, ...]
    body: bytes
    content_length: int | None
    defects: tuple[SipDefect, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> SipMessage:
        """Parse one SIP message; raises SipParseError if ``data`` is not SIP."""
        if _split_message is not None and type(data) is bytes:
            return cls._parse_compiled(data)
        return cls._parse_python(data)

    @classmethod
    def _parse_compiled(cls, data: bytes) -> SipMessage:
        """`parse` with the framing done by the compiled twin (the same message)."""
        assert _split_message is not None
        parts = _split_message(data, _START_TABLE, _start_line, _HEADER_TABLE, HEADER_LINES)
        if parts is None:
            raise SipParseError("empty message")
        method, uri, code, reason, version, headers, names, body, length, bits = parts
        return cls(
            data, method, uri, code, reason, version, headers, names, body, length,
            _DEFECTS_BY_BITS[bits], {},
        )  # fmt: skip

    @classmethod
    def _parse_python(cls, data: bytes) -> SipMessage:
        """`parse` in Python: the reference of the compiled twin."""
        defects: list[SipDefect] = []
        start = 0
        if data[:1] in (b"\r", b"\n"):
            start = len(data) - len(data.lstrip(b"\r\n"))
            defects.append(SipDefect.LEADING_CRLF)
        if start >= len(data):
            raise SipParseError("empty message")
        head, body_start, terminated = _split_head(data, start)
        lines = head.split(b"\r\n")
        bare_lf = head.count(b"\n") != len(lines) - 1
        if bare_lf:  # LF line ends (HEP), perhaps mixed with CRLF
            lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        first = lines[0]
        method, uri, code, reason, version = _known_start_line(first) or _start_line(first)
        headers, names, bad = parse_header_lines(lines[1:])
        if bare_lf:
            defects.append(SipDefect.BARE_LF)
        if not terminated:
            defects.append(SipDefect.NO_BLANK_LINE)
        if bad:
            defects.append(SipDefect.BAD_HEADER_LINE)
        if not head.isascii() and decode_text(head)[1]:
            defects.append(SipDefect.NOT_UTF8)
        body = data[body_start:]
        content_length = None
        if "content-length" in names:
            text = headers[names.index("content-length")][1]
            if text.isdigit() and text.isascii():
                content_length = int(text)
                if content_length < len(body):
                    body = body[:content_length]
                    defects.append(SipDefect.BODY_EXCESS)
                elif content_length > len(body):
                    defects.append(SipDefect.BODY_TRUNCATED)
            else:
                defects.append(SipDefect.BAD_CONTENT_LENGTH)
        return cls(
            data, method, uri, code, reason, version, tuple(headers), tuple(names), body,
            content_length, tuple(defects), {},
        )  # fmt: skip

    def __bytes__(self) -> bytes:
        return self.raw

    @property
    def is_request(self) -> bool:
        """True for a request, False for a response."""
        return self.method is not None

    @property
    def is_response(self) -> bool:
        """True for a response (it has a status code)."""
        return self.status_code is not None

    # -- generic header access -------------------------------------------------------------

    def header_bytes(self, name: str) -> bytes | None:
        """Raw value of the first header called ``name`` (any case, compact form allowed)."""
        key = canonical_name(name)
        names = self.names
        if key not in names:
            return None
        return self.headers[names.index(key)][1]

    def header(self, name: str) -> str | None:
        """Decoded value of the first header called ``name``, or None."""
        return self._text(canonical_name(name))

    def _text(self, key: str) -> str | None:
        """Decoded value of the first header whose canonical name is ``key``: the typed
        accessors' way in, read for every message (no name to canonicalise, no helper)."""
        names = self.names
        if key not in names:
            return None
        raw = self.headers[names.index(key)][1]
        try:  # as decode_text, without the flag
            return raw.decode()
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")

    def _parsed(self, key: str, table: RecentParses[bytes, _T]) -> _T | None:
        """The first header whose canonical name is ``key``, parsed by ``table`` from its raw
        value, cached on the message. The tables are keyed by the raw bytes: a repeated line
        is one bytes object (see `parse_header_lines`), its hash already known, no decoding."""
        cache = self._cache
        if key in cache:
            found: _T | None = cache[key]
            return found
        names = self.names
        if key not in names:
            value = cache[key] = None
        else:
            raw = self.headers[names.index(key)][1]
            value = cache[key] = table.known(raw) or table(raw)
        return value

    def headers_all(self, name: str) -> tuple[str, ...]:
        """Decoded values of every header called ``name``, in wire order."""
        key = canonical_name(name)
        return tuple(
            decode_text(value)[0]
            for (_, value), canon in zip(self.headers, self.names, strict=True)
            if canon == key
        )

    def header_list(self, name: str) -> tuple[str, ...]:
        """Every element of a comma-separated header list (RFC 3261 7.3.1), in order."""
        items: list[str] = []
        for value in self.headers_all(name):
            items.extend(item.strip() for item in split_outside_quotes(value, ",") if item.strip())
        return tuple(items)

    def _cached(self, key: str, build: Callable[[], _T]) -> _T:
        try:
            value: _T = self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
        return value

    def _name_addr(self, name: str) -> NameAddr | None:
        return self._parsed(name, _name_addr_of)

    def _name_addrs(self, name: str) -> tuple[NameAddr, ...]:
        def build() -> tuple[NameAddr, ...]:
            return tuple(NameAddr.parse(item) for item in self.header_list(name) if item != "*")

        return self._cached(name + "*", build)

    def _int(self, name: str, message: str) -> int | None:
        value = self.header(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii():
            raise SipParseError(message)
        return int(value)

    # -- typed accessors ---------------------------------------------------------------------

    @property
    def call_id(self) -> str | None:
        """The Call-ID (RFC 3261 20.8)."""
        return self._parsed("call-id", _text_of)

    @property
    def cseq(self) -> tuple[int, str] | None:
        """CSeq as ``(number, method)`` (RFC 3261 20.16)."""
        return self._parsed("cseq", _cseq_of)

    @property
    def from_(self) -> NameAddr | None:
        """The From header (RFC 3261 20.20)."""
        cache = self._cache  # read several times for every message
        return cache["from"] if "from" in cache else self._parsed("from", _name_addr_of)

    @property
    def from_tag(self) -> str | None:
        """The From tag, found without parsing the whole header (for dialog matching)."""
        return self._tag("from")

    @property
    def to_tag(self) -> str | None:
        """The To tag, found without parsing the whole header (None before the answer)."""
        return self._tag("to")

    def _tag(self, name: str) -> str | None:
        value = self._text(name)
        if value is None:
            return None
        if '"' in value:
            addr = self._name_addr(name)  # quoted text may contain anything: full parse
            return addr.tag if addr is not None else None
        gt = value.find(">")
        params = value[gt + 1 :] if gt >= 0 else value.partition(";")[2]
        for item in params.split(";"):
            key, sep, tag = item.partition("=")
            if key.strip().lower() == "tag":
                return tag.strip() if sep else None
        return None

    @property
    def top_via(self) -> Via | None:
        """The topmost Via hop only (the one a response is matched on, RFC 3261 17.1.3)."""
        return self._cached("top_via", self._parse_top_via)

    def _parse_top_via(self) -> Via | None:
        value = self.header("via")
        if value is None:
            return None
        return Via.parse(value.partition(",")[0])

    @property
    def via_count(self) -> int:
        """How many Via hops the message carries: ``len(self.header_list("via"))``, without
        the list in the usual case of one hop per Via header (ASCII, no comma)."""
        hops = 0
        for (_, raw), name in zip(self.headers, self.names, strict=True):
            if name == "via":
                if b"," in raw or not raw.isascii():
                    return len(self.header_list("via"))
                hops += 1 if raw.strip(_ASCII_SPACE) else 0
        return hops

    @property
    def to(self) -> NameAddr | None:
        """The To header (RFC 3261 20.39)."""
        cache = self._cache  # as `from_`
        return cache["to"] if "to" in cache else self._parsed("to", _name_addr_of)

    @property
    def via(self) -> tuple[Via, ...]:
        """Every Via hop, topmost first, comma-joined values split (RFC 3261 20.42)."""
        return self._cached("via", lambda: tuple(Via.parse(v) for v in self.header_list("via")))

    @property
    def contact(self) -> NameAddr | None:
        """The first Contact (None for ``Contact: *`` or none)."""
        contacts = self.contacts
        return contacts[0] if contacts else None

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Every Contact value (RFC 3261 20.10), ``*`` left out."""
        return self._name_addrs("contact")

    @property
    def record_routes(self) -> tuple[NameAddr, ...]:
        """Every Record-Route value in order (RFC 3261 20.30)."""
        return self._name_addrs("record-route")

    @property
    def p_asserted_identity(self) -> NameAddr | None:
        """The asserted caller identity: P-Asserted-Identity (RFC 3325), else
        P-Preferred-Identity, else Remote-Party-ID (the pre-standard draft)."""
        for name in ("p-asserted-identity", "p-preferred-identity", "remote-party-id"):
            identities = self._name_addrs(name)
            if identities:
                return identities[0]
        return None

    @property
    def content_type(self) -> ContentType | None:
        """The Content-Type (RFC 3261 20.15), type and subtype in lower case."""
        return self._parsed("content-type", _content_type_of)

    @property
    def require(self) -> tuple[str, ...]:
        """Option tags of every Require header (RFC 3261 20.32)."""
        return parse_token_list(self.headers_all("require"))

    @property
    def supported(self) -> tuple[str, ...]:
        """Option tags of every Supported header (RFC 3261 20.37)."""
        return parse_token_list(self.headers_all("supported"))

    @property
    def allow(self) -> tuple[str, ...]:
        """Methods of every Allow header (RFC 3261 20.5)."""
        return parse_token_list(self.headers_all("allow"))

    @property
    def refer_to(self) -> NameAddr | None:
        """The Refer-To target (RFC 3515 7.1); a Replaces may sit in its URI headers."""
        return self._name_addr("refer-to")

    @property
    def referred_by(self) -> NameAddr | None:
        """The Referred-By identity (RFC 3892)."""
        return self._name_addr("referred-by")

    @property
    def replaces(self) -> Replaces | None:
        """The Replaces header of an INVITE (RFC 3891)."""
        if "replaces" not in self.names:  # every new leg asks; few have one
            return None
        return self._cached("replaces", lambda: _optional(self.header("replaces"), Replaces.parse))

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Every Reason header value (RFC 3326), e.g. the Q.850 cause of a BYE or CANCEL."""
        return self._cached(
            "reasons", lambda: tuple(Reason.parse(v) for v in self.header_list("reason"))
        )

    @property
    def user_agent(self) -> str | None:
        """User-Agent (RFC 3261 20.41), or Server for a response that has none."""
        return self.header("user-agent") or self.header("server")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 20.22)."""
        return self._int("max-forwards", "bad Max-Forwards header")

    @property
    def expires(self) -> int | None:
        """Expires in seconds (RFC 3261 20.19)."""
        return self._int("expires", "bad Expires header")

    @property
    def event(self) -> str | None:
        """The event package of the Event header (RFC 6665 8.2.1), without parameters."""
        value = self.header("event")
        return None if value is None else value.partition(";")[0].strip()


def _parse_new_name_addr(text: str) -> NameAddr:
    """`NameAddr.parse` of a From or To value not seen lately: a phone's address recurs
    from call to call with a new tag, so the part up to ``>`` (display name and URI) comes
    from a table and only the parameters are parsed afresh. Quoted display names, which may
    hold any character, take the full parse."""
    text = text.strip()
    gt = text.find(">", text.find("<") + 1) if '"' not in text and "<" in text else -1
    if gt < 0:
        return NameAddr.parse(text)
    head = _parse_name_addr_head(text[: gt + 1])
    return NameAddr(head.display_name, head.uri, parse_params(text[gt + 1 :]))


# the From and To values of a dialog repeat in each of its messages, and their display
# name and URI in every call of a phone
_parse_name_addr = RecentParses(_parse_new_name_addr)
_parse_name_addr_head = RecentParses(NameAddr.parse)


def _decoded(raw: bytes) -> str:
    return decode_text(raw)[0]


# typed values of the headers every message is asked for, by raw value: the same Call-ID,
# From and To in each message of a dialog, the same CSeq values and Content-Type in every call
_text_of: RecentParses[bytes, str] = RecentParses(_decoded)
_name_addr_of: RecentParses[bytes, NameAddr] = RecentParses(
    lambda raw: _parse_name_addr(_decoded(raw))
)
_cseq_of: RecentParses[bytes, tuple[int, str]] = RecentParses(lambda raw: parse_cseq(_decoded(raw)))
_content_type_of: RecentParses[bytes, ContentType] = RecentParses(
    lambda raw: ContentType.parse(_decoded(raw))
)


def _optional(value: str | None, parse: Callable[[str], _T]) -> _T | None:
    return None if value is None else parse(value)
