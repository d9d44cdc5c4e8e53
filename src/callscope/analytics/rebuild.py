"""Rebuilding the rollups from the calls in bulk, in SQL (`callscope rollup --rebuild`).

The same definitions as `conversations.conversation_of` and `kpis.measures`, written as SQL
for SQLite and PostgreSQL: legs -> one row per conversation (window functions pick the
primary and the deciding leg) in a temporary table, then one GROUP BY into hourly unit rows;
the other grains and the bureau/ward scope are sums of those rows. The tests check that the
result equals `rollups.apply_call` and direct aggregation in Python.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.db import connection, transaction

from callscope.analytics import kpis, orgindex
from callscope.analytics.conversations import JST
from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup, UnitMap
from callscope.store.models import Call

SQLITE = {
    "secs": "ROUND((julianday({b}) - julianday({a})) * 86400.0, 3)",
    "day": "date({x}, '+9 hours')",
    "hour": "CAST(strftime('%%H', {x}, '+9 hours') AS INTEGER)",
    "weekday": "((CAST(strftime('%%w', {x}, '+9 hours') AS INTEGER) + 6) %% 7)",
    "month": "date({x}, '+9 hours', 'start of month')",
    "minute": "strftime('%%Y-%%m-%%d %%H:%%M:00', {x})",
    "next_minute": "strftime('%%Y-%%m-%%d %%H:%%M:00', {x}, '+1 minute')",
    "hour_start": "strftime('%%Y-%%m-%%d %%H:00:00', {x})",
    "minute_series": (
        "WITH RECURSIVE series(minute) AS (SELECT MIN(minute) FROM ev UNION ALL "
        "SELECT strftime('%%Y-%%m-%%d %%H:%%M:00', minute, '+1 minute') FROM series "
        "WHERE minute < (SELECT MAX(minute) FROM ev)) "
    ),
}
POSTGRES = {
    "secs": "ROUND(EXTRACT(EPOCH FROM ({b} - {a}))::numeric, 3)::float8",
    "day": "(({x}) AT TIME ZONE 'Asia/Tokyo')::date",
    "hour": "EXTRACT(HOUR FROM ({x}) AT TIME ZONE 'Asia/Tokyo')::int",
    "weekday": "(EXTRACT(ISODOW FROM ({x}) AT TIME ZONE 'Asia/Tokyo')::int - 1)",
    "month": "date_trunc('month', ({x}) AT TIME ZONE 'Asia/Tokyo')::date",
    "minute": "date_trunc('minute', {x})",
    "next_minute": "(date_trunc('minute', {x}) + interval '1 minute')",
    "hour_start": "date_trunc('hour', {x})",
    "minute_series": (
        "WITH series(minute) AS (SELECT generate_series(MIN(minute), MAX(minute), "
        "interval '1 minute') FROM ev) "
    ),
}


def _sql() -> dict[str, str]:
    return POSTGRES if connection.vendor == "postgresql" else SQLITE


def _f(name: str, **args: str) -> str:
    return _sql()[name].format(**args)


def refresh_unit_map() -> None:
    """Copy the directory's unit tree into `UnitMap` for the SQL below."""
    orgindex.invalidate()
    info = orgindex.current_index().info
    UnitMap.objects.all().delete()
    UnitMap.objects.bulk_create(
        UnitMap(unit_id=u.id, section_id=u.section_id, department_id=u.department_id,
                top_id=u.top_id, is_ward=u.is_ward)
        for u in info.values()
    )  # fmt: skip


