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

This module owns what a leg changes (the conversation folded before and after, the rows
it is counted in, the differences summed per row); the SQL that reads the calls and writes
the rows is in `rollup_sql`, which also owns the rows' column layouts (`ROLLUP_KEY`,
`MATRIX_KEY`, `LEG_FIELDS` and the like, importable from here too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection, transaction

from callscope.analytics import kpis, orgindex, rollup_sql
from callscope.analytics.conversations import (
    INTERNAL_FLOWS,
    Conversation,
    Flow,
    Leg,
    Outcome,
    conversation_of,
)
from callscope.analytics.orgindex import UnitInfo
from callscope.analytics.rollup_sql import (
    LEG_FIELDS,
    MATRIX_DIMS,
    MATRIX_KEY,
    MATRIX_MEASURES,
    ROLLUP_DIMS,
    ROLLUP_KEY,
    Change,
)
from callscope.store.models import Call

__all__ = [
    "LEG_FIELDS",
    "MATRIX_DIMS",
    "MATRIX_KEY",
    "MATRIX_MEASURES",
    "ROLLUP_DIMS",
    "ROLLUP_KEY",
    "Change",
    "apply_call",
    "apply_calls",
    "leg_of",
    "leg_values",
    "matrix_dims",
    "matrix_keys",
    "matrix_measures",
    "refine_flow",
    "rollup_dims",
    "rollup_keys",
    "unit_columns",
]


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


def _minutes(conv: Conversation | None) -> set[dt.datetime]:
    if conv is None or conv.ended_at is None:
        return set()
    first, last = kpis.minute_of(conv.started_at), kpis.minute_of(conv.ended_at)
    count = int((last - first).total_seconds() // 60) + 1
    return {first + dt.timedelta(minutes=i) for i in range(count)}


def _load_changes(before: Conversation | None, after: Conversation) -> list[tuple[Any, int]]:
    """(UTC minute, +1 or -1) for the minutes the conversation now covers or no longer does."""
    old, new = _minutes(before), _minutes(after)
    return [(m, 1) for m in new - old] + [(m, -1) for m in old - new]


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
        cursor = rollup_sql.raw_cursor(connection.connection, sqlite)
        try:
            _apply(cursor, legs, info, sqlite)
        finally:
            cursor.close()


def _apply(
    cursor: Any,
    legs: Sequence[tuple[Call, Mapping[str, Any] | None]],
    info: Mapping[int, UnitInfo],
    sqlite: bool,
) -> None:
    found = rollup_sql.other_legs(cursor, [call for call, _ in legs], sqlite)
    folds: list[tuple[Conversation | None, Conversation]] = []
    for call, replaced in legs:
        others = [leg_of(row, info) for row in found.get(call.conversation_id, ())]
        previous = [] if replaced is None else [leg_of(replaced, info)]
        before = conversation_of(others + previous) if others or previous else None
        folds.append((before, conversation_of([*others, leg_of(leg_values(call), info)])))
    # the earlier version of a conversation is asked about only if its caller or start differ
    again = [b for b, a in folds if b is not None and not _same_caller(b, a)]
    repeats = rollup_sql.repeats(cursor, [a for _b, a in folds] + again, sqlite)
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
    changes = [(minute, step) for minute, step in load.items() if step]
    rollup_sql.write(cursor, list(rows.values()), list(matrix.values()), changes, sqlite)


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
