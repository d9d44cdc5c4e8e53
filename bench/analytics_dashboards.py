"""Dashboard panel queries and the rollup update at call end, on SQLite and PostgreSQL.

Usage: .venv/bin/python bench/analytics_dashboards.py --data DIR [--postgres URL]
           [--generate] [--calls-per-year 5000000] [--replicate-years 4] [--repeat 20]
           [--apply 2000]

``--data`` is the data directory (SQLite database inside; kept between runs); with
``--postgres URL`` the database is that PostgreSQL database instead (create it first, e.g.
``createdb -h 127.0.0.1 -U postgres callscope_bench``; never the ``test`` database).
``--generate`` fills an empty database with `callscope synth` (one year ending 2026-11-01,
seed 1) and reports its insert rate and rollup rebuild time.

Measured, in this order:
1. every dashboard panel (`callscope.analytics.queries`) for five filter sets (30 days,
   a quarter, a year; whole city, a ward, a department, a section): p50, p95 and max of
   ``--repeat`` runs each, the peer being the same aggregate read straight from the calls
   table (what a dashboard without rollups would do), once;
2. `rollups.apply_call` per call for ``--apply`` calls copied from the last day (inside a
   transaction rolled back at the end, so the data stay as they were; commit not included);
3. with ``--replicate-years N``: the rollup rows of the year are copied N times, shifted by
   whole years (as if N more years were stored; the calls table is not copied, panels never
   read it), steps 1 and 2 are repeated, and the copies are removed again (unless
   ``--keep-replicas``).
"""

# ruff: noqa: PLC0415  (Django is set up from the command line options first)
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def setup(args: argparse.Namespace) -> None:
    os.environ["CALLSCOPE_DATA_DIR"] = str(Path(args.data).resolve())
    os.environ.setdefault("CALLSCOPE_LOG_LEVEL", "warning")
    if args.postgres:
        os.environ["CALLSCOPE_DATABASE_URL"] = args.postgres
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callscope.settings")
    import django

    django.setup()
    from callscope.ingest.bootstrap import prepare

    prepare()


def generate(args: argparse.Namespace) -> None:
    from callscope.analytics import synth
    from callscope.store.models import Call

    if Call.objects.exists():
        print(f"database already holds {Call.objects.count():,} calls")
        return
    report = synth.synth(years=1, calls_per_year=args.calls_per_year, seed=1,
                         end=dt.date(2026, 11, 1))  # fmt: skip
    print(f"synth: {report.calls:,} calls, {report.conversations:,} conversations; "
          f"insert {report.rows_per_second:,.0f} rows/s; rollups rebuilt in "
          f"{report.rollup_seconds:.0f} s")  # fmt: skip


def copy_from_sqlite(path: str, *, rebuild_rollups: bool = False, rollups: bool = True) -> None:
    """Fill an empty PostgreSQL database with the directory, calls and rollups of a synth
    SQLite database (same rows, same ids); with ``rebuild_rollups`` the rollups are rebuilt
    in PostgreSQL instead (slow: ~40 min for a year on 2 cores). Copy the data directory's
    ``pseudonym_key`` too, or searches by number find nothing."""
    import sqlite3

    from django.db import connection, transaction

    from callscope.analytics import rebuild, synth
    from callscope.store.models import Call, DirectoryEntry, OrgUnit

    if Call.objects.exists():
        print(f"database already holds {Call.objects.count():,} calls")
        return
    source = sqlite3.connect(path)
    clock = time.perf_counter()
    names = [name for name, _ in synth.INSERT_COLUMNS]
    times = {i for i, name in enumerate(names) if name in synth.TIME_COLUMNS}
    bools = {
        i
        for i, name in enumerate(names)
        if name in {"early_media", "has_dtmf", "transferred", "encrypted_media"}
    }
    with transaction.atomic(), connection.connection.cursor() as cursor:
        for model in (OrgUnit, DirectoryEntry):
            table = model._meta.db_table
            columns = [f.column for f in model._meta.concrete_fields]
            rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT MAX(id) FROM {table}))")  # fmt: skip
        table = Call._meta.db_table
        columns = [*names, "record", "ladder", "imported_at"]
        query = source.execute(f"SELECT {', '.join(names)}, imported_at FROM {table}")
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in query:
                values = list(row)
                for i in times:
                    if values[i] is not None:
                        values[i] = values[i] + "+00"
                for i in bools:
                    values[i] = bool(values[i])
                copy.write_row((*values[:-1], "{}", "[]", values[-1] + "+00"))
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                       f"(SELECT MAX(id) FROM {table}))")  # fmt: skip
    copied = time.perf_counter() - clock
    print(f"copied {Call.objects.count():,} calls in {copied:.0f} s "
          f"({Call.objects.count() / copied:,.0f} rows/s by COPY)")  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    if not rollups:
        return
    if not rebuild_rollups:
        copy_rollups_from_sqlite(path, keep_calls=True)
        return
    clock = time.perf_counter()
    timings = rebuild.rebuild()
    print(f"rollups rebuilt in {time.perf_counter() - clock:.0f} s {timings}")


