"""The recording pipeline: datagrams -> call tracker -> stored calls, spooled media.

`Recorder` is the one composition every source uses (capture files, the live mirror port,
HEP, SIPREC): feed it datagrams, tell it when time passes, and it saves each call the
moment it ends, in one transaction with its rollup update, and leaves a finished spool
(fsynced, renamed ``.done``) with a pending `Recording` row for the encoder. The calls that
end while one batch of datagrams is handled are saved together when the batch is done (the
live daemon flushes after each read; an import every ``batch`` calls), in a few bulk
statements. A crash therefore loses no finished call: the row and the spool exist before
the next read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction

from callscope.analytics import rollups
from callscope.analytics.orgindex import as_call_direction, classify_call
from callscope.assembly.events import CallEnded, CallEvent, CallKey, CallStarted
from callscope.assembly.records import CallRecord
from callscope.assembly.tracker import CallTracker, TrackerConfig
from callscope.audio.packets import MediaPacket
from callscope.audio.spool import FlushPolicy, SpoolWriter, done_path
from callscope.core import Datagram
from callscope.store.bulk import insert_new, new_instance
from callscope.store.calls import CallToSave, Placement, SavedCall, save_calls
from callscope.store.masking import pseudonym
from callscope.store.models import Call, Recording

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: recording statuses decided by the tracker for which there is nothing to encode
NOT_ENCODED = {
    Recording.Status.NO_MEDIA,
    Recording.Status.ENCRYPTED,
    Recording.Status.VIDEO_ONLY,
    Recording.Status.UNSUPPORTED_CODEC,
}


def spool_dir() -> Path:
    path = Path(settings.DATA_DIR) / "spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


class SpoolSink:
    """The tracker's `MediaSink`: one append-only spool file per call leg."""

    def __init__(self, directory: Path, run_id: str, policy: FlushPolicy | None = None) -> None:
        self.directory = directory
        self.run_id = run_id
        self.policy = policy
        self.writers: dict[CallKey, SpoolWriter] = {}
        self.started: dict[CallKey, tuple[int, str]] = {}
        self.finished: dict[CallKey, Path] = {}

    def start(self, call_key: CallKey, started_ns: int, call_id: str) -> None:
        """Remember the call's start and Call-ID: the spool header names the call, so that a
        spool left by a crash can be tied to its call at restart."""
        self.started[call_key] = (started_ns, call_id)

    def write(  # noqa: PLR0917 - the MediaSink protocol, called per RTP packet
        self,
        call_key: CallKey,
        direction: int,
        at: int,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload_type: int,
        marker: bool,
        payload: bytes,
    ) -> None:
        writer = self.writers.get(call_key)
        if writer is None:
            path = self.directory / f"{self.run_id}-{call_key}.spool"
            started, call_id = self.started.get(call_key, (at, f"{self.run_id}-{call_key}"))
            writer = SpoolWriter.create(path, call_id, started, self.policy)
            self.writers[call_key] = writer
        writer.append(
            direction, MediaPacket(at, ssrc, seq, timestamp, payload_type, marker, payload)
        )

    def close_call(self, call_key: CallKey) -> None:
        writer = self.writers.pop(call_key, None)
        self.started.pop(call_key, None)
        if writer is not None:
            self.finished[call_key] = writer.finish()

    def take(self, call_key: CallKey) -> Path | None:
        """The finished spool of a call that ended (None when it had no media)."""
        return self.finished.pop(call_key, None)

    def close(self) -> None:
        """Leave unfinished spools as they are (a restart finishes them)."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


@dataclass
class RecorderStats:
    calls: int = 0
    recordings_queued: int = 0
    by_result: dict[str, int] = field(default_factory=dict)


def placement_of(record: CallRecord) -> Placement:
    """The call's place in the organisation (directory in force on its date)."""
    started = parse_time_ns(record.started_at)
    found = classify_call(record.caller.number or "", record.callee.number or "", started)
    key = settings.PSEUDONYM_KEY
    return Placement(
        direction=as_call_direction(found.direction),
        caller_unit=found.caller_unit,
        callee_unit=found.callee_unit,
        caller_class=found.caller_class,
        callee_class=found.callee_class,
        caller_pseudonym=pseudonym(record.caller.number, key) if record.caller.number else "",
        callee_pseudonym=pseudonym(record.callee.number, key) if record.callee.number else "",
    )


