"""The SQL of `rollups.apply_calls`: the calls it reads, the rollup rows it writes.

This module owns the column layouts of the rows written (`ROLLUP_DIMS`, `MATRIX_DIMS`,
`LEG_FIELDS`), the two reads (`other_legs`: the other legs of the calls' conversations;
`repeats`: the callers' earlier inbound calls) and the writes of the summed changes
(`write`): on SQLite one ``executemany`` upsert for the rollup rows, one for the matrix and
two statements for the load minutes and hours; on PostgreSQL all of them in one statement
(`_pg_write_sql`). All on a raw DB-API cursor (`raw_cursor`) with a few fixed SQL texts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection

from callscope.analytics import kpis
from callscope.analytics.conversations import Conversation, Flow
from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup
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


#: (dims, measures to add): one rollup or matrix row's change
Change = tuple[tuple[Any, ...], Mapping[str, float]]


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


def other_legs(cursor: Any, calls: Sequence[Call], sqlite: bool) -> dict[str, list[dict[str, Any]]]:
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


def repeats(cursor: Any, convs: Sequence[Conversation], sqlite: bool) -> list[bool]:
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


def raw_cursor(raw: Any, sqlite: bool) -> Any:
    """A DB-API cursor (no per-query wrapping). On PostgreSQL a server-side binding cursor,
    not Django's client-side one: the same few statement texts come back with every call,
    and psycopg prepares a statement once it has run 5 times (parse and plan saved)."""
    if sqlite:
        return raw.cursor()
    import psycopg  # noqa: PLC0415  (PostgreSQL only)

    return psycopg.Cursor(raw)


def write(cursor: Any, rows: list[Change], matrix: list[Change],
          load: list[tuple[Any, int]], sqlite: bool) -> None:  # fmt: skip
    """Add the summed changes of the rollup and matrix rows, and the load minutes' steps
    (UTC minute, +/- conversations), to their rows."""
    if not sqlite:
        _write_postgres(cursor, rows, matrix, load)
        return
    _upsert(cursor, Rollup._meta.db_table, dims=ROLLUP_DIMS, key=ROLLUP_KEY,
            measures=kpis.MEASURES, changes=rows)  # fmt: skip
    _upsert(cursor, MatrixRollup._meta.db_table, dims=MATRIX_DIMS, key=MATRIX_KEY,
            measures=MATRIX_MEASURES, changes=matrix)  # fmt: skip
    _apply_load(cursor, load, sqlite)
