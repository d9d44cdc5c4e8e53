"""The `callscope` command line.

`callscope SUBCOMMAND ...` runs a Django management command from `callscope.ingest` (and
Django's own, such as `migrate`). Before any command that touches the database, the data
directory is created and the database migrated, so every command works on a fresh machine.
"""

from __future__ import annotations

import os
import sys

# Commands that must not trigger automatic migration (they manage migrations or need none).
_NO_BOOTSTRAP = {"makemigrations", "migrate", "compilemessages", "makemessages", "help", "check"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callscope.settings")
    from callscope.config import ConfigError

    try:
        import django

        django.setup()
    except ConfigError as exc:
        print(f"callscope: configuration error: {exc}", file=sys.stderr)
        return 2
    from django.core.management import execute_from_command_line

    from callscope.ingest.bootstrap import prepare

    command = args[0] if args else "help"
    if command not in _NO_BOOTSTRAP and not command.startswith("-"):
        prepare()
    try:
        execute_from_command_line(["callscope", *args])
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
