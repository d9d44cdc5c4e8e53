"""Updating the rollups as each call leg ends: `apply_call(call)`, `apply_calls(legs)`.

A leg can change its conversation (a second desk of a ringing group, the staff leg after an
IVR), so `apply_call` folds the conversation twice, without and with the new leg, and adds
the difference of their `kpis.measures` to the rollup rows: the rollups always hold the
measures of whole conversations, as if they had been aggregated at once (`rebuild` does
exactly that in SQL, and the tests check both agree).

Call it once per saved leg, right after saving it (legs one at a time, or the legs of
distinct conversations together with `apply_calls`); a leg saved again passes its
previously applied values as ``replaced`` (or run `callscope rollup --rebuild`).
Cost per `apply_calls`, however many legs: one query for the other legs of their
conversations, one for repeat callers (inbound only), then the changes of all legs summed
per row and written once: on SQLite one upsert for the rollup rows, one for the matrix
(internal calls) and two for the load minutes and hours; on PostgreSQL all of them in one
statement (one round trip). All on a DB-API cursor with a few fixed SQL texts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
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


def rollup_dims(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[tuple[Any, ...]]:
    """The eight rollup rows (4 grains x 2 scopes) a conversation is counted in, as tuples
    in `ROLLUP_DIMS` order (the key first)."""
    start = conv.jst_start
    day, hour = start.date(), start.hour
    weekday, month = day.weekday(), day.replace(day=1)
    unit, section, department, top = unit_columns(conv.unit_id, info)
    flow = conv.flow
    return [
        ("h", "u", day, hour, weekday, unit, top, flow, section, department),
        ("h", "t", day, hour, weekday, 0, top, flow, 0, 0),
        ("d", "u", day, 0, weekday, unit, top, flow, section, department),
        ("d", "t", day, 0, weekday, 0, top, flow, 0, 0),
        ("m", "u", month, 0, 0, unit, top, flow, section, department),
        ("m", "t", month, 0, 0, 0, top, flow, 0, 0),
        ("p", "u", month, hour, weekday, unit, top, flow, section, department),
        ("p", "t", month, hour, weekday, 0, top, flow, 0, 0),
    ]


def rollup_keys(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[dict[str, Any]]:
    """`rollup_dims` as dicts by column name."""
    return [dict(zip(ROLLUP_DIMS, dims, strict=True)) for dims in rollup_dims(conv, info)]


def matrix_dims(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[tuple[Any, ...]]:
    """The matrix rows (day and month x unit, department and bureau/ward pairs) of an
    internal call, as tuples in `MATRIX_DIMS` order (the key first)."""
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
    return rows


def matrix_keys(conv: Conversation, info: Mapping[int, UnitInfo]) -> list[dict[str, Any]]:
    """`matrix_dims` as dicts by column name."""
    return [dict(zip(MATRIX_DIMS, dims, strict=True)) for dims in matrix_dims(conv, info)]


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


#: (dims, measures to add): one rollup or matrix row's change
Change = tuple[tuple[Any, ...], Mapping[str, float]]


def _changes(
    before: list[tuple[Any, ...]],
    before_m: Mapping[str, float],
    after: list[tuple[Any, ...]],
    after_m: Mapping[str, float],
    width: int,
) -> list[Change]:
    """The rows to change: ``after`` plus, ``before`` minus (``width`` key columns lead the
    dims). When both fall in the same buckets (the usual second leg: same start and unit),
    one difference serves every row."""
    if not before:
        return [(dims, after_m) for dims in after]
    if [dims[:width] for dims in before] == [dims[:width] for dims in after]:
        diff = kpis.add(dict(after_m), before_m, -1)
        return [(dims, diff) for dims in after]
    merged: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, float]]] = {}
    for rows, m, sign in ((before, before_m, -1), (after, after_m, 1)):
        for dims in rows:
            kpis.add(merged.setdefault(dims[:width], (dims, {}))[1], m, sign)
    return list(merged.values())


#: summed changes by row key: (the row's dims, measures to add)
Totals = dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, float]]]


def _sum(totals: Totals, changes: list[Change], width: int) -> None:
    """Add changes to the totals of their rows (``width`` key columns lead the dims)."""
    for dims, m in changes:
        key = dims[:width]
        found = totals.get(key)
        if found is None:
            totals[key] = (dims, dict(m))
        else:
            kpis.add(found[1], m)


_VENDOR_SQL: dict[str, str] = {}


def _vendor_sql(sql: str) -> str:
    """DB-API placeholders: ``?`` for sqlite3, ``%s`` for psycopg (the raw cursors below)."""
    found = _VENDOR_SQL.get(sql)
    if found is None:
        found = _VENDOR_SQL[sql] = sql.replace("%s", "?") if connection.vendor == "sqlite" else sql
    return found


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


_UPSERTS: dict[str, str] = {}


def _upsert(
    cursor: Any,
    table: str,
    *,
    dims: tuple[str, ...],
    key: tuple[str, ...],
    measures: tuple[str, ...],
    changes: list[Change],
) -> None:
    """SQLite: add the changes' measures to their rows (INSERT ... ON CONFLICT DO UPDATE),
    leaving out rows that change nothing; one statement run for each row (``executemany``:
    one SQL text, compiled once), every measure column written."""
    rows = [(d, m) for d, m in changes if any(m.values())]
    if not rows:
        return
    sql = _UPSERTS.get(table)
    if sql is None:
        columns = (*dims, *measures)
        updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in measures)
        marks = ", ".join(["?"] * len(columns))
        sql = _UPSERTS[table] = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )
    day = dims.index("day")
    zero = dict.fromkeys(measures, 0)
    params = []
    for d, m in rows:
        full = {**zero, **m}  # every measure, in column order (m names only measures)
        if len(full) != len(measures):
            raise ValueError(f"not a measure of {table}: {sorted(full.keys() - zero.keys())}")
        values = [*d, *full.values()]
        values[day] = d[day].isoformat()  # Django's SQLite storage of a date: ISO text
        params.append(values)
    cursor.executemany(sql, params)


def _db_time(at: dt.datetime, sqlite: bool) -> Any:
    """An aware datetime as Django stores it: naive UTC ISO text on SQLite (what its
    ``adapt_datetimefield_value`` gives, without its per-call settings lookups)."""
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ") if sqlite else at


def _aware(value: Any) -> dt.datetime | None:
    """A datetime from a raw cursor (SQLite gives naive UTC or text) as aware UTC."""
    if value is None:
        return None
    at: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


_TIME_FIELDS = ("started_at", "ringing_at", "answered_at", "ended_at")


def _other_legs(
    cursor: Any, calls: Sequence[Call], sqlite: bool
) -> dict[str, list[dict[str, Any]]]:
    """The other legs in the database of each call's conversation, by conversation (one
    query: the calls' conversations, without the calls themselves)."""
    table, n = Call._meta.db_table, len(calls)
    where = (
        f"conversation_id IN ({_marks(n)}) AND id NOT IN ({_marks(n)})"
        if sqlite
        else "conversation_id = ANY(%s) AND NOT id = ANY(%s)"
    )
    conversations = [call.conversation_id for call in calls]
    ids = [call.pk for call in calls]
    cursor.execute(
        _vendor_sql(f"SELECT {', '.join(LEG_FIELDS)} FROM {table} WHERE {where}"),  # noqa: S608
        [*conversations, *ids] if sqlite else [conversations, ids],
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for values in cursor.fetchall():
        row = dict(zip(LEG_FIELDS, values, strict=True))
        for name in _TIME_FIELDS:
            row[name] = _aware(row[name])
        row["transferred"] = bool(row["transferred"])
        found.setdefault(row["conversation_id"], []).append(row)
    return found


def _repeats(cursor: Any, convs: Sequence[Conversation], sqlite: bool) -> list[bool]:
    """For each conversation: another inbound conversation from the same caller in the
    `kpis.REPEAT_DAYS` before (one query for all: their callers' inbound calls over the
    span of their starts, sifted here by each conversation's own window)."""
    asked = [c for c in convs if c.flow == Flow.INBOUND and c.caller_pseudonym]
    if not asked:
        return [False] * len(convs)
    window = dt.timedelta(days=kpis.REPEAT_DAYS)
    callers = sorted({c.caller_pseudonym for c in asked})
    who = (
        f"caller_pseudonym IN ({_marks(len(callers))})" if sqlite else "caller_pseudonym = ANY(%s)"
    )
    since = min(c.started_at for c in asked) - window
    until = max(c.started_at for c in asked)
    cursor.execute(
        _vendor_sql(
            f"SELECT caller_pseudonym, started_at, conversation_id FROM {Call._meta.db_table} "  # noqa: S608
            f"WHERE {who} AND direction = 'inbound' AND started_at >= %s AND started_at <= %s"
        ),
        [*(callers if sqlite else [callers]), _db_time(since, sqlite), _db_time(until, sqlite)],
    )
    calls: dict[str, list[tuple[dt.datetime, str]]] = {}
    for caller, started, cid in cursor.fetchall():
        calls.setdefault(caller, []).append((_aware(started), cid))  # type: ignore[arg-type]
    return [_is_repeat(conv, calls.get(conv.caller_pseudonym, ()), window) for conv in convs]


def _is_repeat(
    conv: Conversation, calls: Iterable[tuple[dt.datetime, str]], window: dt.timedelta
) -> bool:
    """Another of the caller's inbound ``calls`` (start, conversation) in the window
    before this conversation's start (or at the same start, with a smaller id)."""
    if conv.flow != Flow.INBOUND or not conv.caller_pseudonym:
        return False
    start, cid = conv.started_at, conv.conversation_id
    return any(
        start - window <= at <= start and other != cid and (at < start or other < cid)
        for at, other in calls
    )


def _minutes(conv: Conversation | None) -> set[dt.datetime]:
    if conv is None or conv.ended_at is None:
        return set()
    first, last = kpis.minute_of(conv.started_at), kpis.minute_of(conv.ended_at)
    count = int((last - first).total_seconds() // 60) + 1
    return {first + dt.timedelta(minutes=i) for i in range(count)}


def _apply_load(cursor: Any, changes: list[tuple[Any, int]], sqlite: bool) -> None:
    """Per-minute active conversations, and each touched hour's peak of them (SQLite)."""
    if not changes:
        return
    minutes, hours = LoadMinute._meta.db_table, LoadHour._meta.db_table
    params: list[Any] = []
    for minute, step in changes:
        params += [_db_time(minute, sqlite), step]
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
    if all(step > 0 for _minute, step in changes):
        # a peak only grows when conversations are added: one upsert for every hour
        params = []
        for hour, peak in peaks.items():
            params += [_db_time(hour, sqlite), _date(kpis.jst_date(hour), sqlite), peak]
        values = ", ".join(["(%s, %s, %s)"] * len(peaks))
        cursor.execute(
            _vendor_sql(
                f"INSERT INTO {hours} (hour, day, peak) VALUES {values} "  # noqa: S608
                f"ON CONFLICT (hour) DO UPDATE SET "
                f"peak = MAX({hours}.peak, excluded.peak)"
            ),
            params,
        )
        return
    _recompute_peaks(cursor, peaks, sqlite)


def _recompute_peaks(cursor: Any, peaks: Iterable[dt.datetime], sqlite: bool) -> None:
    """A conversation shrank (a leg saved again): the touched hours' peaks read again."""
    minutes, hours = LoadMinute._meta.db_table, LoadHour._meta.db_table
    for hour in peaks:
        at = _db_time(hour, sqlite)
        cursor.execute(
            _vendor_sql(
                f"INSERT INTO {hours} (hour, day, peak) "  # noqa: S608
                f"SELECT %s, %s, COALESCE(MAX(active), 0) FROM {minutes} "
                "WHERE minute >= %s AND minute < %s "
                "ON CONFLICT (hour) DO UPDATE SET peak = excluded.peak"
            ),
            [at, _date(kpis.jst_date(hour), sqlite), at,
             _db_time(hour + dt.timedelta(hours=1), sqlite)],
        )  # fmt: skip


def _load_changes(before: Conversation | None, after: Conversation) -> list[tuple[Any, int]]:
    """(UTC minute, +1 or -1) for the minutes the conversation now covers or no longer does."""
    old, new = _minutes(before), _minutes(after)
    return [(m, 1) for m in new - old] + [(m, -1) for m in old - new]


_PG_WRITES: dict[tuple[bool, bool, int], str] = {}


def _pg_write_sql(rollup: bool, matrix: bool, load: int) -> str:
    """One PostgreSQL statement for every write of `apply_call`: data-modifying CTEs run
    once each whether read or not (PostgreSQL docs, 7.8.4), so the rollup rows, the matrix
    rows, the load minutes and the hours' peaks cost one round trip. Rows come as one JSON
    parameter per table: psycopg parses a statement with more than 50 parameters again on
    every call (~4 ms for an 8-row upsert of 73 columns). ``load``: 0 none, 1 minutes added
    (peaks updated here), -1 minutes removed (peaks read again after this statement)."""
    key = (rollup, matrix, load)
    sql = _PG_WRITES.get(key)
    if sql is not None:
        return sql
    parts = []
    for wanted, name, model, dims, measures, conflict in (
        (rollup, "r", Rollup, ROLLUP_DIMS, kpis.MEASURES, ROLLUP_KEY),
        (matrix, "x", MatrixRollup, MATRIX_DIMS, MATRIX_MEASURES, MATRIX_KEY),
    ):
        if wanted:
            table, columns = model._meta.db_table, ", ".join((*dims, *measures))
            updates = ", ".join(f"{m} = t.{m} + excluded.{m}" for m in measures)
            parts.append(
                f"{name} AS (INSERT INTO {table} AS t ({columns}) SELECT {columns} "  # noqa: S608
                f"FROM json_populate_recordset(NULL::{table}, %s::json) "
                f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates})"
            )
    minutes, hours = LoadMinute._meta.db_table, LoadHour._meta.db_table
    final = "SELECT NULL, NULL"
    if load:
        parts.append(
            f"m AS (INSERT INTO {minutes} AS t (minute, active) "  # noqa: S608
            "SELECT * FROM unnest(%s::timestamptz[], %s::int[]) ON CONFLICT (minute) "
            "DO UPDATE SET active = t.active + excluded.active RETURNING minute, active)"
        )
        final = "SELECT minute, active FROM m"
    if load > 0:  # a peak only grows when conversations are added
        final = (
            f"INSERT INTO {hours} AS t (hour, day, peak) "  # noqa: S608
            "SELECT date_trunc('hour', minute), "
            "(date_trunc('hour', minute) AT TIME ZONE 'Asia/Tokyo')::date, MAX(active) "
            "FROM m GROUP BY 1 ON CONFLICT (hour) DO UPDATE SET "
            "peak = GREATEST(t.peak, excluded.peak)"
        )
    sql = _PG_WRITES[key] = ("WITH " + ", ".join(parts) + " " if parts else "") + final
    return sql


