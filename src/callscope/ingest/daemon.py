"""The live recorder: a packet source feeding the `Recorder`, with time, health and signals.

The loop is thin: `CaptureDaemon.process_one_batch` is one step (read what is ready, feed
it, let time pass, write a health sample when due), and tests call it directly. The wall
clock is read here, in the ingest layer, and handed to the sans-IO tracker as ``now``.

Several sources (a mirror port and a HEP feed) can feed one recorder: each step reads every
source, so copies of one message from two feeds meet in one tracker and make one call.
Each source writes its own health sample.

Crash safety: a call is saved when it ends; its spool is finished before the next packet
is read. After a crash (kill -9) `recover_spools` finishes the spools of calls that were
still open: their call rows are kept (or made) as ``in_progress`` and their audio is
queued as a partial recording. SIGTERM instead ends the loop and flushes every open call.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.db import connections, transaction

from callscope.audio.spool import done_path, read_spool_file
from callscope.capture.source import CaptureCounters
from callscope.core import Datagram, MediaRoutes
from callscope.ingest.pipeline import Recorder, unfinished_spools
from callscope.store.models import Call, CaptureSample, Recording

log = logging.getLogger(__name__)

SECOND = 1_000_000_000


class PacketSource(Protocol):
    """What the daemon reads: the live interface, the HEP and SIPREC listeners."""

    def read_batch(self, timeout_s: float) -> list[Datagram]: ...

    def close(self) -> None: ...


@runtime_checkable
class RoutedSource(Protocol):
    """A source that decodes while it is read and can hand RTP of known flows to their
    receivers (`callscope.capture.live.LiveSource.read_routed`)."""

    @property
    def counters(self) -> CaptureCounters: ...

    def read_routed(
        self, timeout_s: float, media_routes: MediaRoutes | None
    ) -> Iterator[Datagram]: ...


@dataclass
class SourceHealth:
    """Counters the daemon samples from a source (kernel drops for an interface)."""

    packets: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    app_drops: int = 0


@dataclass
class Feed:
    """One source of a daemon, with the name and kind its health samples carry."""

    source: PacketSource
    name: str
    kind: str
    health: Callable[[], SourceHealth] = SourceHealth


class CaptureDaemon:
    """Runs one source, or several `Feed`s, into one recorder (see the module docstring)."""

    def __init__(
        self,
        source: PacketSource | Sequence[Feed],
        recorder: Recorder,
        *,
        name: str = "",
        kind: str = "",
        health: Callable[[], SourceHealth] | None = None,
        sample_seconds: int = 60,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if isinstance(source, Sequence):
            self.feeds = list(source)
        else:
            self.feeds = [Feed(source, name, kind, health or SourceHealth)]
        self.recorder = recorder
        self.sample_seconds = sample_seconds
        self.clock = clock
        self.stopping = False
        now = clock()
        self._next_expire = now + SECOND
        self._next_sample = now + sample_seconds * SECOND
        self._last = [feed.health() for feed in self.feeds]
        self._calls_at_sample = 0

    @property
    def source(self) -> PacketSource:
        """The first source (the only one of a single-source daemon)."""
        return self.feeds[0].source

    def process_one_batch(self, timeout_s: float = 0.2) -> int:
        """Read and record what is ready; returns the number of datagrams handled."""
        handled = self._read_routed(timeout_s)
        if handled is None:
            batch = self._read(timeout_s)
            handled = len(batch)
            if batch:
                self.recorder.feed(batch)
        if handled:
            self.recorder.flush()  # the calls this read ended, committed together
        now = self.clock()
        if now >= self._next_expire:
            self.recorder.expire(now)
            self._next_expire = now + SECOND
        if now >= self._next_sample:
            self.write_sample(now)
            self._next_sample = now + self.sample_seconds * SECOND
        return handled

    def _read_routed(self, timeout_s: float) -> int | None:
        """A single source that decodes lazily (`RoutedSource`, the live interface) is fed
        to the recorder as it is decoded, with the tracker's media routes: RTP of known
        flows goes to its stream without a `Datagram`. Returns the datagrams handled, or
        None when this daemon reads in batches (several sources, or another kind)."""
        feeds = self.feeds
        source = feeds[0].source
        routes = getattr(self.recorder.tracker, "media_routes", None)
        if len(feeds) != 1 or routes is None or not isinstance(source, RoutedSource):
            return None
        counters = source.counters
        before = counters.datagrams
        self.recorder.feed(source.read_routed(timeout_s, routes))
        return counters.datagrams - before

    def _read(self, timeout_s: float) -> list[Datagram]:
        """What the sources have; waits (shared out between them) only when none has any."""
        feeds = self.feeds
        if len(feeds) == 1:
            return feeds[0].source.read_batch(timeout_s)
        batch = [d for feed in feeds for d in feed.source.read_batch(0)]
        for feed in feeds:
            if batch:
                break
            batch = feed.source.read_batch(timeout_s / len(feeds))
        return batch

    def write_sample(self, now: int) -> list[CaptureSample]:
        """One sample per source; the recorder's figures (calls ended, anomalies) go with the
        first source's sample only, so that summing samples counts them once."""
        ended = self.recorder.stats.calls - self._calls_at_sample
        self._calls_at_sample = self.recorder.stats.calls
        in_progress = self.recorder.tracker.open_calls
        backlog = Recording.objects.filter(state=Recording.State.PENDING).count()
        anomalies = sum(self.recorder.tracker.anomalies().values())
        samples = []
        for index, feed in enumerate(self.feeds):
            current = feed.health()
            last, self._last[index] = self._last[index], current
            samples.append(
                CaptureSample.objects.create(
                    source=feed.name,
                    kind=feed.kind,
                    at=dt.datetime.fromtimestamp(now / SECOND, tz=dt.UTC),
                    seconds=self.sample_seconds,
                    packets=max(0, current.packets - last.packets),
                    bytes=max(0, current.bytes - last.bytes),
                    kernel_drops=max(0, current.kernel_drops - last.kernel_drops),
                    app_drops=max(0, current.app_drops - last.app_drops),
                    calls_in_progress=in_progress,
                    calls_ended=0 if index else ended,
                    spool_backlog=backlog,
                    anomalies=0 if index else anomalies,
                )
            )
        return samples

    def run(self) -> None:
        """Loop until `stop` (SIGTERM/SIGINT), then flush every open call."""
        # what start-up loaded (Django, the modules, settings) leaves the collector's
        # generations: a full collection then walks the recorder's own objects only. A call
        # leaves no reference cycle behind when the tracker forgets it (tests hold it to
        # that), so the collector has little to free: it runs every 20,000 allocations, not
        # every 700 (-14% CPU per HEP packet; at 200,000 RTP packets/s the recorder's peak
        # resident size 210 -> 176 MB, docs/benchmarks.md).
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(20_000, 20, 20)
        try:
            while not self.stopping:
                self.process_one_batch()
        finally:
            self.shutdown()
            gc.set_threshold(*thresholds)

    def stop(self, *_args: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        self.recorder.finish()
        self.write_sample(self.clock())
        for feed in self.feeds:
            feed.source.close()


def install_signal_handlers(daemon: CaptureDaemon) -> None:
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)


