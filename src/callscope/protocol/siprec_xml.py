"""The XML reader under the SIPREC metadata parser: small, bounded and without DTDs.

`parse_xml` builds a tree of `XmlElement` with expat (namespace-aware: each element keeps
its namespace and its local name in lower case, attributes by lower-case local name,
direct text joined). Untrusted input is bounded: a size limit, an element count and a
depth limit, and no DTD at all - a DOCTYPE or ENTITY declaration is refused, so entity
expansion ("billion laughs") and external entities cannot happen (expat never fetches
anything by itself). A declared encoding that expat cannot read (Shift_JIS from older
Japanese equipment) is decoded with Python's codecs first. Failures raise
`SiprecParseError` with a fixed message.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Final
from xml.parsers import expat

from callscope.protocol.errors import SiprecParseError

__all__ = ["XmlElement", "parse_xml"]

_MAX_ELEMENTS: Final = 10_000
_MAX_DEPTH: Final = 32
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "utf-16", "utf-16le"})
_DECLARATION = re.compile(rb"""\A(\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


@dataclass(slots=True)
class XmlElement:
    """One element: namespace, local name and attribute names in lower case, direct text
    joined; `attr`, `child_texts` and `walk` read it."""

    name: str
    namespace: str
    attrs: dict[str, str]
    children: list[XmlElement] = field(default_factory=list)
    text: str = ""

    def attr(self, *names: str) -> str | None:
        """The first of the attributes ``names`` with a non-blank value, stripped."""
        for name in names:
            value = self.attrs.get(name)
            if value is not None and value.strip():
                return value.strip()
        return None

    def child_texts(self, *names: str) -> list[str]:
        """Stripped non-blank texts of the children called one of ``names``."""
        return [c.text.strip() for c in self.children if c.name in names and c.text.strip()]

    def walk(self) -> list[XmlElement]:
        """This element and all below it, in document order."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found


class _Refused(Exception):
    """Raised inside an expat handler; turned into SiprecParseError by `_parse_xml`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _as_utf8(data: bytes, max_bytes: int) -> bytes:
    """Refuse oversize input; re-encode a declared non-UTF encoding (Shift_JIS from older
    Japanese equipment) that expat cannot read itself."""
    if not data.strip():
        raise SiprecParseError("metadata is empty")
    if len(data) > max_bytes:
        raise SiprecParseError("metadata is too large")
    match = _DECLARATION.match(data)
    if match is None or match.group(2).decode("ascii", "replace").lower() in _UTF8_NAMES:
        return data
    name = match.group(2).decode("ascii", "replace")
    try:
        codecs.lookup(name)
        text = data[match.end() :].decode(name)
    except (LookupError, UnicodeDecodeError) as exc:
        raise SiprecParseError("metadata encoding is unknown") from exc
    return b'<?xml version="1.0" encoding="UTF-8"' + text.encode("utf-8")


def _split_name(qualified: str) -> tuple[str, str]:
    namespace, _, local = qualified.rpartition(" ")
    return namespace, local.lower()


class _TreeBuilder:
    """expat handlers building `XmlElement`s, with the limits of the module docs."""

    def __init__(self) -> None:
        self.stack: list[XmlElement] = []
        self.root: XmlElement | None = None
        self.count = 0
        self.texts: list[list[str]] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > _MAX_ELEMENTS:
            raise _Refused("metadata has too many elements")
        if len(self.stack) >= _MAX_DEPTH:
            raise _Refused("metadata nests too deep")
        namespace, local = _split_name(name)
        element = XmlElement(local, namespace, {_split_name(k)[1]: v for k, v in attrs.items()})
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)
        self.texts.append([])

    def end(self, _name: str) -> None:
        element = self.stack.pop()
        element.text = "".join(self.texts.pop())

    def chars(self, data: str) -> None:
        if self.texts:
            self.texts[-1].append(data)


def _refuse_dtd(*_args: object) -> None:
    raise _Refused("metadata has a DTD")


def parse_xml(data: bytes, max_bytes: int) -> XmlElement:
    """Parse ``data`` (at most ``max_bytes``) into its root element."""
    data = _as_utf8(data, max_bytes)
    builder = _TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.chars
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise SiprecParseError(exc.message) from None
    except (expat.ExpatError, ValueError) as exc:
        raise SiprecParseError("metadata is not well-formed XML") from exc
    if builder.root is None:
        raise SiprecParseError("metadata is not well-formed XML")
    return builder.root
