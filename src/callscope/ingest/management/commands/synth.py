"""`callscope synth --years 1 --calls-per-year 5000000 [--seed N]`: the synthetic city.

Creates the synthetic city's organisation and number directory and its call log for the
past years straight into the database, then rebuilds the rollups. For demos and benchmarks;
refuses to run when the database already holds calls unless ``--force`` is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from callscope.analytics import synth
from callscope.store.models import Call, OrgUnit


class Command(BaseCommand):
    help = "Generate a large synthetic city's organisation and call log (demo, benchmarks)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--years", type=float, default=1.0)
        parser.add_argument("--calls-per-year", type=int, default=5_000_000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--end", type=dt.date.fromisoformat, help="day after the last day")
        parser.add_argument("--no-rollups", action="store_true", help="skip the rollup rebuild")
        parser.add_argument("--force", action="store_true", help="add to a non-empty database")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["force"] and (Call.objects.exists() or OrgUnit.objects.exists()):
            raise CommandError("the database already has calls or a directory (use --force)")
        report = synth.synth(
            years=options["years"],
            calls_per_year=options["calls_per_year"],
            seed=options["seed"],
            end=options["end"],
            rollups=not options["no_rollups"],
            progress=self.stdout.write,
        )
        self.stdout.write(
            f"{report.calls} calls ({report.conversations} conversations) over {report.days} "
            f"days; insert {report.insert_seconds:.1f} s = {report.rows_per_second:,.0f} rows/s; "
            f"rollups {report.rollup_seconds:.1f} s"
        )
