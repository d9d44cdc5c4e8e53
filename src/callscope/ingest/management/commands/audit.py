"""`callscope audit verify|export`: check the audit trail's hash chain; export it as CSV.

``verify`` exits 1 and lists the problems when an entry was changed, removed or reordered
(and, with ``--log-file``, when the database lost or altered entries that the log copy on
another host still has). ``export`` writes the CSV the manager's page offers.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date

from callscope.accounts import audittrail
from callscope.store import audit
from callscope.store.models import AuditEntry


def day_start(raw: str | None) -> dt.datetime | None:
    """A YYYY-MM-DD date as the start of that day in the console's time zone (JST)."""
    if not raw:
        return None
    day = parse_date(raw)
    if day is None:
        raise CommandError("dates are YYYY-MM-DD")
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain, or export it as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        verify = sub.add_parser("verify", help="check every link of the hash chain")
        verify.add_argument(
            "--log-file", type=Path, help="also compare with this audit log copy (JSON lines)"
        )
        export = sub.add_parser("export", help="write the trail (or a filtered part) as CSV")
        export.add_argument("--output", type=Path, help="file to write (default: stdout)")
        export.add_argument("--action", default="")
        export.add_argument("--actor", default="", help="user name")
        export.add_argument("--target", default="")
        export.add_argument("--since", help="YYYY-MM-DD (JST), inclusive")
        export.add_argument("--until", help="YYYY-MM-DD (JST), exclusive")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "verify":
            self.verify(options["log_file"])
        else:
            self.export(options)

    def verify(self, log_file: Path | None) -> None:
        report = audittrail.verify()
        if log_file is not None:
            with log_file.open(encoding="utf-8") as lines:
                audittrail.verify_against_log(lines, report)
        for problem in report.problems:
            self.stderr.write(f"sequence {problem.sequence}: {problem.message}")
        if not report.ok:
            raise CommandError(f"audit trail verification FAILED ({len(report.problems)} problems)")
        span = (
            f"sequences {report.first_sequence}..{report.last_sequence}"
            if report.checked
            else "no entries"
        )
        self.stdout.write(
            f"audit trail OK: {report.checked} entries checked ({span}), head {report.last_hash}"
        )

    def export(self, options: dict[str, Any]) -> None:
        query = audittrail.AuditFilter(
            action=options["action"],
            actor=options["actor"],
            target=options["target"],
            since=day_start(options["since"]),
            until=day_start(options["until"]),
        )
        entries = query.apply(AuditEntry.objects.all())
        output: Path | None = options["output"]
        if output is None:
            for line in audittrail.csv_lines(entries):
                sys.stdout.write(line)
            count = entries.count()
        else:
            count = audittrail.write_csv(entries, output)
        audit.record(
            "audit_export",
            address="cli",
            target="audit",
            detail={"entries": count, "filter": {k: str(v) for k, v in vars_of(query).items()}},
        )
        if output is not None:
            self.stdout.write(f"{count} entries written to {output}")


def vars_of(query: audittrail.AuditFilter) -> dict[str, Any]:
    return {
        name: getattr(query, name)
        for name in ("action", "actor", "target", "since", "until")
        if getattr(query, name)
    }