def copy_rollups_from_sqlite(path: str, *, keep_calls: bool = False) -> None:
    """Replace this PostgreSQL database's directory and rollups by those of a synth SQLite
    database (the panels read nothing else; the calls are not copied, and are emptied
    unless ``keep_calls``)."""
    import sqlite3

    from django.db import connection, transaction

    from callscope.analytics.models import LoadHour, LoadMinute, MatrixRollup, Rollup, UnitMap
    from callscope.store.models import Call, DirectoryEntry, OrgUnit

    source = sqlite3.connect(path)
    models = (UnitMap, Rollup, MatrixRollup, LoadMinute, LoadHour)
    if not keep_calls:
        models = (OrgUnit, DirectoryEntry, *models)
    clock = time.perf_counter()
    with transaction.atomic(), connection.connection.cursor() as cursor:
        emptied = models if keep_calls else (Call, *models)
        names = ", ".join(m._meta.db_table for m in emptied)
        cursor.execute(f"TRUNCATE {names} CASCADE")
        for model in models:
            table = model._meta.db_table
            fields = list(model._meta.concrete_fields)
            columns = [f.column for f in fields]
            bools = {i for i, f in enumerate(fields) if f.get_internal_type() == "BooleanField"}
            stamps = {i for i, f in enumerate(fields) if f.get_internal_type() == "DateTimeField"}
            query = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in query:
                    values = list(row)
                    for i in bools:
                        values[i] = bool(values[i])
                    for i in stamps:
                        if values[i] is not None:
                            values[i] += "+00"
                    copy.write_row(values)
            if model is not UnitMap:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")  # fmt: skip
        for model in (Rollup, MatrixRollup, LoadMinute, LoadHour):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    print(f"copied {Rollup.objects.count():,} rollup rows (and the directory unless the calls "
          f"were kept) in {time.perf_counter() - clock:.0f} s")  # fmt: skip


def filter_sets() -> list[tuple[str, Any]]:
    from django.db.models import Max

    from callscope.analytics import orgindex, queries
    from callscope.analytics.models import Rollup

    end = Rollup.objects.filter(grain="d", scope="t").aggregate(d=Max("day"))["d"]
    info = orgindex.current_index().info
    ward = next(u for u in info.values() if u.level == "ward")
    dept = next(u for u in info.values() if u.level == "department" and not u.is_ward)
    section = next(u for u in info.values() if u.level == "section" and u.top_id == ward.id)
    year = end - dt.timedelta(days=364)
    F = queries.Filters
    return [
        ("30 days, city", F(end - dt.timedelta(days=29), end)),
        ("quarter, department", F(end - dt.timedelta(days=90), end, dept.id)),
        ("year, city", F(year, end)),
        ("year, ward", F(year, end, ward.id)),
        ("year, section", F(year, end, section.id)),
    ]


def panels() -> list[tuple[str, Callable[[Any], Any]]]:
    from callscope.analytics import queries

    def matrix(level: str) -> Callable[[Any], Any]:
        def run(f: Any) -> Any:
            # as the console: a city-wide matrix stops at departments
            chosen = "department" if level == "section" and f.unit_id is None else level
            return queries.matrix(
                queries.Filters(f.start, f.end, f.unit_id, queries.INTERNAL, chosen)
            )

        return run

    def by_level(level: str) -> Callable[[Any], Any]:
        def run(f: Any) -> Any:
            return queries.by_unit(queries.Filters(f.start, f.end, f.unit_id, f.flows, level))

        return run

    return [
        ("key figures", queries.summary),
        ("calls per day", queries.trend),
        ("weekday x hour", queries.heatmap),
        ("by section", by_level("section")),
        ("by bureau/ward", by_level("top")),
        ("distributions", queries.distributions),
        ("matrix bureau/ward", matrix("top")),
        ("matrix section", matrix("section")),
        ("peak load", queries.peak_load),
        ("mix", queries.mix),
    ]


