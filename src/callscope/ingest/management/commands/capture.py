"""`callscope capture --interface IF`: the live recorder on a mirror port.

Records every call seen on the interface, saves each call when it ends (printing its record
with ``--json``), and encodes recordings in separate worker processes. SIGTERM flushes the
open calls and exits cleanly; after a crash, the next start finishes the spools left open.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from callscope.capture.live import DEFAULT_FILTER, InterfaceError, LiveSource
from callscope.ingest.daemon import (
    CaptureDaemon,
    EncoderPool,
    SourceHealth,
    install_signal_handlers,
    recover_spools,
)
from callscope.ingest.pipeline import Recorder, run_id_for


class Command(BaseCommand):
    help = "Record calls live from a network interface (a switch's mirror port)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interface", "-i", help="interface to capture on, e.g. eth1")
        parser.add_argument("--filter", default=DEFAULT_FILTER, help="BPF capture filter")
        parser.add_argument("--json", action="store_true", help="print each ended call's record")
        parser.add_argument("--no-audio", action="store_true", help="keep the call log only")
        parser.add_argument("--encoders", type=int, default=1, help="encoder processes")
        parser.add_argument("--probe", default="", help="name of this capture point")
        parser.add_argument("--sample-seconds", type=int, default=60)

    def handle(self, *args: Any, **options: Any) -> None:
        interface = options["interface"]
        if not interface:
            raise CommandError("give --interface (HEP and SIPREC feeds: see callscope capture -h)")
        audio = not options["no_audio"]
        recovered = recover_spools("live") if audio else 0
        if recovered:
            self.stderr.write(f"finished {recovered} recordings left by an interrupted run")
        try:
            source = LiveSource(interface, bpf_filter=options["filter"])
        except InterfaceError as exc:
            raise CommandError(f"{interface}: {exc}") from exc
        recorder = Recorder(
            run_id=run_id_for(f"live-{interface}"), record_audio=audio, probe=options["probe"]
        )
        if options["json"]:
            recorder.on_call = self._print

        def health() -> SourceHealth:
            stats = source.stats()
            counters = source.counters
            return SourceHealth(
                packets=counters.packets,
                bytes=counters.bytes,
                kernel_drops=stats.dropped + stats.ifdropped,
                app_drops=sum(counters.errors.values()),
            )

        daemon = CaptureDaemon(
            source,
            recorder,
            name=f"interface:{interface}",
            kind="live",
            health=health,
            sample_seconds=options["sample_seconds"],
        )
        install_signal_handlers(daemon)
        encoders = EncoderPool(options["encoders"]) if audio and options["encoders"] > 0 else None
        self.stderr.write(f"recording calls on {interface} (filter: {source.bpf_filter})")
        try:
            daemon.run()
        finally:
            if encoders is not None:
                encoders.close()
        self.stderr.write(f"stopped: {recorder.stats.calls} calls recorded")

    def _print(self, call: Any, contract: dict[str, Any]) -> None:
        record = dict(contract)
        record.setdefault("direction", call.direction)
        self.stdout.write(json.dumps(record, ensure_ascii=False))
        self.stdout.flush()
