"""The queries behind dashboards and reports: rollup rows only, never calls.

A period is split into whole months (read from month rows) and the days at its edges (day
rows), so a panel reads at most ~12 month rows and ~60 day rows per unit and flow for a
year, and the cost does not grow with the years stored. Organisation filters pick the scope:
city-wide and bureau/ward panels read the bureau/ward rows, department and section panels
the unit rows (indexed by section, department and bureau/ward).
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q, QuerySet, Sum

from callscope.analytics import kpis, orgindex
from callscope.analytics.conversations import Flow
from callscope.analytics.models import LoadHour, MatrixRollup, Rollup
from callscope.analytics.orgindex import UnitInfo

LEVELS = ("top", "department", "section")
LEVEL_COLUMN = {"top": "top_id", "department": "department_id", "section": "unit_id"}
DEFAULT_FLOWS = (Flow.INBOUND,)
INTERNAL = (Flow.INTERNAL, Flow.WARD_HQ)


@dataclass(frozen=True)
class Filters:
    """What a dashboard shows: JST dates (both included), an organisation unit, flows."""

    start: dt.date
    end: dt.date
    unit_id: int | None = None
    flows: tuple[str, ...] = DEFAULT_FLOWS
    level: str = "section"  # the level rows are grouped at
    marker: dt.date | None = None  # before/after comparison date
    info: dict[int, UnitInfo] = field(default_factory=dict, compare=False, repr=False)

    @property
    def unit(self) -> UnitInfo | None:
        return None if self.unit_id is None else self.units().get(self.unit_id)

    def units(self) -> dict[int, UnitInfo]:
        return self.info or orgindex.current_index().info


def split_period(
    start: dt.date, end: dt.date
) -> tuple[list[dt.date], list[tuple[dt.date, dt.date]]]:
    """Whole months inside [start, end] (their 1st days) and the remaining day ranges."""
    months: list[dt.date] = []
    edges: list[tuple[dt.date, dt.date]] = []
    day = start
    while day <= end:
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        if day.day == 1 and last <= end:
            months.append(day)
        else:
            edges.append((day, min(last, end)))
        day = last + dt.timedelta(days=1)
    return months, edges


def _unit_filter(unit: UnitInfo | None, prefix: str = "") -> Q:
    if unit is None:
        return Q()
    if unit.level in ("bureau", "ward"):
        return Q(**{f"{prefix}top_id": unit.id})
    if unit.level == "department":
        return Q(**{f"{prefix}department_id": unit.id})
    return Q(**{f"{prefix}unit_id": unit.id})


def _needs_units(f: Filters, grouped: bool) -> bool:
    unit = f.unit
    return (grouped and f.level != "top") or (
        unit is not None and unit.level not in ("bureau", "ward")
    )


def rollup_rows(f: Filters, *, grouped: bool = False, profile: bool = False) -> QuerySet[Rollup]:
    """Rollup rows covering the period: month (or weekday-hour profile) rows for whole
    months, day (or hour) rows for the rest."""
    months, edges = split_period(f.start, f.end)
    coarse, fine = ("p", "h") if profile else ("m", "d")
    when = Q(grain=coarse, day__in=months) if months else Q(pk__in=[])
    for first, last in edges:
        when |= Q(grain=fine, day__gte=first, day__lte=last)
    scope = "u" if _needs_units(f, grouped) else "t"
    qs: QuerySet[Rollup] = Rollup.objects.filter(when, scope=scope).filter(_unit_filter(f.unit))
    if f.flows:
        qs = qs.filter(flow__in=f.flows)
    return qs


def _sums(names: Iterable[str]) -> dict[str, Sum]:
    return {name: Sum(name) for name in names}


def totals(f: Filters, names: Sequence[str] = kpis.MEASURES) -> dict[str, float]:
    """Sums of the measures over the filters."""
    row = rollup_rows(f).aggregate(**_sums(names))
    return {name: row[name] or 0 for name in names}


def summary(f: Filters, **options: int) -> dict[str, float | None]:
    """Every KPI (`kpis.summarize`) over the filters."""
    return kpis.summarize(totals(f), **options)


def compare_periods(f: Filters) -> dict[str, kpis.Change]:
    """KPIs before the marker date and from it on (same length of period before it)."""
    if f.marker is None:
        return {}
    before = Filters(f.start, f.marker - dt.timedelta(days=1), f.unit_id, f.flows, f.level)
    after = Filters(f.marker, f.end, f.unit_id, f.flows, f.level)
    return kpis.compare(summary(before), summary(after))


TREND_MEASURES = ("offered", "answered", "abandoned", "talk_sum")


def trend(f: Filters) -> list[dict[str, Any]]:
    """Per JST day: offered, answered, abandoned, talk minutes."""
    scope = "u" if _needs_units(f, False) else "t"
    qs = Rollup.objects.filter(grain="d", scope=scope, day__gte=f.start, day__lte=f.end)
    qs = qs.filter(_unit_filter(f.unit))
    if f.flows:
        qs = qs.filter(flow__in=f.flows)
    rows = qs.values("day").annotate(**_sums(TREND_MEASURES)).order_by("day")
    return [{**row, "talk_minutes": (row.pop("talk_sum") or 0) / 60} for row in rows]


def heatmap(f: Filters) -> list[list[int]]:
    """Offered calls by weekday (Monday first) and JST hour: 7 rows of 24."""
    grid = [[0] * 24 for _ in range(7)]
    rows = rollup_rows(f, profile=True).values("weekday", "hour").annotate(n=Sum("offered"))
    for row in rows:
        grid[row["weekday"]][row["hour"]] += row["n"] or 0
    return grid


UNIT_MEASURES = ("offered", "answered", "abandoned", "talk_sum", "wait_sum",
                 *kpis.ABANDON_BUCKETS, *kpis.WAIT_BUCKETS)  # fmt: skip


def by_unit(f: Filters, **options: int) -> list[dict[str, Any]]:
    """KPIs per unit of ``f.level`` (bureau/ward, department or section), most calls first."""
    column = LEVEL_COLUMN[f.level]
    rows = rollup_rows(f, grouped=True).values(column).annotate(**_sums(UNIT_MEASURES))
    info = f.units()
    out = []
    for row in rows:
        uid = row.pop(column)
        s = kpis.summarize(row, **options)
        unit = info.get(uid)
        top = info.get(unit.top_id) if unit else None
        out.append({
            "unit_id": uid, "name": unit.name if unit else "", "top": top.name if top else "",
            "offered": s["offered"], "answered": s["answered"], "abandoned": s["abandoned"],
            "abandon_rate": s["abandon_rate"], "answer_rate": s["answer_rate"],
            "service_level": s["service_level"], "wait_mean": s["wait_mean"],
            "talk_minutes": s["talk_minutes"], "talk_mean": s["talk_mean"],
        })  # fmt: skip
    out.sort(key=lambda r: (-r["offered"], r["name"]))
    return out


def distributions(f: Filters) -> dict[str, list[tuple[str, float]]]:
    """Histogram of waiting time (answered) and talk time: (bucket label, count)."""
    names = (*kpis.WAIT_BUCKETS, *kpis.TALK_BUCKETS)
    t = totals(f, names)

    def labelled(edges: tuple[int, ...], buckets: tuple[str, ...]) -> list[tuple[str, float]]:
        labels = [f"{lo}-{hi}" for lo, hi in itertools.pairwise(edges)]
        labels.append(f"{edges[-1]}+")
        return [(label, t[name]) for label, name in zip(labels, buckets, strict=True)]

    return {"wait": labelled(kpis.WAIT_EDGES, kpis.WAIT_BUCKETS),
            "talk": labelled(kpis.TALK_EDGES, kpis.TALK_BUCKETS)}  # fmt: skip


MATRIX_COLUMNS = {"top": ("caller_top_id", "callee_top_id"),
                  "department": ("caller_department_id", "callee_department_id"),
                  "section": ("caller_unit_id", "callee_unit_id")}  # fmt: skip


def matrix(f: Filters) -> list[dict[str, Any]]:
    """Internal calls caller unit x callee unit at ``f.level``: calls, answered, minutes.

    With a unit filter, calls with that unit on either side."""
    months, edges = split_period(f.start, f.end)
    when = Q(grain="m", day__in=months) if months else Q(pk__in=[])
    for first, last in edges:
        when |= Q(grain="d", day__gte=first, day__lte=last)
    scope = "t" if f.level == "top" else "u"
    qs = MatrixRollup.objects.filter(when, scope=scope)
    unit = f.unit
    if unit is not None:
        qs = qs.filter(_unit_filter(unit, "caller_") | _unit_filter(unit, "callee_"))
    caller, callee = MATRIX_COLUMNS[f.level]
    rows = qs.values(caller, callee).annotate(
        calls=Sum("calls"), answered=Sum("answered"), talk=Sum("talk_sum")
    )
    info = f.units()
    out = [
        {"caller_id": r[caller], "callee_id": r[callee],
         "caller": _name(info, r[caller]), "callee": _name(info, r[callee]),
         "calls": r["calls"], "answered": r["answered"], "minutes": (r["talk"] or 0) / 60}
        for r in rows
    ]  # fmt: skip
    out.sort(key=lambda r: -r["calls"])
    return out


def _name(info: dict[int, UnitInfo], uid: int) -> str:
    unit = info.get(uid)
    if unit is None:
        return ""
    top = info.get(unit.top_id)
    return unit.name if top is None or top.id == unit.id else f"{top.name} {unit.name}"


def peak_load(f: Filters) -> list[dict[str, Any]]:
    """Peak concurrent calls per JST day (city-wide)."""
    rows = LoadHour.objects.filter(day__gte=f.start, day__lte=f.end).values("day")
    return [dict(row) for row in rows.annotate(peak=Max("peak")).order_by("day")]


def mix(f: Filters) -> dict[str, float]:
    """Offered conversations by flow (external vs internal mix)."""
    g = Filters(f.start, f.end, f.unit_id, (), f.level, info=f.info)
    rows = rollup_rows(g).values("flow").annotate(n=Sum("offered"))
    return {row["flow"]: row["n"] or 0 for row in rows}
