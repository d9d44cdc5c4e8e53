"""Updating the rollups as each call leg ends: `apply_call(call)`.

A leg can change its conversation (a second desk of a ringing group, the staff leg after an
IVR), so `apply_call` folds the conversation twice, without and with the new leg, and adds
the difference of their `kpis.measures` to the rollup rows: the rollups always hold the
measures of whole conversations, as if they had been aggregated at once (`rebuild` does
exactly that in SQL, and the tests check both agree).

Call it once per saved leg, right after saving it (legs one at a time); a leg saved again
passes its previously applied values as ``replaced`` (or run `callscope rollup --rebuild`).
Cost: one query for the other legs of the conversation, one for repeat callers (inbound
only), one upsert for all rollup rows, one for the matrix (internal calls) and two for the
load minutes, all on the DB-API cursor with cached SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection, transaction

from callscope.analytics import kpis, orgindex
from callscope.analytics.conversations import (
    INTERNAL_FLOWS,
    Conversation,
    Flow,
    Leg,
    Outcome,
    conversation_of,
)
from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup
from callscope.analytics.orgindex import UnitInfo
from callscope.store.models import Call

LEG_FIELDS = ("id", "call_id", "conversation_id", "started_at", "ringing_at", "answered_at",
              "ended_at", "result", "ended_by", "direction", "caller_unit_id", "callee_unit_id",
              "callee_class", "caller_pseudonym", "hold_seconds", "transferred")  # fmt: skip
ROLLUP_KEY = ("grain", "scope", "day", "hour", "weekday", "unit_id", "top_id", "flow")
ROLLUP_DIMS = (*ROLLUP_KEY, "section_id", "department_id")
MATRIX_KEY = ("grain", "scope", "day", "caller_unit_id", "caller_department_id",
              "caller_top_id", "callee_unit_id", "callee_department_id", "callee_top_id",
              "flow")  # fmt: skip
MATRIX_DIMS = (*MATRIX_KEY, "caller_section_id", "callee_section_id")
MATRIX_MEASURES = ("calls", "answered", "talk_sum")


def refine_flow(direction: str, caller: UnitInfo | None, callee: UnitInfo | None) -> str:
    """The stored direction, with internal calls between a ward and HQ as ``ward_hq``."""
    if direction == Flow.INTERNAL and caller and callee and caller.is_ward != callee.is_ward:
        return Flow.WARD_HQ
    return direction


def leg_of(row: Mapping[str, Any], info: Mapping[int, UnitInfo]) -> Leg:
    """A `Leg` from a ``values()`` row of `store.Call` (units looked up in ``info``)."""
    caller, callee = row["caller_unit_id"], row["callee_unit_id"]
    flow = refine_flow(
        row["direction"],
        None if caller is None else info.get(caller),
        None if callee is None else info.get(callee),
    )
    return Leg.from_row({**row, "flow": flow})


def unit_columns(unit_id: int | None, info: Mapping[int, UnitInfo]) -> tuple[int, int, int, int]:
    """(unit, section, department, top) ids of a unit, 0 for what is unknown."""
    if unit_id is None:
        return 0, 0, 0, 0
    unit = info.get(unit_id)
    if unit is None:
        return unit_id, 0, 0, 0
    return unit.id, unit.section_id, unit.department_id, unit.top_id


def rollup_keys(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[dict[str, Any]]:
    """The eight rollup rows (4 grains x 2 scopes) a conversation is counted in."""
    start = conv.jst_start
    day, hour = start.date(), start.hour
    weekday, month = day.weekday(), day.replace(day=1)
    unit, section, department, top = unit_columns(conv.unit_id, info)
    scopes = {"u": (unit, section, department, top), "t": (0, 0, 0, top)}
    grains = {"h": (day, hour, weekday), "d": (day, 0, weekday), "m": (month, 0, 0),
              "p": (month, hour, weekday)}  # fmt: skip
    return [
        dict(zip(ROLLUP_DIMS, (grain, scope, d, h, w, u, t, conv.flow, s, dep), strict=True))
        for grain, (d, h, w) in grains.items()
        for scope, (u, s, dep, t) in scopes.items()
    ]


def matrix_keys(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[dict[str, Any]]:
    """The matrix rows (day and month x unit, department and bureau/ward pairs) of an
    internal call."""
    if conv.flow not in INTERNAL_FLOWS:
        return []
    day = conv.jst_start.date()
    cu, cs, cd, ct = unit_columns(conv.caller_unit_id, info)
    eu, es, ed, et = unit_columns(conv.callee_unit_id, info)
    rows = []
    for grain, bucket in (("d", day), ("m", day.replace(day=1))):
        rows.append((grain, "u", bucket, cu, cd, ct, eu, ed, et, conv.flow, cs, es))
        rows.append((grain, "d", bucket, 0, cd, ct, 0, ed, et, conv.flow, 0, 0))
        rows.append((grain, "t", bucket, 0, 0, ct, 0, 0, et, conv.flow, 0, 0))
    return [dict(zip(MATRIX_DIMS, row, strict=True)) for row in rows]


def matrix_measures(conv: Conversation) -> dict[str, float]:
    answered = conv.outcome is Outcome.ANSWERED
    return {"calls": 1, "answered": int(answered), "talk_sum": conv.talk_seconds or 0.0}


def _merge(
    target: dict[tuple[Any, ...], dict[str, Any]],
    keys: Iterable[dict[str, Any]],
    key_names: tuple[str, ...],
    values: Mapping[str, float],
    sign: int,
) -> None:
    for dims in keys:
        key = tuple(dims[name] for name in key_names)
        row = target.setdefault(key, {"dims": dims, "m": {}})
        kpis.add(row["m"], values, sign)


_SQL_CACHE: dict[tuple[Any, ...], str] = {}


_VENDOR_SQL: dict[str, str] = {}


def _vendor_sql(sql: str) -> str:
    """DB-API placeholders: ``?`` for sqlite3, ``%s`` for psycopg (the raw cursors below)."""
    found = _VENDOR_SQL.get(sql)
    if found is None:
        found = _VENDOR_SQL[sql] = sql.replace("%s", "?") if connection.vendor == "sqlite" else sql
    return found


def _upsert_sql(table: str, dims: tuple[str, ...], key: tuple[str, ...],
                measures: tuple[str, ...], n: int) -> str:  # fmt: skip
    """INSERT ... ON CONFLICT DO UPDATE adding the measures (SQLite >= 3.24, PostgreSQL)."""
    cache_key = (table, measures, n)
    sql = _SQL_CACHE.get(cache_key)
    if sql is None:
        columns = (*dims, *measures)
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in measures)
        sql = _vendor_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * n)} "  # noqa: S608
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )
        _SQL_CACHE[cache_key] = sql
    return sql


def _upsert(
    cursor: Any,
    table: str,
    *,
    dims: tuple[str, ...],
    key: tuple[str, ...],
    measures: tuple[str, ...],
    rows: Iterable[dict[str, Any]],
) -> None:
    """Add the rows' measures; only the columns some row changes are written."""
    rows = [r for r in rows if any(r["m"].values())]
    if not rows:
        return
    changed = set().union(*(r["m"] for r in rows))
    names = tuple(name for name in measures if name in changed)
    adapt_day = connection.ops.adapt_datefield_value
    params: list[Any] = []
    for row in rows:
        d, m = row["dims"], row["m"]
        params += [adapt_day(d[name]) if name == "day" else d[name] for name in dims]
        params += [m.get(name, 0) for name in names]
    cursor.execute(_upsert_sql(table, dims, key, names, len(rows)), params)