def _write_postgres(
    cursor: Any, rows: list[Change], matrix: list[Change], changes: list[tuple[Any, int]]
) -> None:
    """The rollup, matrix and load changes in one statement (`_pg_write_sql`)."""
    params: list[Any] = []
    found = []
    for part, dims, measures in ((rows, ROLLUP_DIMS, kpis.MEASURES),
                                 (matrix, MATRIX_DIMS, MATRIX_MEASURES)):  # fmt: skip
        records = [
            {**dict(zip(dims, d, strict=True)), **{n: m.get(n, 0) for n in measures}}
            for d, m in part
            if any(m.values())
        ]
        found.append(bool(records))
        if records:
            params.append(json.dumps(records, default=str))
    grows = all(step > 0 for _minute, step in changes)
    load = 0 if not changes else 1 if grows else -1
    if changes:
        params += [[minute for minute, _ in changes], [step for _, step in changes]]
    if not any(found) and not load:
        return
    cursor.execute(_pg_write_sql(found[0], found[1], load), params)
    if load < 0:
        hours = {(_aware(minute) or dt.datetime.min).replace(minute=0)
                 for minute, _active in cursor.fetchall()}  # fmt: skip
        _recompute_peaks(cursor, sorted(hours), sqlite=False)


def _date(day: dt.date, sqlite: bool) -> Any:
    return day.isoformat() if sqlite else day


