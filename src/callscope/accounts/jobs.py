"""Housekeeping the scheduler runs (`callscope serve` calls `run_scheduled_purge`).

One call does the retention purge (audio, then call log), audit retention (with its
anchor), and the sweep that audits idle locks of sessions nobody came back to. Each part is
batch-limited, so a call returns quickly even with a large backlog; the next call continues.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings

from callscope.accounts import audittrail, sessions
from callscope.store.retention import PurgeReport, purge

log = logging.getLogger(__name__)

#: batches per scheduled run (each batch is CALLSCOPE_PURGE_BATCH_SIZE rows)
SCHEDULED_MAX_BATCHES = 20


@dataclass(frozen=True, slots=True)
class HousekeepingReport:
    purge: PurgeReport
    audit_entries_removed: int
    sessions_locked: int


def run_scheduled_purge(now: dt.datetime) -> HousekeepingReport:
    """Retention, audit retention and the idle-lock sweep, as of ``now`` (aware UTC)."""
    report = purge(now, max_batches=SCHEDULED_MAX_BATCHES)
    removed = audittrail.prune(now, retention_days=settings.CALLSCOPE_AUDIT_RETENTION_DAYS)
    locked = sessions.sweep(now)
    log.info(
        "housekeeping",
        extra={"audit_removed": removed, "sessions_locked": locked, **report.as_dict()},
    )
    return HousekeepingReport(report, removed, locked)
