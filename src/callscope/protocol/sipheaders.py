"""SIP header blocks and the typed values of individual headers (RFC 3261 7.3 and 20).

`parse_header_lines` turns the lines of a header block (a SIP message's or a MIME body
part's) into raw ``(name, value)`` byte pairs plus canonical lower-case names, with compact
forms expanded and folded lines joined. The value classes (`Via`, `ContentType`,
`Replaces`, `Reason`) are parsed on demand from decoded header text.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from callscope.core.frozen import quick_init
from callscope.protocol.errors import SipParseError
from callscope.protocol.recent import RecentParses
from callscope.protocol.sipuri import Param, is_digits, param_value, parse_params

# RFC 3261 7.3.3 and 20, RFC 3515 (r), RFC 3892 (b), RFC 6665 (o, u), RFC 4028 (x),
# RFC 8224 (y), RFC 3841 (a, j, d), RFC 4474 (n)
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "e": "content-encoding",
    "s": "subject",
    "r": "refer-to",
    "b": "referred-by",
    "o": "event",
    "u": "allow-events",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "n": "identity-info",
}

# raw header name (bytes from the wire, text from callers) -> canonical name; bounded so
# that fuzzed names cannot grow them forever
_CANONICAL: dict[bytes, str] = {}
_CANONICAL_TEXT: dict[str, str] = {}
_CANONICAL_LIMIT = 4096

#: one header as on the wire: raw name (as received) and value (trimmed, folds joined)
RawHeader = tuple[bytes, bytes]


def canonical_name(name: str | bytes) -> str:
    """The lower-case full name of a header name, compact forms expanded (``i`` -> ``call-id``)."""
    if isinstance(name, bytes):
        return _canonical_cached(name)
    canon = _CANONICAL_TEXT.get(name)
    if canon is None:
        canon = _canonical(name)
        if len(_CANONICAL_TEXT) < _CANONICAL_LIMIT:
            _CANONICAL_TEXT[name] = canon
    return canon


def _canonical(text: str) -> str:
    key = text.strip().lower()
    if len(key) == 1:
        return COMPACT_FORMS.get(key, key)
    return key


def _canonical_cached(name: bytes) -> str:
    canon = _CANONICAL.get(name)
    if canon is None:
        canon = _canonical(name.decode("latin-1"))
        if len(_CANONICAL) < _CANONICAL_LIMIT:
            _CANONICAL[name] = canon
    return canon


def parse_header_lines(lines: list[bytes]) -> tuple[list[RawHeader], list[str], bool]:
    """Split header lines into raw pairs and canonical names.

    A line starting with SP or HTAB continues the previous header (RFC 3261 7.3.1: the fold
    is equivalent to a single SP). Returns the pairs, the names, and whether a line was
    unusable (no colon, or a continuation with nothing to continue); such lines are skipped.
    """
    headers: list[RawHeader] = []
    names: list[str] = []
    bad = False
    seen = HEADER_LINES.known
    for line in lines:
        # the usual case: a line met lately (a dialog repeats most), else parsed now
        found = seen(line) or HEADER_LINES(line)
        if found is not None:  # one whole header
            headers.append(found[0])
            names.append(found[1])
        elif line and line[0] in (32, 9) and headers:
            previous, joined = headers[-1]
            headers[-1] = (previous, (joined + b" " + line.strip()).strip())
        elif line:
            bad = True
    return headers, names, bad


def _whole_header(line: bytes) -> tuple[RawHeader, str] | None:
    """A line that is one whole header: its pair and canonical name; None for a fold or a
    line without a name and colon."""
    name, sep, value = line.partition(b":")
    if sep and name and name[0] not in (32, 9):
        return (name, value.strip()), _CANONICAL.get(name) or _canonical_cached(name)
    return None


# whole header lines seen lately: the messages of a dialog repeat most of their lines, and
# a phone or PBX many lines in every call. A line that starts a header means the same
# wherever it occurs (a fold continues the header before it and is never kept).
HEADER_LINES: RecentParses[bytes, tuple[RawHeader, str] | None] = RecentParses(
    _whole_header, limit=8192, max_text=256
)


_VIA_RE = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s;]+)\s*([^;\s]*)\s*(.*)", re.S)


@quick_init
@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop (RFC 3261 20.42): sent-protocol, sent-by and parameters."""

    protocol: str
    transport: str
    host: str
    port: int | None
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm; raises SipParseError("bad Via header")."""
        match = _VIA_RE.fullmatch(text)
        if match is None or not match.group(4):
            raise SipParseError("bad Via header")
        name, version, transport, sent_by, params = match.groups()
        host, port = _sent_by(sent_by)
        protocol = f"{name.upper()}/{version}"
        return cls(protocol, transport.upper(), host, port, parse_params(params))

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 8.1.1.7); ``z9hG4bK`` marks RFC 3261 compliance."""
        return param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The address the next hop saw the request come from (RFC 3261 18.2.1)."""
        return param_value(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The filled-in rport value (RFC 3581), None when absent or still empty."""
        value = param_value(self.params, "rport")
        return int(value) if value is not None and is_digits(value) else None

    def param(self, name: str) -> str | None:
        """Value of the Via parameter ``name`` (lower-case)."""
        return param_value(self.params, name)