def leg_values(call: Call) -> dict[str, Any]:
    """The values of a leg that `apply_call` reads (keep them to pass as ``replaced``)."""
    return {name: getattr(call, name) for name in LEG_FIELDS}


def apply_call(call: Call, *, replaced: Mapping[str, Any] | None = None) -> None:
    """Add a saved call leg to the rollups (see the module docstring).

    Other legs of the conversation found in the database are taken as already applied:
    save and apply legs one at a time. When the save replaced an earlier version of this
    leg that was applied, pass that version's `leg_values` as ``replaced``.
    """
    apply_calls([(call, replaced)])


def apply_calls(legs: Sequence[tuple[Call, Mapping[str, Any] | None]]) -> None:
    """`apply_call` for each ``(call, replaced)``, legs of distinct conversations, in one
    transaction block with one cursor (a recorder applies the calls of a read together).

    What a leg adds depends only on the calls table (the other legs of its conversation,
    the caller's earlier calls), never on the rollups: so the reads for all legs are made
    first, one query each, and the changes of all legs are summed per rollup, matrix and
    load row and written once, which leaves the rows that applying leg after leg leaves."""
    if not legs:
        return
    if len({call.conversation_id for call, _ in legs}) != len(legs):
        raise ValueError("legs of one conversation are applied one at a time")
    info = orgindex.current_index().info
    with transaction.atomic(savepoint=False):  # inside the ingest's transaction if any
        connection.ensure_connection()
        sqlite = connection.vendor == "sqlite"  # looked up once: the proxy is slow to reach
        cursor = _raw_cursor(connection.connection, sqlite)
        try:
            _apply(cursor, legs, info, sqlite)
        finally:
            cursor.close()