def _legs_sql(lookback: Any) -> tuple[str, list[Any]]:
    call = Call._meta.db_table
    umap = UnitMap._meta.db_table
    where, params = "", []
    if lookback is not None:
        where = f"WHERE c.conversation_id IN (SELECT conversation_id FROM {call} WHERE started_at >= %s)"  # noqa: E501, S608
        params.append(lookback)
    sql = f"""
    legs AS (
      SELECT c.call_id, c.conversation_id, c.started_at, c.ringing_at, c.answered_at,
        c.ended_at, c.result, c.ended_by, c.caller_unit_id, c.callee_unit_id,
        c.caller_pseudonym, c.hold_seconds, c.callee_class,
        CASE WHEN c.transferred THEN 1 ELSE 0 END AS transferred,
        CASE WHEN c.direction = 'internal' AND cu.is_ward <> eu.is_ward THEN 'ward_hq'
             ELSE c.direction END AS flow,
        CASE WHEN c.answered_at IS NOT NULL AND c.callee_class <> 'ivr' THEN 1 ELSE 0 END AS staff,
        CASE WHEN c.answered_at IS NOT NULL THEN 1 ELSE 0 END AS ans
      FROM {call} c
      LEFT JOIN {umap} cu ON cu.unit_id = c.caller_unit_id
      LEFT JOIN {umap} eu ON eu.unit_id = c.callee_unit_id
      {where}
    ),
    ranked AS (
      SELECT legs.*,
        ROW_NUMBER() OVER (PARTITION BY conversation_id ORDER BY started_at, call_id) AS prim,
        ROW_NUMBER() OVER (PARTITION BY conversation_id ORDER BY
          CASE WHEN staff = 1 THEN 0 WHEN callee_class <> 'ivr' THEN 1 WHEN ans = 1 THEN 2
               ELSE 3 END,
          answered_at, started_at, call_id) AS deci,
        COUNT(*) OVER (PARTITION BY conversation_id) AS nlegs,
        MAX(CASE WHEN ended_at IS NULL THEN 1 ELSE 0 END)
          OVER (PARTITION BY conversation_id) AS open_legs,
        MAX(ended_at) OVER (PARTITION BY conversation_id) AS last_end,
        MAX(transferred) OVER (PARTITION BY conversation_id) AS any_transfer
      FROM legs
    ),
    pair AS (
      SELECT p.conversation_id, p.started_at, p.flow, p.caller_unit_id AS p_caller,
        COALESCE(d.callee_unit_id, p.callee_unit_id) AS callee_unit,
        p.caller_pseudonym, p.result AS p_result, p.nlegs, p.any_transfer,
        CASE WHEN p.open_legs = 1 THEN NULL ELSE p.last_end END AS conv_end,
        d.staff AS d_staff, d.ans AS d_ans, d.answered_at AS d_answered,
        d.ringing_at AS d_ringing, d.ended_at AS d_ended, d.ended_by AS d_ended_by,
        d.hold_seconds AS d_hold, d.callee_class AS d_class, d.result AS d_result
      FROM ranked p JOIN ranked d ON d.conversation_id = p.conversation_id AND d.deci = 1
      WHERE p.prim = 1
    ),
    outcome AS (
      SELECT pair.*,
        CASE WHEN d_staff = 1 THEN 'answered'
             WHEN d_ans = 1 AND d_class = 'ivr' THEN
               CASE WHEN d_ended_by = 'caller' THEN 'abandoned'
                    WHEN d_ended IS NULL THEN 'in_progress'
                    ELSE 'ivr_only' END
             WHEN d_result = 'cancelled' THEN 'abandoned'
             WHEN d_result IN ('busy', 'no_answer', 'declined', 'failed', 'in_progress')
               THEN d_result
             WHEN d_result = 'answered' THEN 'in_progress'
             ELSE 'failed' END AS outcome
      FROM pair
    )"""  # noqa: S608
    return sql, params


def _conversations_sql(lookback: Any) -> tuple[str, list[Any]]:
    """CREATE TEMP TABLE conv: one row per conversation with its derived values."""
    legs, params = _legs_sql(lookback)
    secs = _sql()["secs"]
    sql = f"""
    CREATE TEMP TABLE analytics_conv AS WITH {legs}
    SELECT o.conversation_id, o.started_at, o.conv_end, o.flow, o.outcome, o.caller_pseudonym,
      o.p_caller AS caller_unit_id, o.callee_unit AS callee_unit_id,
      CASE WHEN o.flow = 'outbound' THEN o.p_caller ELSE o.callee_unit END AS unit_id,
      {_f("day", x="o.started_at")} AS day,
      {_f("hour", x="o.started_at")} AS hour,
      {_f("weekday", x="o.started_at")} AS weekday,
      {_f("month", x="o.started_at")} AS month,
      CASE WHEN o.outcome = 'abandoned' AND o.d_ans = 1 AND o.d_class = 'ivr' THEN 1 ELSE 0 END
        AS abandoned_ivr,
      o.nlegs AS legs, o.any_transfer AS transferred,
      CASE WHEN o.outcome = 'answered' THEN {secs.format(a="o.started_at", b="o.d_answered")}
           ELSE {secs.format(a="o.started_at", b="o.conv_end")} END AS wait,
      {secs.format(a="o.d_ringing", b="COALESCE(o.d_answered, o.d_ended)")} AS ring,
      CASE WHEN o.outcome = 'answered' THEN {secs.format(a="o.d_answered", b="o.conv_end")}
           END AS talk,
      CASE WHEN o.outcome = 'answered' THEN o.d_hold END AS hold,
      CASE WHEN o.outcome = 'answered' THEN o.d_ended_by END AS ended_by
    FROM outcome o
    """  # noqa: S608
    return sql, params


