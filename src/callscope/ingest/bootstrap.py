"""Make a data directory usable: compiled translations and an up-to-date database."""

from __future__ import annotations

import logging

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from callscope.ingest.messages import compile_messages

log = logging.getLogger(__name__)


def pending_migrations() -> bool:
    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def prepare() -> None:
    """Compile message catalogues if stale, and migrate the database if needed."""
    compile_messages()
    if pending_migrations():
        log.info("migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