def _raw_cursor(raw: Any, sqlite: bool) -> Any:
    """A DB-API cursor (no per-query wrapping). On PostgreSQL a server-side binding cursor,
    not Django's client-side one: the same few statement texts come back with every call,
    and psycopg prepares a statement once it has run 5 times (parse and plan saved)."""
    if sqlite:
        return raw.cursor()
    import psycopg  # noqa: PLC0415  (PostgreSQL only)

    return psycopg.Cursor(raw)


def _apply(
    cursor: Any,
    legs: Sequence[tuple[Call, Mapping[str, Any] | None]],
    info: Mapping[int, UnitInfo],
    sqlite: bool,
) -> None:
    found = _other_legs(cursor, [call for call, _ in legs], sqlite)
    folds: list[tuple[Conversation | None, Conversation]] = []
    for call, replaced in legs:
        others = [leg_of(row, info) for row in found.get(call.conversation_id, ())]
        previous = [] if replaced is None else [leg_of(replaced, info)]
        before = conversation_of(others + previous) if others or previous else None
        folds.append((before, conversation_of([*others, leg_of(leg_values(call), info)])))
    # the earlier version of a conversation is asked about only if its caller or start differ
    again = [b for b, a in folds if b is not None and not _same_caller(b, a)]
    repeats = _repeats(cursor, [a for _b, a in folds] + again, sqlite)
    repeats_before = iter(repeats[len(folds) :])
    rows: Totals = {}
    matrix: Totals = {}
    load: dict[dt.datetime, int] = {}
    # new conversations (the usual case) summed per bucket first: the rows of a bucket are
    # worked out and added to once, however many of the read's calls fall in it
    fresh: dict[tuple[Any, ...], tuple[Conversation, dict[str, float], dict[str, float]]] = {}
    for (before, after), repeat in zip(folds, repeats[: len(folds)], strict=True):
        new_m = kpis.measures(after, repeat=repeat)
        for minute, step in _load_changes(before, after):
            load[minute] = load.get(minute, 0) + step
        if before is None:
            _add_fresh(fresh, after, new_m)
            continue
        repeat_before = repeat if _same_caller(before, after) else next(repeats_before)
        width = len(ROLLUP_KEY)
        _sum(rows, _changes(rollup_dims(before, info), kpis.measures(before, repeat=repeat_before),
                            rollup_dims(after, info), new_m, width), width)  # fmt: skip
        width = len(MATRIX_KEY)
        _sum(matrix, _changes(matrix_dims(before, info), matrix_measures(before),
                              matrix_dims(after, info), matrix_measures(after), width),
             width)  # fmt: skip
    for conv, m, matrix_m in fresh.values():
        _sum(rows, [(dims, m) for dims in rollup_dims(conv, info)], len(ROLLUP_KEY))
        _sum(matrix, [(dims, matrix_m) for dims in matrix_dims(conv, info)], len(MATRIX_KEY))
    _write(cursor, list(rows.values()), list(matrix.values()),
           [(minute, step) for minute, step in load.items() if step], sqlite)  # fmt: skip


