"""`callscope import FILE...`: record the calls in capture files (pcap, pcapng).

Each call is saved as it ends; with audio, each call's media is spooled and encoded into an
encrypted stereo Opus recording by encoder processes after the files are read. With
``--json`` one call record per line (contracts/call-record.schema.json) is printed.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections

from callscope.capture.errors import CaptureParseError
from callscope.capture.source import CaptureCounters, read_file
from callscope.ingest import encoder
from callscope.ingest.pipeline import Recorder, run_id_for
from callscope.store.models import Call


def _encode_worker() -> int:
    connections.close_all()  # never share the parent's database connection
    return len(encoder.drain())


def encode_pending(workers: int) -> int:
    """Encode every pending recording with ``workers`` processes; returns how many.

    Worker processes are forked only when there is more than one recording to share and no
    transaction is open: closing the connection before the fork would abandon it.
    """
    workers = min(workers, encoder.pending_count())
    if workers <= 1 or connection.in_atomic_block:
        return len(encoder.drain())
    connections.close_all()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        results = [pool.apply_async(_encode_worker) for _ in range(workers)]
        return sum(result.get() for result in results)


class Command(BaseCommand):
    help = "Record the calls in capture files (pcap/pcapng) into the database."
    # Django's system checks are the console's (URLs, templates, admin): importing them
    # costs ~0.5 s of every import, and `callscope serve` runs them
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--json", action="store_true", help="print one call record per line")
        parser.add_argument("--no-audio", action="store_true", help="keep the call log only")
        parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
        parser.add_argument("--probe", default="", help="name of the capture point")

    def handle(self, *args: Any, **options: Any) -> None:
        audio = not options["no_audio"]
        recorder = Recorder(
            run_id=run_id_for("import"), record_audio=audio, probe=options["probe"], batch=200
        )
        ids: list[int] = []
        recorder.on_call = lambda call, _contract: ids.append(call.pk)
        failures = 0
        for path in options["files"]:
            counters = CaptureCounters()
            try:
                # the recorder takes each datagram as it is read: RTP of the flows its tracker
                # knows can go straight to them (callscope.core.routes)
                routes = recorder.tracker.media_routes
                recorder.feed(
                    read_file(path, source="pcap", counters=counters, media_routes=routes)
                )
            except (CaptureParseError, OSError) as exc:
                self.stderr.write(f"{path}: cannot read: {exc}")
                failures += 1
                continue
            if counters.truncated:
                self.stderr.write(f"{path}: truncated capture; every complete packet was read")
        recorder.finish()
        encoded = encode_pending(options["workers"]) if audio else 0
        if options["json"]:
            for call in Call.objects.filter(pk__in=ids).order_by("started_at", "pk"):
                record = dict(call.record)
                record.setdefault("direction", call.direction)
                if not audio:
                    record["recording"] = None
                self.stdout.write(json.dumps(record, ensure_ascii=False))
        self.stderr.write(
            f"{recorder.stats.calls} calls recorded, {encoded} recordings encoded"
            + (f", {failures} files unreadable" if failures else "")
        )
        if failures:
            raise CommandError(f"{failures} of {len(options['files'])} files could not be read")
