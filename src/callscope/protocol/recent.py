"""Parse results of short wire texts that repeat from message to message.

The From and To values of a dialog recur in each of its messages, and a PBX writes the same
``a=rtpmap`` and ``c=`` values into every SDP it sends. Their parsed values are immutable, so
one object can serve every message that carries the same text. The table is bounded: it is
emptied when full, and long texts (fuzzed or hostile input) are parsed but never kept.
Unusable texts are not kept either: they are parsed (and reported) every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

_K = TypeVar("_K", str, bytes)
_T = TypeVar("_T")


class RecentParses(Generic[_K, _T]):
    """``parse(text)`` for texts (or bytes) seen recently, from a table; the rest parsed as
    usual."""

    __slots__ = ("_limit", "_max_text", "_parse", "_values", "known")

    def __init__(self, parse: Callable[[_K], _T], *, limit: int = 4096, max_text: int = 512):
        self._parse: Callable[[_K], _T] = parse
        self._values: dict[_K, _T] = {}
        self._limit = limit
        self._max_text = max_text
        #: the value remembered for a text, or None: ``known(text) or recent(text)`` spares
        #: the hot paths a Python call when the text was seen lately
        self.known: Callable[[_K], _T | None] = self._values.get

    @property
    def table(self) -> dict[_K, _T]:
        """The texts remembered and their values (read it, never write it: a compiled twin
        looks texts up in it as ``known`` does)."""
        return self._values

    def __call__(self, text: _K) -> _T:
        value = self._values.get(text)
        if value is None:
            value = self._parse(text)  # may raise: nothing is kept then
            if value is not None and len(text) <= self._max_text:
                if len(self._values) >= self._limit:
                    self._values.clear()
                self._values[text] = value
        return value
