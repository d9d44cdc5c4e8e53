"""`callscope directory import FILE` / `callscope directory export [FILE]`.

The organisation and number directory as one CSV file (format in
`callscope.analytics.directory`). An import with any bad row changes nothing and lists
every bad row with its line, column and reason (Japanese / English).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from callscope.analytics import directory


class Command(BaseCommand):
    help = "Import or export the organisation and number directory (CSV)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="validate and import a directory CSV")
        imp.add_argument("file", type=Path)
        imp.add_argument("--check", action="store_true", help="validate only, change nothing")
        exp = sub.add_parser("export", help="write the directory as CSV (stdout by default)")
        exp.add_argument("file", type=Path, nargs="?")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            data = directory.export_directory()
            if options["file"] is None:
                sys.stdout.buffer.write(data)
            else:
                options["file"].write_bytes(data)
            return
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError("no such file")
        data = path.read_bytes()
        if options["check"]:
            parsed = directory.check_directory(data)  # the checks the import makes
            self._fail_on(parsed.errors)
            self.stdout.write(
                f"OK: {len(parsed.units)} units, {len(parsed.numbers)} numbers (nothing changed)"
            )
            return
        try:
            report = directory.import_directory(data, source=path.name)
        except directory.DirectoryError as exc:
            self._fail_on(exc.errors)
        self.stdout.write(
            f"imported: units {report.units_created} new, {report.units_updated} updated; "
            f"numbers {report.numbers_created} new, {report.numbers_updated} updated"
        )

    def _fail_on(self, errors: list[directory.RowError]) -> None:
        if not errors:
            return
        for error in errors:
            self.stderr.write(error.describe())
        raise CommandError(f"{len(errors)} error(s): nothing was imported")
