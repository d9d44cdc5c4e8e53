"""A small msgid scanner: the translatable strings of our templates and Python code.

Templates are read with Django's own template lexer: ``{% translate "x" %}`` (and
``trans``) and ``{% blocktranslate %}...{% plural %}...{% endblocktranslate %}``, whose
``{{ var }}`` become ``%(var)s`` and literal ``%`` become ``%%``, as Django looks them up.
Python is read with `ast`: the first string argument of ``_``, ``gettext``,
``gettext_lazy``, ``ngettext``/``ngettext_lazy`` (singular and plural) and ``pgettext``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from django.template.base import Lexer, TokenType
from django.utils.text import smart_split

SRC = Path(__file__).resolve().parents[2] / "src" / "callscope"
PO = SRC / "locale" / "ja" / "LC_MESSAGES" / "django.po"

_SINGLE = {"_", "gettext", "gettext_lazy", "gettext_noop", "pgettext", "pgettext_lazy"}
_PLURAL = {"ngettext", "ngettext_lazy", "npgettext", "npgettext_lazy"}
_CONTEXT = {"pgettext", "pgettext_lazy", "npgettext", "npgettext_lazy"}


def _unquote(token: str) -> str | None:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1].replace("\\" + token[0], token[0])
    return None


def _block_text(tokens: list, trimmed: bool) -> str:
    parts = []
    for token in tokens:
        if token.token_type == TokenType.VAR:
            name = token.contents.split("|")[0].strip()
            parts.append(f"%({name})s")
        else:
            parts.append(token.contents.replace("%", "%%"))
    text = "".join(parts)
    if trimmed:
        text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text


def template_msgids(text: str) -> Iterator[str]:
    tokens = Lexer(text).tokenize()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.token_type != TokenType.BLOCK:
            continue
        bits = list(smart_split(token.contents))
        if bits[0] in {"translate", "trans"} and len(bits) > 1:
            value = _unquote(bits[1])
            if value is not None and "noop" not in bits:
                yield value
        elif bits[0] in {"blocktranslate", "blocktrans"}:
            trimmed = "trimmed" in bits
            singular, plural, current = [], [], None
            current = singular
            while index < len(tokens):
                inner = tokens[index]
                index += 1
                if inner.token_type == TokenType.BLOCK:
                    name = inner.contents.split()[0]
                    if name == "plural":
                        current = plural
                        continue
                    if name in {"endblocktranslate", "endblocktrans"}:
                        break
                current.append(inner)
            yield _block_text(singular, trimmed)
            if plural:
                yield _block_text(plural, trimmed)


def python_msgids(text: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in _SINGLE | _PLURAL:
            continue
        args = node.args[1:] if name in _CONTEXT else node.args
        count = 2 if name in _PLURAL else 1
        for arg in args[:count]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value


def source_msgids(root: Path = SRC) -> dict[str, set[str]]:
    """msgid -> the files that use it, over every template and module under ``root``."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*")):
        if "migrations" in path.parts or not path.is_file():
            continue
        if path.suffix == ".html" and "templates" in path.parts:
            ids = template_msgids(path.read_text(encoding="utf-8"))
        elif path.suffix == ".py":
            ids = python_msgids(path.read_text(encoding="utf-8"))
        else:
            continue
        for msgid in ids:
            if msgid.strip():
                found.setdefault(msgid, set()).add(str(path.relative_to(root)))
    return found


_PO_ENTRY = re.compile(r"^msgid ", re.M)


def catalogue() -> dict[str, str]:
    """msgid -> msgstr of the Japanese catalogue (plural forms: the first msgstr)."""
    import polib

    entries = {}
    for entry in polib.pofile(str(PO)):
        if entry.obsolete:
            continue
        text = entry.msgstr or (entry.msgstr_plural or {}).get(0, "")
        if "fuzzy" in entry.flags:
            text = ""
        entries[entry.msgid] = text
        if entry.msgid_plural:
            entries[entry.msgid_plural] = (entry.msgstr_plural or {}).get(0, "") and text
    return entries


if __name__ == "__main__":  # list what is missing: python -m tests.console._msgids
    import django

    django.setup()
    known = catalogue()
    for msgid, files in sorted(source_msgids().items()):
        if not known.get(msgid):
            print(repr(msgid), sorted(files))
