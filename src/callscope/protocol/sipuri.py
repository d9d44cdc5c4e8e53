"""SIP, SIPS and tel URIs and name-addr values (RFC 3261 19.1 and 20.10, RFC 3966).

Everything here works on text already decoded from the wire (see `decode_text`): header
values are bytes on the wire, but URIs and display names are text to every consumer. The
parsers are lenient: they keep what they cannot interpret (an unknown scheme stays an opaque
URI) and raise `SipParseError` with a fixed message only when nothing usable is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from callscope.core.frozen import quick_init
from callscope.protocol.errors import SipParseError

#: a header or URI parameter: name (lower-case) and value (None for a flag like ``lr``)
Param = tuple[str, str | None]

# RFC 3966 5.1.1: visual separators carry no dialling information
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
_DIAL_CHARS = frozenset("0123456789+*#")


def is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (``str.isdigit`` also accepts ``²``)."""
    return text.isascii() and text.isdigit()


def decode_text(raw: bytes) -> tuple[str, bool]:
    """Decode captured header text: UTF-8 (RFC 3261 7.3.1), else UTF-8 with replacement.

    Returns the text and ``True`` when the bytes were not valid UTF-8, so that the caller
    can record the anomaly; the raw bytes stay available wherever they came from.
    """
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


def unquote_string(text: str) -> str:
    """Undo an RFC 3261 25.1 quoted-string: strip the quotes and resolve quoted-pairs."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if "\\" not in text:
        return text
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _closing_quote(text: str, start: int) -> int:
    """Index of the quote closing the quoted-string opened at ``start`` (or -1)."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == '"':
            return i
        i += 1
    return -1


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not inside a quoted-string or ``<...>`` (RFC 3261 7.3.1).

    Used for comma-separated header lists (``Via: a, b``) and for parameter lists.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = _closing_quote(text, i)
            i = len(text) if end < 0 else end + 1
            continue
        if char == "<":
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif char == sep and not depth:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> tuple[Param, ...]:
    """Parse ``;name=value;flag`` (leading ``;`` optional); names lower-case, values unquoted."""
    if not text:
        return ()
    params: list[Param] = []
    items = text.split(";") if '"' not in text else split_outside_quotes(text, ";")
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if name:
            value = value.strip()
            params.append(
                (name, (unquote_string(value) if '"' in value else value) if sep else None)
            )
    return tuple(params)


def param_value(params: tuple[Param, ...], name: str) -> str | None:
    """Value of the first parameter called ``name`` (None if absent or a flag)."""
    for key, value in params:
        if key == name:
            return value
    return None


def has_param(params: tuple[Param, ...], name: str) -> bool:
    """True if a parameter called ``name`` is present, with or without a value."""
    return any(key == name for key, _ in params)


@quick_init
@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed ``sip:``, ``sips:`` or ``tel:`` URI; other schemes are kept opaque.

    ``user`` is verbatim from the wire (still percent-encoded); ``number`` is the dialled
    number when the user part is one. ``str(uri)`` gives the text it was parsed from.
    """

    raw: str
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    params: tuple[Param, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a URI; raises SipParseError("URI has no scheme") for text without one."""
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or not scheme or not scheme.isascii() or not scheme.replace("+", "").isalnum():
            raise SipParseError("URI has no scheme")
        if scheme in ("sip", "sips"):
            return cls._parse_sip(text, scheme, rest)
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return cls(text, scheme, number, None, None, None, parse_params(params))
        return cls(text, scheme, None, None, None, None)

    @classmethod
    def _parse_sip(cls, text: str, scheme: str, rest: str) -> SipUri:
        # RFC 3261 19.1.1: sip:user:password@host:port;uri-parameters?headers
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            user, sep, pw = rest[:at].partition(":")
            password = pw if sep else None
            rest = rest[at + 1 :]
        rest, _, query = rest.partition("?")
        hostport, _, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        headers: list[tuple[str, str]] = []
        if query:
            for item in query.split("&"):
                name, _, value = item.partition("=")
                headers.append((unquote(name), unquote(value)))
        return cls(text, scheme, user, password, host, port, parse_params(params), tuple(headers))

    def __str__(self) -> str:
        return self.raw

    def param(self, name: str) -> str | None:
        """Value of the URI parameter ``name`` (lower-case), None if absent or a flag."""
        return param_value(self.params, name)

    def header(self, name: str) -> str | None:
        """Value of the URI header ``name`` (e.g. ``Replaces`` in a Refer-To), decoded."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def number(self) -> str | None:
        """The user part as a dialled number (digits, ``+``, ``*``, ``#``), else None.

        Percent-escapes are resolved (``%23`` is ``#``), user parameters such as
        ``;phone-context=`` are dropped, and RFC 3966 visual separators (``-``, ``.``,
        ``(``, ``)``) are removed only when everything else is a dial character.
        """
        if not self.user:
            return None
        user = unquote(self.user.partition(";")[0]).strip()
        if not user:
            return None
        if set(user) <= _DIAL_CHARS:
            return user
        stripped = user.translate(_VISUAL_SEPARATORS)
        if stripped and set(stripped) <= _DIAL_CHARS and any(c.isdigit() for c in stripped):
            return stripped
        return None


def _split_hostport(hostport: str) -> tuple[str | None, int | None]:
    """Split ``host:port`` / ``[v6]:port``; a bad port is dropped rather than fatal."""
    hostport = hostport.strip()
    if not hostport:
        return None, None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    port = int(port_text) if is_digits(port_text) and len(port_text) <= 5 else None
    return host.lower() or None, port


@quick_init
@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/P-Asserted-Identity style value (RFC 3261 20.10, 20.20, 20.39).

    ``display_name`` is unquoted text (Japanese display names arrive as UTF-8);
    ``params`` are the header parameters after the URI, ``tag`` among them.
    """

    display_name: str | None
    uri: SipUri
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse name-addr or addr-spec; raises SipParseError on an unusable value."""
        text = text.strip()
        display: str | None = None
        if text.startswith('"'):
            end = _closing_quote(text, 0)
            if end < 0:
                raise SipParseError("display name quote is not closed")
            display = unquote_string(text[: end + 1])
            text = text[end + 1 :].lstrip()
        lt = text.find("<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("name-addr has no closing >")
            if display is None:
                display = text[:lt].strip() or None
            uri_text, rest = text[lt + 1 : gt], text[gt + 1 :]
        else:
            # RFC 3261 20.10: without <>, everything after the first ; is a header param
            uri_text, _, rest = text.partition(";")
        if not uri_text.strip():
            raise SipParseError("name-addr has no URI")
        return cls(display, SipUri.parse(uri_text), parse_params(rest))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 19.3), identifying one side of a dialog."""
        for key, value in self.params:  # `param_value`, inline: asked for every message
            if key == "tag":
                return value
        return None

    def param(self, name: str) -> str | None:
        """Value of the header parameter ``name`` (lower-case), None if absent or a flag."""
        return param_value(self.params, name)
