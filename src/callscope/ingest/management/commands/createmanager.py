"""`callscope createmanager`: create a manager (管理責任者) with a one-time password."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from callscope.accounts.models import User
from callscope.accounts.onboarding import create_manager


class Command(BaseCommand):
    help = "Create a manager account and print its one-time password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="manager")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists")
        user, password = create_manager(username)
        self.stdout.write(
            f"Manager {user.username!r} created. One-time password (change it at first "
            f"login): {password}"
        )
