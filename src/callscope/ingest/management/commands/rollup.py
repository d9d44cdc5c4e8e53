"""`callscope rollup --rebuild [--since DATE]`: recompute the analytics rollups in bulk.

The rollups are kept up to date as calls end; a rebuild is needed after a directory import
that changed past periods, after restoring or importing calls in bulk, or to repair.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from callscope.analytics import rebuild
from callscope.analytics.models import Rollup


class Command(BaseCommand):
    help = "Rebuild the analytics rollup tables from the calls."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rebuild", action="store_true", help="recompute the rollups")
        parser.add_argument(
            "--since",
            type=dt.date.fromisoformat,
            help="first day (YYYY-MM-DD, JST) to rebuild; rounded down to the 1st of its month",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["rebuild"]:
            raise CommandError("nothing to do: use --rebuild")
        timings = rebuild.rebuild(since=options["since"])
        rows = Rollup.objects.count()
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        self.stdout.write(f"rollups rebuilt: {rows} rows ({steps})")