def direct_peer(f: Any) -> float:
    """The key figures straight from the calls (no rollups): one GROUP-less aggregate."""
    from django.db.models import Avg, Count, Q

    from callscope.analytics.conversations import JST
    from callscope.store.models import Call

    start = dt.datetime.combine(f.start, dt.time(), tzinfo=JST)
    end = dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time(), tzinfo=JST)
    clock = time.perf_counter()
    Call.objects.filter(started_at__gte=start, started_at__lt=end, direction="inbound").aggregate(
        n=Count("conversation_id", distinct=True), talk=Avg("talk_seconds"),
        answered=Count("id", filter=Q(result="answered")),
    )  # fmt: skip
    return time.perf_counter() - clock


def add_department_matrix() -> str:
    """Department-pair matrix rows from the unit-pair rows (for a database rolled up before
    the department scope existed; `callscope rollup --rebuild` makes them too)."""
    from django.db import connection, transaction

    from callscope.analytics.models import LoadHour, MatrixRollup, Rollup

    table = MatrixRollup._meta.db_table
    clock = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE scope = 'd'")
        cursor.execute(
            f"INSERT INTO {table} (grain, scope, day, caller_unit_id, caller_section_id, "
            "caller_department_id, caller_top_id, callee_unit_id, callee_section_id, "
            "callee_department_id, callee_top_id, flow, calls, answered, talk_sum) "
            "SELECT grain, 'd', day, 0, 0, caller_department_id, caller_top_id, 0, 0, "
            "callee_department_id, callee_top_id, flow, SUM(calls), SUM(answered), "
            f"SUM(talk_sum) FROM {table} WHERE scope = 'u' GROUP BY grain, day, "
            "caller_department_id, caller_top_id, callee_department_id, callee_top_id, flow"
        )
        for model in (Rollup, MatrixRollup, LoadHour):  # statistics after the bulk changes
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return f"department matrix rows added in {time.perf_counter() - clock:.0f} s"


def measure_panels(repeat: int, label: str, only: str = "") -> list[str]:
    lines = [f"| {label}: panel | filters | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    worst = 0.0
    for fname, f in filter_sets():
        for pname, run in panels():
            if only and only not in pname:
                continue
            run(f)  # warm
            times = []
            for _ in range(repeat):
                clock = time.perf_counter()
                run(f)
                times.append((time.perf_counter() - clock) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            worst = max(worst, p95)
            lines.append(f"| {pname} | {fname} | {statistics.median(times):.1f} | {p95:.1f} | "
                         f"{times[-1]:.1f} |")  # fmt: skip
    lines.append(f"| **worst p95** | | | **{worst:.1f}** | |")
    return lines


def measure_apply(n: int) -> str:
    from django.db import connection, transaction

    from callscope.analytics import rollups, synth
    from callscope.store.models import Call

    names = [name for name, _ in synth.INSERT_COLUMNS]
    last = Call.objects.order_by("-started_at").values_list(*names)[:n]
    rows = []
    for i, values in enumerate(last):
        row = dict(zip(names, values, strict=True))
        row["call_id"] = f"bench-apply-{i}"
        row["conversation_id"] = f"bench-apply-{i}"
        rows.append(tuple(row[name] for name in names))
    with transaction.atomic():
        synth.insert_rows(rows)
        calls = list(Call.objects.filter(call_id__startswith="bench-apply-"))
        rollups.apply_call(calls[0])  # warm the directory index and SQL cache
        clock, cpu = time.perf_counter(), time.process_time()
        for call in calls[1:]:
            rollups.apply_call(call)
        per_call = (time.perf_counter() - clock) / (len(calls) - 1)
        per_cpu = (time.process_time() - cpu) / (len(calls) - 1)
        peer = _round_trip(calls[1:])
        transaction.set_rollback(True)
    return (
        f"apply_call on {connection.vendor}: {per_call * 1e6:,.0f} µs per call wall, "
        f"{per_cpu * 1e6:,.0f} µs CPU in this process ({len(calls) - 1} calls, one transaction, "
        f"commit not included); peer: one indexed SELECT of a call's legs by conversation "
        f"{peer * 1e6:,.0f} µs = {per_call / peer:.1f} round trips"
    )


def _round_trip(calls: list[Any]) -> float:
    from django.db import connection

    from callscope.store.models import Call

    connection.ensure_connection()
    cursor = connection.connection.cursor()
    mark = "?" if connection.vendor == "sqlite" else "%s"
    sql = f"SELECT id FROM {Call._meta.db_table} WHERE conversation_id = {mark}"
    clock = time.perf_counter()
    for call in calls:
        cursor.execute(sql, [call.conversation_id])
        cursor.fetchall()
    cursor.close()
    return (time.perf_counter() - clock) / len(calls)


def replicate(years: int) -> str:
    """Copy the first stored year of rollup rows ``years`` times, each shifted one more year
    back (the year starts on the 1st of the first month stored, so copies never overlap the
    data or each other). `unreplicate` removes them again."""
    from django.db import connection, transaction

    from callscope.analytics.models import LoadHour, MatrixRollup, Rollup

    pg = connection.vendor == "postgresql"
    shift = "(day - interval '{k} year')::date" if pg else "date(day, '-{k} year')"
    first = _first_month()
    window = [first, first.replace(year=first.year + 1)]
    clock = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Rollup, MatrixRollup):
            table = model._meta.db_table
            columns = [f.column for f in model._meta.concrete_fields if f.column != "id"]
            for k in range(1, years + 1):
                select = ", ".join(shift.format(k=k) if c == "day" else c for c in columns)
                cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) "
                               f"SELECT {select} FROM {table} WHERE day >= %s AND day < %s",
                               window)  # fmt: skip
        hours = LoadHour._meta.db_table
        for k in range(1, years + 1):
            hour = ("hour - interval '{k} year'" if pg else "datetime(hour, '-{k} year')").format(
                k=k
            )
            cursor.execute(f"INSERT INTO {hours} (hour, day, peak) SELECT {hour}, "
                           f"{shift.format(k=k)}, peak FROM {hours} "
                           "WHERE day >= %s AND day < %s", window)  # fmt: skip
        for model in (Rollup, MatrixRollup, LoadHour):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    seconds = time.perf_counter() - clock
    rows, matrix = Rollup.objects.count(), MatrixRollup.objects.count()
    return (
        f"replicated the rollups {years} times in {seconds:.0f} s: {rows:,} rows, {matrix:,} matrix"
    )


