"""Reading the number directory for the manager's page: the numbers and the organisation in
force on a day, a search by number or unit name, and keyset pages.

Pages follow the ``(number, valid_from)`` order of the table's unique index, and a cursor
names the last (or first) row shown, so page 500 of a city's tens of thousands of numbers
costs what page 1 costs.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet

from callscope.analytics.directory import LEVEL_ORDER, in_force
from callscope.store.models import DirectoryEntry, OrgUnit
from callscope.store.numbering import normalise_number

PAGE_SIZE = 50
_CURSOR_SEP = "~"


def entries(on: dt.date | None, query: str = "", unit: OrgUnit | None = None) -> QuerySet[Any]:
    """Directory entries in force on ``on`` (every period if None), matching ``query`` (a
    number in any spelling, part of a unit name or label, or a unit code) and within
    ``unit`` and the units under it."""
    rows: QuerySet[Any] = in_force(DirectoryEntry.objects.select_related("unit"), on)
    text = query.strip()
    if text:
        match = (
            Q(unit__name__icontains=text) | Q(label__icontains=text) | Q(unit__code__iexact=text)
        )
        digits = normalise_number(text)
        if digits.isdigit():
            match |= Q(number__contains=digits)
        rows = rows.filter(match)
    if unit is not None:
        rows = rows.filter(
            Q(unit=unit) | Q(unit__parent=unit) | Q(unit__department=unit) | Q(unit__top=unit)
        )
    return rows


def cursor_of(entry: DirectoryEntry) -> str:
    return f"{entry.number}{_CURSOR_SEP}{entry.valid_from.isoformat()}"


def _parse_cursor(cursor: str) -> tuple[str, dt.date] | None:
    number, _sep, day = cursor.rpartition(_CURSOR_SEP)
    try:
        return (number, dt.date.fromisoformat(day)) if number else None
    except ValueError:
        return None


@dataclass(slots=True)
class Page:
    rows: list[DirectoryEntry]
    next_cursor: str = ""  # the ``after`` of the next page, empty on the last
    prev_cursor: str = ""  # the ``before`` of the previous page, empty on the first


def page_of(
    rows: QuerySet[Any], *, after: str = "", before: str = "", size: int = PAGE_SIZE
) -> Page:
    """One keyset page of ``rows`` in (number, valid_from) order."""
    back = _parse_cursor(before) if before else None
    ahead = _parse_cursor(after) if after and back is None else None
    if back is not None:
        number, day = back
        older = rows.filter(Q(number__lt=number) | Q(number=number, valid_from__lt=day))
        found = list(older.order_by("-number", "-valid_from")[: size + 1])
        shown = found[:size][::-1]
        more_before = len(found) > size
        return Page(
            shown,
            next_cursor=cursor_of(shown[-1]) if shown else "",
            prev_cursor=cursor_of(shown[0]) if shown and more_before else "",
        )
    if ahead is not None:
        number, day = ahead
        rows = rows.filter(Q(number__gt=number) | Q(number=number, valid_from__gt=day))
    found = list(rows.order_by("number", "valid_from")[: size + 1])
    shown = found[:size]
    return Page(
        shown,
        next_cursor=cursor_of(shown[-1]) if len(found) > size else "",
        prev_cursor=cursor_of(shown[0]) if shown and ahead is not None else "",
    )


@dataclass(slots=True)
class TreeNode:
    """A unit in force, its numbers (its own, and with the units under it) and children."""

    unit: OrgUnit
    numbers: int = 0
    total: int = 0
    children: list[TreeNode] = field(default_factory=list)


def org_tree(on: dt.date) -> list[TreeNode]:
    """The bureaus and ward offices in force on ``on``, each with the units under it."""
    units = list(in_force(OrgUnit.objects.all(), on))
    counts = Counter(
        dict(
            in_force(DirectoryEntry.objects.all(), on)
            .values("unit_id")
            .annotate(n=Count("id"))
            .values_list("unit_id", "n")
        )
    )
    nodes = {u.pk: TreeNode(u, numbers=counts.get(u.pk, 0)) for u in units}
    roots: list[TreeNode] = []
    for node in nodes.values():
        parent = nodes.get(node.unit.parent_id or 0)
        (roots if parent is None else parent.children).append(node)

    def order(node: TreeNode) -> tuple[int, str]:
        return LEVEL_ORDER.get(node.unit.level, 9), node.unit.code

    def finish(level: list[TreeNode]) -> int:
        level.sort(key=order)
        total = 0
        for node in level:
            node.total = node.numbers + finish(node.children)
            total += node.total
        return total

    finish(roots)
    return roots