def _bucket_cases(
    column: str, edges: tuple[int, ...], names: tuple[str, ...], when: str
) -> list[tuple[str, str]]:
    parts = []
    for i, name in enumerate(names):
        lo = f" AND {column} >= {edges[i]}" if i else ""
        hi = f" AND {column} < {edges[i + 1]}" if i + 1 < len(edges) else ""
        cond = f"{when} AND {column} IS NOT NULL{lo}{hi}"
        parts.append((name, f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"))
    return parts


def measure_select() -> list[tuple[str, str]]:
    """(column, SQL expression) for every `kpis.MEASURES` column, over conversation rows c."""
    ans, aban = "c.outcome = 'answered'", "c.outcome = 'abandoned'"
    out = [("offered", "COUNT(*)")]
    out += [
        (name, f"SUM(CASE WHEN c.outcome = '{outcome}' THEN 1 ELSE 0 END)")
        for outcome, name in kpis.OUTCOME_MEASURES.items()
    ]
    out += [
        ("abandoned_ivr", "SUM(c.abandoned_ivr)"),
        ("legs", "SUM(c.legs)"),
        ("ring_n", "SUM(CASE WHEN c.ring IS NOT NULL THEN 1 ELSE 0 END)"),
        ("hold_n", "SUM(CASE WHEN c.hold IS NOT NULL AND c.hold <> 0 THEN 1 ELSE 0 END)"),
        ("by_caller", f"SUM(CASE WHEN {ans} AND c.ended_by = 'caller' THEN 1 ELSE 0 END)"),
        ("by_callee", f"SUM(CASE WHEN {ans} AND c.ended_by = 'callee' THEN 1 ELSE 0 END)"),
        ("by_other", f"SUM(CASE WHEN {ans} AND (c.ended_by IS NULL OR c.ended_by NOT IN "
                     "('caller', 'callee')) THEN 1 ELSE 0 END)"),
        ("transferred", "SUM(c.transferred)"),
        ("repeat", "SUM(c.is_repeat)"),
        *_bucket_cases("c.wait", kpis.WAIT_EDGES, kpis.WAIT_BUCKETS, ans),
        *_bucket_cases("c.wait", kpis.WAIT_EDGES, kpis.ABANDON_BUCKETS, aban),
        *_bucket_cases("c.talk", kpis.TALK_EDGES, kpis.TALK_BUCKETS, "1 = 1"),
        ("wait_sum", f"SUM(CASE WHEN {ans} AND c.wait IS NOT NULL THEN c.wait ELSE 0 END)"),
        ("abandon_wait_sum",
         f"SUM(CASE WHEN {aban} AND c.wait IS NOT NULL THEN c.wait ELSE 0 END)"),
        ("ring_sum", "SUM(COALESCE(c.ring, 0))"),
        ("talk_sum", "SUM(COALESCE(c.talk, 0))"),
        ("hold_sum", "SUM(COALESCE(c.hold, 0))"),
    ]  # fmt: skip
    assert sorted(name for name, _ in out) == sorted(kpis.MEASURES)
    return out


def _month(x: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('month', {x})::date"
    return f"date({x}, 'start of month')"


def _exec(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def _rollup_from_conversations(since: Any) -> None:
    table, umap = Rollup._meta.db_table, UnitMap._meta.db_table
    pairs = measure_select()
    names = ", ".join(name for name, _ in pairs)
    exprs = ",\n".join(expr for _, expr in pairs)
    where, params = ("WHERE c.started_at >= %s", [_at(since)]) if since is not None else ("", [])
    _exec(
        f"""INSERT INTO {table} (grain, scope, day, hour, weekday, unit_id, section_id,
          department_id, top_id, flow, {names})
        SELECT 'h', 'u', c.day, c.hour, c.weekday, COALESCE(c.unit_id, 0),
          COALESCE(m.section_id, 0), COALESCE(m.department_id, 0), COALESCE(m.top_id, 0),
          c.flow, {exprs}
        FROM analytics_conv2 c LEFT JOIN {umap} m ON m.unit_id = c.unit_id {where}
        GROUP BY c.day, c.hour, c.weekday, c.unit_id, m.section_id, m.department_id,
          m.top_id, c.flow""",  # noqa: S608
        params,
    )
    sums = ", ".join(f"SUM({name})" for name in kpis.MEASURES)
    measures = ", ".join(kpis.MEASURES)
    derived = [  # (grain, scope, from grain, from scope, day, hour, weekday, unit columns)
        ("d", "u", "h", "u", "day", "0", "weekday", "unit_id, section_id, department_id"),
        ("m", "u", "d", "u", _month("day"), "0", "0", "unit_id, section_id, department_id"),
        ("p", "u", "h", "u", _month("day"), "hour", "weekday",
         "unit_id, section_id, department_id"),
        *((g, "t", g, "u", "day", "hour", "weekday", "0, 0, 0") for g in "hdmp"),
    ]  # fmt: skip
    for grain, scope, src, src_scope, day, hour, weekday, units in derived:
        keys = ", ".join(k for k in (day, hour, weekday, units) if not k.startswith("0"))
        _exec(
            f"""INSERT INTO {table} (grain, scope, day, hour, weekday, unit_id, section_id,
              department_id, top_id, flow, {measures})
            SELECT '{grain}', '{scope}', {day}, {hour}, {weekday}, {units}, top_id, flow, {sums}
            FROM {table} WHERE grain = '{src}' AND scope = '{src_scope}' AND day >= %s
            GROUP BY {keys}, top_id, flow""",  # noqa: S608
            [connection.ops.adapt_datefield_value(_first_day(since))],
        )


def _first_day(since: dt.datetime | None) -> dt.date:
    return dt.date(1970, 1, 1) if since is None else since.astimezone(JST).date()


def _at(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _matrix_from_conversations(since: Any) -> None:
    table, umap = MatrixRollup._meta.db_table, UnitMap._meta.db_table
    where, params = ("AND c.started_at >= %s", [_at(since)]) if since is not None else ("", [])
    cols = ("caller_unit_id, caller_section_id, caller_department_id, caller_top_id, "
            "callee_unit_id, callee_section_id, callee_department_id, callee_top_id")  # fmt: skip
    _exec(
        f"""INSERT INTO {table} (grain, scope, day, {cols}, flow, calls, answered, talk_sum)
        SELECT 'd', 'u', c.day, COALESCE(c.caller_unit_id, 0), COALESCE(a.section_id, 0),
          COALESCE(a.department_id, 0), COALESCE(a.top_id, 0), COALESCE(c.callee_unit_id, 0),
          COALESCE(b.section_id, 0), COALESCE(b.department_id, 0), COALESCE(b.top_id, 0),
          c.flow, COUNT(*), SUM(CASE WHEN c.outcome = 'answered' THEN 1 ELSE 0 END),
          SUM(COALESCE(c.talk, 0))
        FROM analytics_conv2 c
        LEFT JOIN {umap} a ON a.unit_id = c.caller_unit_id
        LEFT JOIN {umap} b ON b.unit_id = c.callee_unit_id
        WHERE c.flow IN ('internal', 'ward_hq') {where}
        GROUP BY c.day, c.caller_unit_id, a.section_id, a.department_id, a.top_id,
          c.callee_unit_id, b.section_id, b.department_id, b.top_id, c.flow""",  # noqa: S608
        params,
    )
    tops = "0, 0, 0, caller_top_id, 0, 0, 0, callee_top_id"
    departments = (
        "0, 0, caller_department_id, caller_top_id, 0, 0, callee_department_id, callee_top_id"
    )
    for grain, scope, src, day, units in (
        ("m", "u", "d", _month("day"), cols),
        ("d", "d", "d", "day", departments),
        ("m", "d", "m", "day", departments),
        ("d", "t", "d", "day", tops),
        ("m", "t", "m", "day", tops),
    ):
        keys = ", ".join(k for k in (day, *units.split(", ")) if k != "0")
        _exec(
            f"""INSERT INTO {table} (grain, scope, day, {cols}, flow, calls, answered, talk_sum)
            SELECT '{grain}', '{scope}', {day}, {units}, flow, SUM(calls), SUM(answered),
              SUM(talk_sum)
            FROM {table} WHERE grain = '{src}' AND scope = 'u' AND day >= %s
            GROUP BY {keys}, flow""",  # noqa: S608
            [connection.ops.adapt_datefield_value(_first_day(since))],
        )


def _load_from_conversations(since: Any) -> None:
    minutes, hours = LoadMinute._meta.db_table, LoadHour._meta.db_table
    where, params = ("AND started_at >= %s", [_at(since)] * 2) if since is not None else ("", [])
    series = _sql()["minute_series"].removeprefix("WITH RECURSIVE ").removeprefix("WITH ")
    _exec(
        f"""INSERT INTO {minutes} (minute, active)
        WITH RECURSIVE ev AS (
          SELECT minute, SUM(step) AS step FROM (
            SELECT {_f("minute", x="started_at")} AS minute, 1 AS step FROM analytics_conv2
              WHERE conv_end IS NOT NULL {where}
            UNION ALL
            SELECT {_f("next_minute", x="conv_end")} AS minute, -1 AS step FROM analytics_conv2
              WHERE conv_end IS NOT NULL {where}
          ) steps GROUP BY minute
        ), {series}
        SELECT minute, active FROM (
          SELECT s.minute, SUM(COALESCE(e.step, 0)) OVER (ORDER BY s.minute
            ROWS UNBOUNDED PRECEDING) AS active
          FROM series s LEFT JOIN ev e ON e.minute = s.minute
        ) running WHERE active > 0""",  # noqa: S608
        params,
    )
    hour = _f("hour_start", x="minute")
    _exec(
        f"""INSERT INTO {hours} (hour, day, peak)
        SELECT {hour}, {_f("day", x=hour)}, MAX(active) FROM {minutes}
        WHERE minute >= %s GROUP BY {hour}""",  # noqa: S608
        [_at(since if since is not None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC))],
    )


def _delete_from(since: Any) -> None:
    day = _first_day(since)
    Rollup.objects.filter(day__gte=day).delete()
    MatrixRollup.objects.filter(day__gte=day).delete()
    if since is None:
        LoadMinute.objects.all().delete()
        LoadHour.objects.all().delete()
    else:
        LoadMinute.objects.filter(minute__gte=since).delete()
        LoadHour.objects.filter(hour__gte=since).delete()


def rebuild(since: dt.date | None = None) -> dict[str, float]:
    """Recompute every rollup (from the 1st of the month of ``since``, JST). Returns timings."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    start = lookback = None
    if since is not None:
        first = since.replace(day=1)
        start = dt.datetime.combine(first, dt.time(), tzinfo=JST).astimezone(dt.UTC)
        lookback = start - dt.timedelta(days=kpis.REPEAT_DAYS + 1)
    ops = connection.ops
    with transaction.atomic():
        refresh_unit_map()
        _delete_from(start)
        _exec("DROP TABLE IF EXISTS analytics_conv")
        _exec("DROP TABLE IF EXISTS analytics_conv2")
        sql, params = _conversations_sql(
            None if lookback is None else ops.adapt_datetimefield_value(lookback)
        )
        _exec(sql, params)
        secs = _f("secs", a="c.prev", b="c.started_at")
        _exec(
            f"""CREATE TEMP TABLE analytics_conv2 AS
            SELECT c.*, CASE WHEN c.flow = 'inbound' AND c.caller_pseudonym <> ''
              AND {secs} <= {kpis.REPEAT_DAYS * 86400} THEN 1 ELSE 0 END AS is_repeat
            FROM (SELECT analytics_conv.*, LAG(started_at) OVER (PARTITION BY caller_pseudonym,
              flow ORDER BY started_at, conversation_id) AS prev FROM analytics_conv) c"""  # noqa: S608
        )
        timings["conversations"] = time.perf_counter() - clock
        _rollup_from_conversations(start)
        timings["rollups"] = time.perf_counter() - clock
        _matrix_from_conversations(start)
        timings["matrix"] = time.perf_counter() - clock
        _load_from_conversations(start)
        timings["load"] = time.perf_counter() - clock
        _exec("DROP TABLE IF EXISTS analytics_conv2")
        _exec("DROP TABLE IF EXISTS analytics_conv")
    for model in (Rollup, MatrixRollup, LoadHour):  # fresh statistics for the planner
        _exec(f"ANALYZE {model._meta.db_table}")
    timings["analyze"] = time.perf_counter() - clock
    return timings