def parse_time_ns(at: int) -> dt.datetime:
    """Int nanoseconds (UTC) as an aware datetime at the database's microsecond precision."""
    return EPOCH + dt.timedelta(microseconds=at // 1000)


def payload_types_of(record: CallRecord) -> dict[str, dict[str, list[Any]]]:
    """Per direction, the payload type map the encoder decodes with."""
    maps: dict[str, dict[str, list[Any]]] = {}
    for stream in record.streams:
        if stream.media != "audio":
            continue
        merged = maps.setdefault(stream.direction, {})
        for pt, (encoding, clock, channels) in stream.payload_map.items():
            merged.setdefault(str(pt), [encoding, clock, channels])
    return maps


class Recorder:
    """Saves each ended call; see the module docstring."""

    def __init__(
        self,
        *,
        run_id: str,
        record_audio: bool = True,
        probe: str = "",
        tracker_config: TrackerConfig | None = None,
        on_call: Callable[[Call, dict[str, Any]], None] | None = None,
        batch: int = 1,
    ) -> None:
        """``batch`` > 1 saves ended calls in transactions of up to that many; whoever
        feeds such a recorder calls `flush` when a read is handled (the live daemon does)."""
        self.batch = batch
        self.ended: list[CallRecord] = []
        self.sink = SpoolSink(spool_dir(), run_id) if record_audio else None
        self.tracker = CallTracker(tracker_config, media_sink=self.sink)
        self.probe = probe
        self.on_call = on_call
        self.stats = RecorderStats()

    def receive(self, dgram: Datagram) -> None:
        events = self.tracker.receive(dgram)
        if events:
            self.handle(events)

    def feed(self, datagrams: Iterable[Datagram]) -> None:
        receive = self.tracker.receive
        handle = self.handle
        for dgram in datagrams:
            events = receive(dgram)
            if events:
                handle(events)

    def expire(self, now: int) -> None:
        self.handle(self.tracker.expire(now))
        self.flush()

    def finish(self) -> None:
        """End of input: open calls are saved as in progress."""
        self.handle(self.tracker.finish())
        self.flush()
        if self.sink is not None:
            self.sink.close()

    def handle(self, events: list[CallEvent]) -> None:
        for event in events:
            if isinstance(event, CallStarted):
                if self.sink is not None:
                    self.sink.start(event.call_key, event.at, event.call_id)
            elif isinstance(event, CallEnded):
                self.ended.append(event.record)
                if len(self.ended) >= self.batch:
                    self.flush()

    def flush(self) -> None:
        """Save the ended calls not saved yet, in one transaction."""
        if not self.ended:
            return
        records, self.ended = self.ended, []
        with transaction.atomic():
            saved = [row for group in conversation_groups(records) for row in self._save(group)]
        for call, contract, record, queued in saved:
            self.stats.calls += 1
            self.stats.recordings_queued += queued
            self.stats.by_result[record.result] = self.stats.by_result.get(record.result, 0) + 1
            if self.on_call is not None:
                self.on_call(call, contract)

    def _save(
        self, records: list[CallRecord]
    ) -> list[tuple[Call, dict[str, Any], CallRecord, int]]:
        """Save legs of distinct conversations together, then add each to the rollups."""
        contracts = [record.to_contract() for record in records]
        saved = save_calls(
            [
                CallToSave(
                    contract,
                    ladder=[entry.to_dict() for entry in record.ladder],
                    placement=placement_of(record),
                    probe=self.probe,
                )
                for record, contract in zip(records, contracts, strict=True)
            ]
        )
        rollups.apply_calls(
            [
                (row.call, rollups.leg_values(row.previous) if row.previous is not None else None)
                for row in saved
            ]
        )
        queued = self._queue_recordings(records, saved)
        return list(zip([row.call for row in saved], contracts, records, queued, strict=True))

    def _queue_recordings(self, records: list[CallRecord], saved: list[SavedCall]) -> list[int]:
        """A `Recording` row per call: pending with its spool, or done with its status."""
        fresh: list[Recording] = []
        queued: list[int] = []
        for record, row in zip(records, saved, strict=True):
            spool = self.sink.take(record.call_key) if self.sink is not None else None
            status = record.recording_status
            if status in NOT_ENCODED or spool is None:
                if spool is not None:
                    spool.unlink(missing_ok=True)
                values: dict[str, Any] = {
                    "status": status if status in NOT_ENCODED else Recording.Status.NO_MEDIA,
                    "state": Recording.State.DONE,
                }
            else:
                values = {
                    "state": Recording.State.PENDING,
                    "spool_path": str(spool),
                    "payload_types": payload_types_of(record),
                    "claimed_at": None,
                    "attempts": 0,
                }
            queued.append(int(values["state"] == Recording.State.PENDING))
            if row.previous is None:
                fresh.append(new_instance(Recording, {"call_id": row.call.pk, **values}))
            else:
                Recording.objects.update_or_create(call=row.call, defaults=values)
        insert_new(fresh)
        return queued


def conversation_groups(records: list[CallRecord]) -> list[list[CallRecord]]:
    """The records in runs, in order, where no conversation (and so no leg) comes twice.

    `rollups.apply_call` takes the other legs of a conversation found in the database as
    already applied, so two legs of one conversation must not be saved before either is
    applied.
    """
    groups: list[list[CallRecord]] = [[]]
    seen: set[object] = set()
    for record in records:
        marks = (record.conversation_id or record.call_id, (record.call_id, record.started_at))
        if not seen.isdisjoint(marks):
            groups.append([])
            seen.clear()
        seen.update(marks)
        groups[-1].append(record)
    return groups if groups[0] else []


def print_record(out: IO[str] = sys.stdout) -> Callable[[Call, dict[str, Any]], None]:
    """An ``on_call`` hook printing each call's contract record as one JSON line."""

    def emit(call: Call, contract: dict[str, Any]) -> None:
        out.write(json.dumps(contract, ensure_ascii=False) + "\n")
        out.flush()

    return emit


def unfinished_spools() -> list[Path]:
    """Spools a crashed recorder left open (their calls never ended in the database)."""
    return sorted(p for p in spool_dir().glob("*.spool") if not done_path(p).exists())


def run_id_for(label: str) -> str:
    """A spool file prefix unique to this process run."""
    return f"{label}-{os.getpid()}-{os.urandom(3).hex()}"
