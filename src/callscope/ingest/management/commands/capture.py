"""`callscope capture --interface IF` and/or `--hep ADDR:PORT` and/or `--siprec ADDR:PORT`:
the live recorder on a mirror port, a HEP collector (UDP and TCP) fed by the PBX or proxy,
and/or a SIPREC recording server (RFC 7866; UDP, TCP, TLS on the next port).

Records every call seen on the interface, saves each call when it ends (printing its record
with ``--json``), and encodes recordings in separate worker processes. SIGTERM flushes the
open calls and exits cleanly; after a crash, the next start finishes the spools left open.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from callscope.capture.hepsource import HepListener
from callscope.capture.live import DEFAULT_FILTER, InterfaceError, LiveSource
from callscope.capture.siprec import SiprecSource
from callscope.core import Endpoint
from callscope.ingest.daemon import (
    CaptureDaemon,
    EncoderPool,
    Feed,
    SourceHealth,
    install_signal_handlers,
    recover_spools,
)
from callscope.ingest.hepfeed import hep_feed, hep_summary
from callscope.ingest.pipeline import Recorder, run_id_for
from callscope.ingest.siprecfeed import siprec_feed, siprec_summary, use_siprec_tracker


class Command(BaseCommand):
    help = "Record calls live from a network interface (a switch's mirror port) and/or HEP."
    # Django's system checks are the console's (URLs, templates, admin): they would load the
    # console's views and their export libraries into the recorder (~25 MB resident), and
    # `callscope serve` runs them
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interface", "-i", help="interface to capture on, e.g. eth1")
        parser.add_argument("--filter", default=DEFAULT_FILTER, help="BPF capture filter")
        parser.add_argument(
            "--hep", metavar="ADDR:PORT", help="also or only: HEP collector, e.g. 0.0.0.0:9060"
        )
        parser.add_argument(
            "--siprec", metavar="ADDR:PORT", help="also or only: SIPREC server, e.g. 0.0.0.0:5060"
        )
        parser.add_argument("--json", action="store_true", help="print each ended call's record")
        parser.add_argument("--no-audio", action="store_true", help="keep the call log only")
        parser.add_argument("--encoders", type=int, default=1, help="encoder processes")
        parser.add_argument("--probe", default="", help="name of this capture point")
        parser.add_argument("--sample-seconds", type=int, default=60)

    def handle(self, *args: Any, **options: Any) -> None:
        interface, hep, siprec = options["interface"], options["hep"], options["siprec"]
        if not interface and not hep and not siprec:
            raise CommandError("give --interface, --hep and/or --siprec (see callscope capture -h)")
        audio = not options["no_audio"]
        kind = "live" if interface else "hep" if hep else "siprec"
        recovered = recover_spools(kind) if audio else 0
        if recovered:
            self.stderr.write(f"finished {recovered} recordings left by an interrupted run")
        feeds = [self._interface_feed(interface, options["filter"])] if interface else []
        listener = None
        if hep:
            feed, listener = self._hep_feed(hep)
            feeds.append(feed)
        recording_server = self._siprec_feed(siprec, feeds) if siprec else None
        label = f"live-{interface}" if interface else kind
        recorder = Recorder(
            run_id=run_id_for(label), record_audio=audio, probe=options["probe"], batch=1000
        )
        if recording_server is not None:
            use_siprec_tracker(recorder)
        if options["json"]:
            recorder.on_call = self._print
        # one daemon, one recorder: copies of a call from the mirror port and HEP meet in
        # one tracker and make one call record
        daemon = CaptureDaemon(feeds, recorder, sample_seconds=options["sample_seconds"])
        install_signal_handlers(daemon)
        encoders = EncoderPool(options["encoders"]) if audio and options["encoders"] > 0 else None
        if isinstance(live := feeds[0].source, LiveSource):
            self.stderr.write(f"recording calls on {interface} (filter: {live.bpf_filter})")
        if listener is not None:
            self.stderr.write(f"recording calls from HEP on {listener.address} (UDP and TCP)")
        self._siprec_says(recording_server, started=True)
        try:
            daemon.run()
        finally:
            if encoders is not None:
                encoders.close()
        if listener is not None:
            self.stderr.write(hep_summary(listener))
        self._siprec_says(recording_server, started=False)
        self.stderr.write(f"stopped: {recorder.stats.calls} calls recorded")

    def _interface_feed(self, interface: str, bpf_filter: str) -> Feed:
        try:
            source = LiveSource(interface, bpf_filter=bpf_filter)
        except InterfaceError as exc:
            raise CommandError(f"{interface}: {exc}") from exc

        def health() -> SourceHealth:
            stats = source.stats()
            counters = source.counters
            return SourceHealth(
                packets=counters.packets,
                bytes=counters.bytes,
                kernel_drops=stats.dropped + stats.ifdropped,
                app_drops=sum(counters.errors.values()),
            )

        return Feed(source, f"interface:{interface}", "live", health)

    def _hep_feed(self, address: str) -> tuple[Feed, HepListener]:
        try:
            return hep_feed(Endpoint.parse(address))
        except ValueError as exc:
            raise CommandError(f"--hep {address}: give ADDRESS:PORT, e.g. 0.0.0.0:9060") from exc
        except OSError as exc:
            raise CommandError(f"--hep {address}: {exc.strerror or exc}") from exc

    def _siprec_feed(self, address: str, feeds: list[Feed]) -> SiprecSource:
        try:
            feed, source = siprec_feed(Endpoint.parse(address))
            feeds.append(feed)
            return source
        except ValueError as exc:
            raise CommandError(f"--siprec {address}: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"--siprec {address}: {exc.strerror or exc}") from exc

    def _siprec_says(self, source: SiprecSource | None, *, started: bool) -> None:
        if source is not None:
            started_line = f"recording SIPREC sessions on {source.address} (UDP and TCP)"
            self.stderr.write(started_line if started else siprec_summary(source))

    def _print(self, call: Any, contract: dict[str, Any]) -> None:
        record = dict(contract)
        record.setdefault("direction", call.direction)
        self.stdout.write(json.dumps(record, ensure_ascii=False))
        self.stdout.flush()
