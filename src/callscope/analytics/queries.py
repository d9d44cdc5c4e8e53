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
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from callscope.analytics import kpis, orgindex
from callscope.analytics.conversations import Flow
from callscope.analytics.models import LoadHour, MatrixRollup, Rollup
from callscope.analytics.orgindex import UnitInfo

LEVELS = ("top", "department", "section")
LEVEL_COLUMN = {"top": "top_id", "department": "department_id", "section": "unit_id"}
DEFAULT_FLOWS = (Flow.INBOUND,)
INTERNAL = (Flow.INTERNAL, Flow.WARD_HQ)
ALL_FLOWS = tuple(flow.value for flow in Flow)


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


#: PostgreSQL connections (the driver's) on which `_read` has turned parallel workers off
_SERIAL: weakref.WeakSet[Any] = weakref.WeakSet()


def _read(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one panel query. On PostgreSQL without parallel workers: a panel reads a
    few thousand rollup rows in about a millisecond, and starting workers cost 5-40 ms on
    this 2-core machine (the planner picked them for the matrix's two index ranges). The
    setting is made once per connection (a dashboard runs a dozen panels; a transaction per
    panel for ``SET LOCAL`` cost four round trips each), or for the current transaction
    when the panel runs inside one (a rollback would undo a session-wide SET)."""
    rows: list[tuple[Any, ...]]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if connection.in_atomic_block:
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            elif connection.connection not in _SERIAL:
                cursor.execute("SET max_parallel_workers_per_gather = 0")
                _SERIAL.add(connection.connection)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return rows


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


def _unit_condition(unit: UnitInfo | None, prefix: str = "") -> tuple[str, list[Any]]:
    if unit is None:
        return "", []
    if unit.level in ("bureau", "ward"):
        return f" AND {prefix}top_id = %s", [unit.id]
    if unit.level == "department":
        return f" AND {prefix}department_id = %s", [unit.id]
    return f" AND {prefix}{'unit' if prefix else 'section'}_id = %s", [unit.id]


def _needs_units(f: Filters, grouped: bool) -> bool:
    unit = f.unit
    return (grouped and f.level != "top") or (
        unit is not None and unit.level not in ("bureau", "ward")
    )


def _period_condition(f: Filters, coarse: str, fine: str) -> tuple[str, list[Any]]:
    """Rows covering the period: ``coarse`` rows for whole months, ``fine`` for the rest."""
    day = connection.ops.adapt_datefield_value
    months, edges = split_period(f.start, f.end)
    parts: list[str] = []
    params: list[Any] = []
    if months:
        parts.append(f"(grain = '{coarse}' AND day IN ({', '.join(['%s'] * len(months))}))")
        params += [day(m) for m in months]
    for first, last in edges:
        parts.append(f"(grain = '{fine}' AND day >= %s AND day <= %s)")
        params += [day(first), day(last)]
    return "(" + " OR ".join(parts or ["1 = 0"]) + ")", params


def select(
    f: Filters,
    names: Sequence[str],
    *,
    group: Sequence[str] = (),
    grouped: bool = False,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """``SUM`` of the measures ``names`` over the rollup rows of the filters, grouped by the
    ``group`` columns. Raw SQL: building 60 ORM aggregates costs more than running them."""
    when, params = _period_condition(f, *(("p", "h") if profile else ("m", "d")))
    scope = "u" if _needs_units(f, grouped) else "t"
    unit_sql, unit_params = _unit_condition(f.unit)
    flows = f.flows or ALL_FLOWS  # always a flow condition: the indexes lead with flow
    flow_sql = f" AND flow IN ({', '.join(['%s'] * len(flows))})"
    columns = [*group, *(f"SUM({name})" for name in names)]
    sql = (
        f"SELECT {', '.join(columns)} FROM {Rollup._meta.db_table} "  # noqa: S608
        f"WHERE {when} AND scope = %s{unit_sql}{flow_sql}"
        + (f" GROUP BY {', '.join(group)}" if group else "")
    )
    keys = [*group, *names]
    rows = _read(sql, [*params, scope, *unit_params, *flows])
    return [dict(zip(keys, row, strict=True)) for row in rows]


def totals(f: Filters, names: Sequence[str] = kpis.MEASURES) -> dict[str, float]:
    """Sums of the measures over the filters."""
    rows = select(f, names)
    row = rows[0] if rows else {}
    return {name: row.get(name) or 0 for name in names}


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
    g = Filters(f.start, f.end, f.unit_id, f.flows, f.level, info=f.info)
    edges = [(f.start, f.end)]
    rows = _select_days(g, edges, TREND_MEASURES)
    out = []
    for row in sorted(rows, key=lambda r: r["day"]):
        row["day"] = _as_date(row["day"])
        row["talk_minutes"] = (row.pop("talk_sum") or 0) / 60
        out.append(row)
    return out


def _select_days(
    f: Filters, edges: list[tuple[dt.date, dt.date]], names: Sequence[str]
) -> list[dict[str, Any]]:
    day = connection.ops.adapt_datefield_value
    scope = "u" if _needs_units(f, False) else "t"
    unit_sql, unit_params = _unit_condition(f.unit)
    flows = f.flows or ALL_FLOWS
    flow_sql = f" AND flow IN ({', '.join(['%s'] * len(flows))})"
    sums = ", ".join(f"SUM({name})" for name in names)
    sql = (
        f"SELECT day, {sums} FROM {Rollup._meta.db_table} "  # noqa: S608
        f"WHERE grain = 'd' AND scope = %s AND day >= %s AND day <= %s{unit_sql}{flow_sql} "
        "GROUP BY day"
    )
    ((first, last),) = edges
    rows = _read(sql, [scope, day(first), day(last), *unit_params, *flows])
    return [dict(zip(["day", *names], row, strict=True)) for row in rows]


def _as_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def heatmap(f: Filters) -> list[list[int]]:
    """Offered calls by weekday (Monday first) and JST hour: 7 rows of 24."""
    grid = [[0] * 24 for _ in range(7)]
    for row in select(f, ["offered"], group=["weekday", "hour"], profile=True):
        grid[row["weekday"]][row["hour"]] += row["offered"] or 0
    return grid


UNIT_MEASURES = ("offered", "answered", "abandoned", "talk_sum", "wait_sum",
                 *kpis.ABANDON_BUCKETS, *kpis.WAIT_BUCKETS)  # fmt: skip


def by_unit(f: Filters, **options: int) -> list[dict[str, Any]]:
    """KPIs per unit of ``f.level`` (bureau/ward, department or section), most calls first."""
    column = LEVEL_COLUMN[f.level]
    rows = select(f, UNIT_MEASURES, group=[column], grouped=True)
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
    when, params = _period_condition(f, "m", "d")
    scope = {"top": "t", "department": "d"}.get(f.level, "u")
    flow_sql = f" AND flow IN ({', '.join(['%s'] * len(f.flows))})" if f.flows else ""
    caller, callee = MATRIX_COLUMNS[f.level]
    columns = f"{caller}, {callee}, calls, answered, talk_sum"
    where = f"{when} AND scope = %s{flow_sql}"
    table = MatrixRollup._meta.db_table
    if f.unit is None:
        rows_sql = f"SELECT {columns} FROM {table} WHERE {where}"  # noqa: S608
        args = [*params, scope, *f.flows]
    else:
        # calls with the unit on either side, as two index ranges: the caller's side, then
        # the callee's without the caller's (an OR of both sides led SQLite and PostgreSQL
        # to read every unit pair of the period)
        caller_sql, caller_params = _matrix_side(f.unit, "caller_")
        callee_sql, callee_params = _matrix_side(f.unit, "callee_")
        rows_sql = (
            f"SELECT {columns} FROM {table} WHERE {where} AND {caller_sql} UNION ALL "  # noqa: S608
            f"SELECT {columns} FROM {table} WHERE {where} AND {callee_sql} "
            f"AND NOT ({caller_sql})"
        )
        args = [*params, scope, *f.flows, *caller_params,
                *params, scope, *f.flows, *callee_params, *caller_params]  # fmt: skip
    sql = (
        f"SELECT {caller}, {callee}, SUM(calls), SUM(answered), SUM(talk_sum) "  # noqa: S608
        f"FROM ({rows_sql}) AS pairs GROUP BY {caller}, {callee}"
    )
    keys = [caller, callee, "calls", "answered", "talk"]
    rows = [dict(zip(keys, row, strict=True)) for row in _read(sql, args)]
    info = f.units()
    out = [
        {"caller_id": r[caller], "callee_id": r[callee],
         "caller": _name(info, r[caller]), "callee": _name(info, r[callee]),
         "calls": r["calls"], "answered": r["answered"], "minutes": (r["talk"] or 0) / 60}
        for r in rows
    ]  # fmt: skip
    out.sort(key=lambda r: -r["calls"])
    return out


def _matrix_side(unit: UnitInfo, prefix: str) -> tuple[str, list[Any]]:
    """One side's unit condition. The matrix is indexed by (grain, scope, bureau/ward, day)
    and (grain, scope, unit, day) on each side; a department is led by its bureau/ward so
    that it reads only that bureau/ward's rows, not every unit pair of the period."""
    condition, params = _unit_condition(unit, prefix)
    condition = condition.removeprefix(" AND ")
    if unit.level != "department":
        return condition, params
    return f"{prefix}top_id = %s AND {condition}", [unit.top_id, *params]


def _name(info: dict[int, UnitInfo], uid: int) -> str:
    unit = info.get(uid)
    if unit is None:
        return ""
    top = info.get(unit.top_id)
    return unit.name if top is None or top.id == unit.id else f"{top.name} {unit.name}"


def peak_load(f: Filters) -> list[dict[str, Any]]:
    """Peak concurrent calls per JST day (city-wide)."""
    day = connection.ops.adapt_datefield_value
    sql = (
        f"SELECT day, MAX(peak) FROM {LoadHour._meta.db_table} "  # noqa: S608
        "WHERE day >= %s AND day <= %s GROUP BY day ORDER BY day"
    )
    return [
        {"day": _as_date(d), "peak": peak} for d, peak in _read(sql, [day(f.start), day(f.end)])
    ]


def mix(f: Filters) -> dict[str, float]:
    """Offered conversations by flow (external vs internal mix)."""
    g = Filters(f.start, f.end, f.unit_id, (), f.level, info=f.info)
    return {row["flow"]: row["offered"] or 0 for row in select(g, ["offered"], group=["flow"])}