def _sent_by(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        host = text[: end + 1] if end > 0 else text
        rest = text[end + 1 :] if end > 0 else ""
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    port = int(port_text) if is_digits(port_text) and len(port_text) <= 5 else None
    return host.lower(), port


@quick_init
@dataclass(frozen=True, slots=True)
class ContentType:
    """A media type (RFC 3261 20.15, RFC 2045): lower-case type/subtype and parameters.

    Lenient: a value without ``/`` keeps its text as ``type`` and an empty ``subtype``.
    """

    type: str
    subtype: str
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ContentType:
        """Parse ``type/subtype;param=value``; never raises."""
        mime, _, params = text.partition(";")
        kind, _, subtype = mime.partition("/")
        kind = kind.strip().lower()
        subtype = "".join(subtype.split()).lower()
        return cls(kind, subtype, parse_params(params))

    @property
    def mime(self) -> str:
        """``type/subtype`` in lower case, e.g. ``application/sdp``."""
        return f"{self.type}/{self.subtype}" if self.subtype else self.type

    def param(self, name: str) -> str | None:
        """Value of the parameter ``name`` (lower-case), e.g. ``boundary``."""
        return param_value(self.params, name)


@quick_init
@dataclass(frozen=True, slots=True)
class Replaces:
    """The Replaces header or URI header (RFC 3891 6.1): the dialog an INVITE replaces."""

    call_id: str
    to_tag: str | None
    from_tag: str | None
    early_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Replaces:
        """Parse ``call-id;to-tag=..;from-tag=..``; raises SipParseError on no Call-ID."""
        call_id, _, rest = text.partition(";")
        call_id = call_id.strip()
        if not call_id:
            raise SipParseError("Replaces has no Call-ID")
        params = parse_params(rest)
        early = any(name == "early-only" for name, _ in params)
        return cls(call_id, param_value(params, "to-tag"), param_value(params, "from-tag"), early)


@quick_init
@dataclass(frozen=True, slots=True)
class Reason:
    """One Reason header value (RFC 3326): protocol, cause and text, e.g. Q.850 cause 16."""

    protocol: str
    cause: int | None
    text: str | None
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Reason:
        """Parse ``protocol ;cause=N ;text="..."``; raises SipParseError on no protocol."""
        protocol, _, rest = text.partition(";")
        protocol = protocol.strip()
        if not protocol:
            raise SipParseError("Reason has no protocol")
        params = parse_params(rest)
        cause_text = param_value(params, "cause")
        cause = int(cause_text) if cause_text and is_digits(cause_text) else None
        return cls(protocol, cause, param_value(params, "text"), params)


def parse_cseq(text: str) -> tuple[int, str]:
    """Parse ``CSeq: 101 INVITE`` (RFC 3261 20.16); raises SipParseError("bad CSeq header")."""
    number, _, method = text.strip().partition(" ")
    method = method.strip()
    if not is_digits(number) or not method:
        raise SipParseError("bad CSeq header")
    return int(number), sys.intern(method)  # kept in duplicate and ladder keys of every call


def parse_token_list(values: tuple[str, ...]) -> tuple[str, ...]:
    """Flatten comma-separated token headers (Require, Supported, Allow) into one tuple."""
    tokens: list[str] = []
    for value in values:
        tokens.extend(token for token in (t.strip() for t in value.split(",")) if token)
    return tuple(tokens)
