"""Background work `callscope serve` runs beside the console: housekeeping on a schedule
(retention purge, audit retention, idle-lock sweep) and encoder workers for recordings
queued by any recorder (imports, SIPREC, a capture process without its own encoders).

`Scheduler.run_due(now)` is the step function tests call; the loop around it only sleeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import signal
import time
from typing import Any

from django.db import connections
from django.utils import timezone

from callscope.accounts.jobs import run_scheduled_purge
from callscope.ingest import encoder

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = dt.timedelta(minutes=10)


class Scheduler:
    def __init__(self, every: dt.timedelta = HOUSEKEEPING_EVERY) -> None:
        self.every = every
        self.next_housekeeping: dt.datetime | None = None

    def run_due(self, now: dt.datetime) -> bool:
        """Run housekeeping when it is due; returns True when it ran."""
        if self.next_housekeeping is not None and now < self.next_housekeeping:
            return False
        run_scheduled_purge(now)
        self.next_housekeeping = now + self.every
        return True


def _background(stop: Any, encode: bool) -> None:
    connections.close_all()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    scheduler = Scheduler()
    while not stop.is_set():
        try:
            scheduler.run_due(timezone.now())
        except Exception:  # a failed run is logged and retried, never fatal
            log.exception("housekeeping failed")
        if not encode or encoder.process_one() is None:
            stop.wait(2.0)


class Background:
    """One process for housekeeping and encoding, stopped with the console."""

    def __init__(self, *, encode: bool = True) -> None:
        context = multiprocessing.get_context("fork")
        self.stop_event = context.Event()
        connections.close_all()
        self.process = context.Process(
            target=_background, args=(self.stop_event, encode), daemon=True,
            name="callscope-background",
        )  # fmt: skip
        self.process.start()

    def close(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            time.sleep(0.1)
