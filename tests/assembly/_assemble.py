"""Test helper: run a capture through read_file (+ HEP unwrapping) and the call tracker."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from callscope.assembly.events import CallAnswered, CallEnded, CallEvent, CallStarted
from callscope.assembly.records import CallRecord
from callscope.assembly.tracker import CallTracker
from callscope.capture.hep_unwrap import unwrap_hep
from callscope.capture.source import CaptureCounters, read_file


@dataclass
class WriteLog:
    """A media sink that keeps every write and call close, in order (to compare two runs)."""

    writes: list[tuple[object, ...]] = field(default_factory=list)

    def write(self, *args: object) -> None:
        self.writes.append(args)

    def close_call(self, call_key: int) -> None:
        self.writes.append(("close", call_key))


@dataclass
class Run:
    """What a capture gave the tracker (`run_capture`), to compare two ways of reading it."""

    events: list[CallEvent]
    anomalies: dict[str, int]
    orphans: list[object]
    counters: CaptureCounters
    writes: list[tuple[object, ...]]
    yielded: int


def run_capture(path: Path, *, routed: bool) -> Run:
    """Read ``path`` into a tracker, with its media routes (as `callscope import` does) or
    every datagram through `CallTracker.receive`."""
    sink = WriteLog()
    tracker = CallTracker(media_sink=sink)
    counters = CaptureCounters()
    routes = tracker.media_routes if routed else None
    events: list[CallEvent] = []
    yielded = 0
    for dgram in read_file(path, counters=counters, media_routes=routes):
        yielded += 1
        events.extend(tracker.receive(dgram))
    events.extend(tracker.finish())
    return Run(
        events, tracker.anomalies(), list(tracker.orphan_streams()), counters, sink.writes, yielded
    )


SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "call-record.schema.json"


@dataclass(frozen=True)
class Assembled:
    records: tuple[CallRecord, ...]
    events: tuple[CallEvent, ...]
    tracker: CallTracker

    def by_call_id(self, call_id: str) -> CallRecord:
        found = [r for r in self.records if r.call_id == call_id]
        assert len(found) == 1, (call_id, [r.call_id for r in self.records])
        return found[0]


@cache
def assemble(path: Path) -> Assembled:
    """Every event and record of one capture (cached: several tests read each file)."""
    tracker = CallTracker()
    events: list[CallEvent] = []
    for dgram in unwrap_hep(read_file(path)):
        events.extend(tracker.receive(dgram))
    events.extend(tracker.finish())
    records = tuple(e.record for e in events if isinstance(e, CallEnded))
    return Assembled(records, tuple(events), tracker)


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


def started_keys(events: tuple[CallEvent, ...]) -> list[int]:
    return [e.call_key for e in events if isinstance(e, CallStarted)]


def answered_keys(events: tuple[CallEvent, ...]) -> list[int]:
    return [e.call_key for e in events if isinstance(e, CallAnswered)]