def _aware(value: Any) -> dt.datetime | None:
    """A datetime from a raw cursor (SQLite gives naive UTC or text) as aware UTC."""
    if value is None:
        return None
    at: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


_TIME_FIELDS = ("started_at", "ringing_at", "answered_at", "ended_at")


def _other_legs(cursor: Any, call: Call) -> list[dict[str, Any]]:
    sql = _vendor_sql(
        f"SELECT {', '.join(LEG_FIELDS)} FROM {Call._meta.db_table} "  # noqa: S608
        "WHERE conversation_id = %s AND id <> %s"
    )
    cursor.execute(sql, [call.conversation_id, call.pk])
    rows = [dict(zip(LEG_FIELDS, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:
        for name in _TIME_FIELDS:
            row[name] = _aware(row[name])
        row["transferred"] = bool(row["transferred"])
    return rows


def _is_repeat(cursor: Any, ops: Any, conv: Conversation) -> bool:
    """Another inbound conversation from the same caller in the `kpis.REPEAT_DAYS` before."""
    if conv.flow != Flow.INBOUND or not conv.caller_pseudonym:
        return False
    adapt = ops.adapt_datetimefield_value
    since = conv.started_at - dt.timedelta(days=kpis.REPEAT_DAYS)
    cursor.execute(
        _vendor_sql(
            f"SELECT started_at, conversation_id FROM {Call._meta.db_table} "  # noqa: S608
            "WHERE caller_pseudonym = %s AND direction = 'inbound' AND started_at >= %s "
            "AND started_at <= %s AND conversation_id <> %s"
        ),
        [conv.caller_pseudonym, adapt(since), adapt(conv.started_at), conv.conversation_id],
    )
    return any(
        _aware(started) < conv.started_at or cid < conv.conversation_id  # type: ignore[operator]
        for started, cid in cursor.fetchall()
    )


def _minutes(conv: Conversation | None) -> set[dt.datetime]:
    if conv is None or conv.ended_at is None:
        return set()
    first, last = kpis.minute_of(conv.started_at), kpis.minute_of(conv.ended_at)
    count = int((last - first).total_seconds() // 60) + 1
    return {first + dt.timedelta(minutes=i) for i in range(count)}


def _apply_load(cursor: Any, ops: Any, before: Conversation | None, after: Conversation) -> None:
    """Per-minute active conversations, and each touched hour's peak of them."""
    old, new = _minutes(before), _minutes(after)
    changes = [(m, 1) for m in new - old] + [(m, -1) for m in old - new]
    if not changes:
        return
    adapt = ops.adapt_datetimefield_value
    minutes, hours = LoadMinute._meta.db_table, LoadHour._meta.db_table
    params: list[Any] = []
    for minute, step in changes:
        params += [adapt(minute), step]
    values = ", ".join(["(%s, %s)"] * len(changes))
    cursor.execute(
        _vendor_sql(
            f"INSERT INTO {minutes} (minute, active) VALUES {values} "  # noqa: S608
            f"ON CONFLICT (minute) DO UPDATE SET active = {minutes}.active + excluded.active "
            "RETURNING minute, active"
        ),
        params,
    )
    peaks: dict[dt.datetime, int] = {}
    for minute, active in cursor.fetchall():
        hour = (_aware(minute) or dt.datetime.min).replace(minute=0)
        peaks[hour] = max(peaks.get(hour, 0), active)
    grows = all(step > 0 for _minute, step in changes)
    for hour, peak in peaks.items():
        if grows:  # a peak only grows when conversations are added
            sql = (
                f"INSERT INTO {hours} (hour, day, peak) VALUES (%s, %s, %s) "  # noqa: S608
                f"ON CONFLICT (hour) DO UPDATE SET peak = MAX({hours}.peak, excluded.peak)"
            )
            if ops.connection.vendor == "postgresql":
                sql = sql.replace("MAX(", "GREATEST(")
            args = [adapt(hour), ops.adapt_datefield_value(kpis.jst_date(hour)), peak]
        else:
            sql = (f"INSERT INTO {hours} (hour, day, peak) "  # noqa: S608
                   f"SELECT %s, %s, COALESCE(MAX(active), 0) FROM {minutes} "
                   "WHERE minute >= %s AND minute < %s "
                   "ON CONFLICT (hour) DO UPDATE SET peak = excluded.peak")  # fmt: skip
            args = [adapt(hour), ops.adapt_datefield_value(kpis.jst_date(hour)), adapt(hour),
                    adapt(hour + dt.timedelta(hours=1))]  # fmt: skip
        cursor.execute(_vendor_sql(sql), args)


def leg_values(call: Call) -> dict[str, Any]:
    """The values of a leg that `apply_call` reads (keep them to pass as ``replaced``)."""
    return {name: getattr(call, name) for name in LEG_FIELDS}


def apply_call(call: Call, *, replaced: Mapping[str, Any] | None = None) -> None:
    """Add a saved call leg to the rollups (see the module docstring).

    Other legs of the conversation found in the database are taken as already applied:
    save and apply legs one at a time. When the save replaced an earlier version of this
    leg that was applied, pass that version's `leg_values` as ``replaced``.
    """
    info = orgindex.current_index().info
    with transaction.atomic(savepoint=False):  # inside the ingest's transaction if any
        connection.ensure_connection()
        cursor = connection.connection.cursor()  # DB-API cursor: no per-query wrapping
        try:
            _apply(cursor, call, info, replaced)
        finally:
            cursor.close()


def _apply(
    cursor: Any, call: Call, info: Mapping[int, UnitInfo], replaced: Mapping[str, Any] | None
) -> None:
    ops = connection.ops  # looked up once: the connection proxy is slow to reach
    others = [leg_of(row, info) for row in _other_legs(cursor, call)]
    this = leg_of(leg_values(call), info)
    previous = [] if replaced is None else [leg_of(replaced, info)]
    before = conversation_of(others + previous) if others or previous else None
    after = conversation_of([*others, this])
    repeat_after = _is_repeat(cursor, ops, after)
    repeat_before = False
    if before is not None:
        same = (before.started_at, before.caller_pseudonym, before.flow) == (
            after.started_at, after.caller_pseudonym, after.flow)  # fmt: skip
        repeat_before = repeat_after if same else _is_repeat(cursor, ops, before)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    matrix: dict[tuple[Any, ...], dict[str, Any]] = {}
    if before is not None:
        _merge(rows, rollup_keys(before, info), ROLLUP_KEY,
               kpis.measures(before, repeat=repeat_before), -1)  # fmt: skip
        _merge(matrix, matrix_keys(before, info), MATRIX_KEY, matrix_measures(before), -1)
    _merge(rows, rollup_keys(after, info), ROLLUP_KEY, kpis.measures(after, repeat=repeat_after), 1)
    _merge(matrix, matrix_keys(after, info), MATRIX_KEY, matrix_measures(after), 1)
    _upsert(cursor, Rollup._meta.db_table, dims=ROLLUP_DIMS, key=ROLLUP_KEY,
            measures=kpis.MEASURES, rows=rows.values())  # fmt: skip
    _upsert(cursor, MatrixRollup._meta.db_table, dims=MATRIX_DIMS, key=MATRIX_KEY,
            measures=MATRIX_MEASURES, rows=matrix.values())  # fmt: skip
    _apply_load(cursor, ops, before, after)