def _add_fresh(
    fresh: dict[tuple[Any, ...], tuple[Conversation, dict[str, float], dict[str, float]]],
    conv: Conversation,
    m: dict[str, float],
) -> None:
    """Sum a new conversation's measures into its bucket: what `rollup_dims` and
    `matrix_dims` read of a conversation (JST day and hour, units, flow)."""
    start = conv.jst_start
    bucket = (start.date(), start.hour, conv.unit_id, conv.caller_unit_id,
              conv.callee_unit_id, conv.flow)  # fmt: skip
    internal = conv.flow in INTERNAL_FLOWS
    found = fresh.get(bucket)
    if found is None:
        fresh[bucket] = (conv, dict(m), matrix_measures(conv) if internal else {})
        return
    kpis.add(found[1], m)
    if internal:
        kpis.add(found[2], matrix_measures(conv))


def _same_caller(before: Conversation, after: Conversation) -> bool:
    """Does the repeat-caller check give the same answer for both versions?"""
    return (before.started_at, before.caller_pseudonym, before.flow) == (
        after.started_at, after.caller_pseudonym, after.flow)  # fmt: skip


def _write(cursor: Any, rows: list[Change], matrix: list[Change],
           load: list[tuple[Any, int]], sqlite: bool) -> None:  # fmt: skip
    if not sqlite:
        _write_postgres(cursor, rows, matrix, load)
        return
    _upsert(cursor, Rollup._meta.db_table, dims=ROLLUP_DIMS, key=ROLLUP_KEY,
            measures=kpis.MEASURES, changes=rows)  # fmt: skip
    _upsert(cursor, MatrixRollup._meta.db_table, dims=MATRIX_DIMS, key=MATRIX_KEY,
            measures=MATRIX_MEASURES, changes=matrix)  # fmt: skip
    _apply_load(cursor, load, sqlite)
