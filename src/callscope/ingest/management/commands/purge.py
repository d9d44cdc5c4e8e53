"""`callscope purge`: apply audio and call-log retention now (also run by the scheduler)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from callscope.accounts import audittrail
from callscope.store.retention import purge


class Command(BaseCommand):
    help = (
        "Delete audio older than CALLSCOPE_RETENTION_DAYS and calls older than "
        "CALLSCOPE_METADATA_RETENTION_DAYS (never held recordings), and audit entries older "
        "than CALLSCOPE_AUDIT_RETENTION_DAYS. Prints the counts as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--max-batches", type=int, default=None, help="stop after this many batches"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        report = purge(
            now,
            batch_size=options["batch_size"],
            max_batches=options["max_batches"],
            audit_empty=True,
        )
        removed = audittrail.prune(now, retention_days=settings.CALLSCOPE_AUDIT_RETENTION_DAYS)
        counts = {**report.as_dict(), "audit_entries_removed": removed}
        self.stdout.write(json.dumps(counts, sort_keys=True))