def _first_month() -> dt.date:
    from django.db.models import Min

    from callscope.analytics.models import Rollup

    first = Rollup.objects.filter(grain="m").aggregate(d=Min("day"))["d"]
    return first.replace(day=1)


def unreplicate(before: dt.date) -> str:
    """Remove the rollup rows before ``before`` (the copies `replicate` made)."""
    from django.db import connection, transaction

    from callscope.analytics.models import LoadHour, MatrixRollup, Rollup

    removed = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Rollup, MatrixRollup, LoadHour):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE day < %s", [before])
            removed += cursor.rowcount
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return f"removed {removed:,} replicated rollup rows"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--postgres", default="")
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--calls-per-year", type=int, default=5_000_000)
    parser.add_argument("--replicate-years", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--apply", type=int, default=2000)
    parser.add_argument("--skip-panels", action="store_true")
    parser.add_argument("--copy-from", default="", help="SQLite database to copy calls from")
    parser.add_argument("--rebuild", action="store_true", help="... and rebuild its rollups")
    parser.add_argument("--calls-only", action="store_true", help="... without the rollups")
    parser.add_argument("--copy-rollups-from", default="", help="... or only its rollups")
    parser.add_argument("--keep-calls", action="store_true", help="... keeping the calls")
    parser.add_argument("--only", default="", help="measure only panels with this in the name")
    parser.add_argument("--department-matrix", action="store_true")
    parser.add_argument("--keep-replicas", action="store_true", help="keep the copied years")
    parser.add_argument("--label", default="1 year stored")
    args = parser.parse_args()
    setup(args)
    from django.db import connection

    from callscope.analytics.models import Rollup
    from callscope.store.models import Call

    if args.generate:
        generate(args)
    if args.copy_from:
        copy_from_sqlite(args.copy_from, rebuild_rollups=args.rebuild, rollups=not args.calls_only)
    if args.copy_rollups_from:
        copy_rollups_from_sqlite(args.copy_rollups_from, keep_calls=args.keep_calls)
    print(f"database: {connection.vendor}; {Call.objects.count():,} calls; "
          f"{Rollup.objects.count():,} rollup rows")  # fmt: skip
    if args.department_matrix:
        print(add_department_matrix())
    if not args.skip_panels:
        f = filter_sets()[2][1]
        print(
            f"peer, key figures of a year straight from the calls: {direct_peer(f) * 1000:.0f} ms"
        )
        print("\n".join(measure_panels(args.repeat, args.label, args.only)))
    if args.apply:
        print(measure_apply(args.apply))
    if args.replicate_years:
        first = _first_month()
        print(replicate(args.replicate_years))
        label = f"{args.replicate_years + 1} years stored"
        print("\n".join(measure_panels(args.repeat, label, args.only)))
        if args.apply:
            print(measure_apply(args.apply))
        if not args.keep_replicas:
            print(unreplicate(first))
    return 0


if __name__ == "__main__":
    sys.exit(main())