def recover_spools(source: str = "live") -> int:
    """Finish the spools a crashed recorder left open; returns how many were queued."""
    recovered = 0
    for path in unfinished_spools():
        try:
            spool = read_spool_file(path)
        except OSError as exc:
            log.warning("cannot read spool %s: %s", path, exc)
            continue
        call_id = spool.header.call_ref
        started = dt.datetime.fromtimestamp(spool.header.started_ns / SECOND, tz=dt.UTC)
        finished = done_path(path)
        path.replace(finished)
        with transaction.atomic():
            call = Call.objects.filter(call_id=call_id, started_at=started).first()
            if call is None:
                call = Call.objects.create(
                    call_id=call_id,
                    conversation_id=call_id,
                    source=source,
                    started_at=started,
                    result="in_progress",
                    record={"anomalies": [{"kind": "recorder.crashed", "count": 1}]},
                    anomaly_count=1,
                )
            Recording.objects.update_or_create(
                call=call,
                defaults={
                    "state": Recording.State.PENDING,
                    "spool_path": str(finished),
                    "claimed_at": None,
                    "attempts": 0,
                },
            )
        recovered += 1
    if recovered:
        log.warning("finished %d spools left by an interrupted recorder", recovered)
    return recovered


def _encoder_loop(stop: Any) -> None:
    # the codecs (FFmpeg, numpy) are loaded here, in the workers: the recorder does not
    # carry them (~20 MB resident)
    from callscope.ingest import encoder  # noqa: PLC0415

    connections.close_all()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    while not stop.is_set():
        if encoder.process_one() is None:
            stop.wait(1.0)


class EncoderPool:
    """Encoder worker processes beside the capture loop: capture never waits for encoding."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self.stop_event = context.Event()
        connections.close_all()
        self.processes = [
            context.Process(target=_encoder_loop, args=(self.stop_event,), daemon=True)
            for _ in range(workers)
        ]
        for process in self.processes:
            process.start()

    def close(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
