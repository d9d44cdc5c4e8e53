"""Where a call sits in the organisation: `classify_call`, fast enough for every call.

The directory (`store.OrgUnit`, `store.DirectoryEntry`) changes every April, and a call is
always counted under the units in force on its JST date. The validity dates of all units and
numbers cut time into periods in which nothing changes; `OrgIndex` keeps one number lookup
per period, built on first use, so classifying a call is a bisect and two dict lookups.

The index is per process and reloaded when it is older than `MAX_AGE_SECONDS` (another
process may have imported a directory) or when `invalidate()` is called (the import does).
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from dataclasses import dataclass

from callscope.analytics.conversations import JST, Flow
from callscope.store.models import Direction, DirectoryEntry, OrgUnit
from callscope.store.numbering import classify_number, normalise_number

MAX_AGE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A unit with its place in the tree (ids of one period's units)."""

    id: int
    code: str
    name: str
    level: str
    section_id: int  # 0 when the unit is above section level
    department_id: int  # 0 when the unit is a bureau or ward
    top_id: int  # the bureau or ward office (itself for a top unit)
    is_ward: bool


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer of `classify_call`."""

    direction: Flow
    caller_unit: OrgUnit | None
    callee_unit: OrgUnit | None
    caller_class: str
    callee_class: str

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Unpacks as ``direction, caller_unit, callee_unit, caller_class, callee_class``."""
        return iter(
            (self.direction, self.caller_unit, self.callee_unit, self.caller_class,
             self.callee_class)
        )  # fmt: skip


def as_call_direction(flow: str) -> str:
    """`Call.direction` for a flow: ward/HQ calls are stored as internal."""
    return Direction.INTERNAL if flow == Flow.WARD_HQ else flow


def flow_between(caller: UnitInfo | None, callee: UnitInfo | None) -> Flow:
    if caller is not None and callee is not None:
        return Flow.WARD_HQ if caller.is_ward != callee.is_ward else Flow.INTERNAL
    if caller is not None:
        return Flow.OUTBOUND
    if callee is not None:
        return Flow.INBOUND
    return Flow.UNKNOWN


def _unit_info(unit: OrgUnit, units: dict[int, OrgUnit]) -> UnitInfo:
    top_id = unit.top_id or unit.id
    top = units.get(top_id, unit)
    level = unit.level
    return UnitInfo(
        id=unit.id,
        code=unit.code,
        name=unit.name,
        level=level,
        section_id=unit.id if level == OrgUnit.Level.SECTION else 0,
        department_id=(unit.id if level == OrgUnit.Level.DEPARTMENT else (unit.department_id or 0)),
        top_id=top_id,
        is_ward=bool(unit.is_ward or top.is_ward or top.level == OrgUnit.Level.WARD),
    )


class OrgIndex:
    """All units, and per validity period the numbers in force (number -> entry)."""

    def __init__(self) -> None:
        self.units: dict[int, OrgUnit] = {u.id: u for u in OrgUnit.objects.all()}
        self.info: dict[int, UnitInfo] = {
            uid: _unit_info(u, self.units) for uid, u in self.units.items()
        }
        self._entries = list(
            DirectoryEntry.objects.values_list(
                "number", "unit_id", "kind", "valid_from", "valid_to"
            )
        )
        edges = {start for *_, start, _end in self._entries}
        edges |= {end + dt.timedelta(days=1) for *_, end in self._entries if end is not None}
        self._edges = sorted(edges)
        self._periods: dict[int, dict[str, tuple[int, str]]] = {}
        self.loaded_at = time.monotonic()

    def numbers_on(self, day: dt.date) -> dict[str, tuple[int, str]]:
        """Number -> (unit id, kind) for the directory in force on ``day``."""
        period = bisect.bisect_right(self._edges, day)
        table = self._periods.get(period)
        if table is None:
            table = {
                number: (unit_id, kind)
                for number, unit_id, kind, start, end in self._entries
                if start <= day and (end is None or day <= end)
            }
            self._periods[period] = table
        return table

    def lookup(self, raw: str, day: dt.date) -> tuple[UnitInfo | None, str]:
        """The unit of a number on a day and its class (directory kind, else the plan's)."""
        found = self.numbers_on(day).get(normalise_number(raw))
        if found is None:
            return None, classify_number(raw).value
        unit_id, kind = found
        return self.info.get(unit_id), kind


_lock = threading.Lock()
_index: OrgIndex | None = None


def current_index() -> OrgIndex:
    """The process's index, reloaded when older than `MAX_AGE_SECONDS`."""
    global _index  # noqa: PLW0603  (one index per process, by design)
    index = _index
    if index is None or time.monotonic() - index.loaded_at > MAX_AGE_SECONDS:
        with _lock:
            index = _index = OrgIndex()
    return index


def invalidate() -> None:
    """Forget the index (after a directory import in this process)."""
    global _index  # noqa: PLW0603
    with _lock:
        _index = None


def classify_call(caller_number: str, callee_number: str, at: dt.datetime) -> Placement:
    """Direction, units and number classes of a call starting at ``at`` (aware datetime).

    Units are the ones in force on the JST date of ``at``; a class is the directory kind
    (``staff``, ``group``, ``ivr``, ``fax``) for the city's own numbers, else the
    numbering-plan class (`store.numbering.NumberClass`). Unpacks as the tuple
    ``(direction, caller_unit, callee_unit, caller_class, callee_class)``.
    """
    index = current_index()
    day = at.astimezone(JST).date()
    caller, caller_class = index.lookup(caller_number, day)
    callee, callee_class = index.lookup(callee_number, day)
    return Placement(
        direction=flow_between(caller, callee),
        caller_unit=None if caller is None else index.units[caller.id],
        callee_unit=None if callee is None else index.units[callee.id],
        caller_class=caller_class,
        callee_class=callee_class,
    )
