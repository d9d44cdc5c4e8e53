"""`callscope serve`: the console behind gunicorn, plus a background process for the
scheduled housekeeping (retention) and recording encoders. Creates the first manager when
there is none and prints its one-time password."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from callscope.accounts.onboarding import ensure_first_manager
from callscope.ingest.scheduler import Background
from callscope.ingest.webserver import ConsoleServer


class Command(BaseCommand):
    help = "Serve the console with a production WSGI server (gunicorn)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=None, help="address:port (CALLSCOPE_BIND)")
        parser.add_argument(
            "--no-encoder", action="store_true", help="leave encoding to other processes"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        created = ensure_first_manager()
        if created is not None:
            user, password = created
            self.stdout.write(
                self.style.WARNING(
                    f"First manager account: user {user.username!r}, one-time password "
                    f"{password} (must be changed at first login)"
                )
            )
        call_command("collectstatic", interactive=False, verbosity=0)
        bind = options["bind"] or settings.CALLSCOPE_BIND
        self.stdout.write(f"callscope console on http://{bind}/")
        self.stdout.flush()
        background = Background(encode=not options["no_encoder"])
        try:
            ConsoleServer(bind=bind).run()
        finally:
            background.close()
