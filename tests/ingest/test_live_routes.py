"""The live interface fed lazily with the tracker's media routes (`LiveSource.read_routed`).

A capture from the test data is replayed through a stand-in for libpcap. Reading it with
the routes (RTP of known flows straight to its stream, no `Datagram`) must give the same
call events as reading it in batches of datagrams, and the daemon must take that path and
count every datagram it handled.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscope.assembly.events import CallEvent
from callscope.assembly.tracker import CallTracker
from callscope.capture import live
from callscope.capture.live import LiveSource
from callscope.capture.pcapfile import open_capture
from callscope.core import Datagram, MediaRoutes
from callscope.ingest.daemon import CaptureDaemon, RoutedSource
from callscope.ingest.pipeline import Recorder
from callscope.store.models import Call

CAPTURE = "generated/sipp_20calls_g711a_dtmf.pcap"
_META = struct.Struct("=IIII")


class ReplayHandle:
    """A libpcap handle that has the frames of a capture file ready, ``batch`` at a time."""

    def __init__(self, path: Path) -> None:
        self.ready = [(at, frame) for at, _link, frame, _orig in open_capture(path)]

    def next_batch(self, count: int) -> tuple[bytes, bytes]:
        taken, self.ready = self.ready[:count], self.ready[count:]
        data, meta = bytearray(), bytearray()
        for at, frame in taken:
            meta += _META.pack(at // 10**9, at % 10**9 // 1000, len(data), len(frame))
            data += frame
        return bytes(data), bytes(meta)

    def setfilter(self, _text: str) -> None: ...

    def setnonblock(self, _on: int) -> None: ...

    def getfd(self) -> int:
        return -1

    def datalink(self) -> int:
        return 1  # Ethernet

    def close(self) -> None: ...


def _source(monkeypatch: pytest.MonkeyPatch, testdata: Path) -> tuple[LiveSource, ReplayHandle]:
    handle = ReplayHandle(testdata / CAPTURE)
    monkeypatch.setattr(live, "_open", lambda *_args: handle)
    return LiveSource("cap0", batch=50, max_read=120), handle


def _events(source: LiveSource, handle: ReplayHandle, *, routed: bool) -> list[CallEvent]:
    tracker = CallTracker()
    events: list[CallEvent] = []
    while handle.ready or source.backlog:
        if routed:
            batch = source.read_routed(0, tracker.media_routes)
        else:
            batch = iter(source.read_batch(0))
        for dgram in batch:
            events.extend(tracker.receive(dgram))
    events.extend(tracker.finish())
    return events


def test_read_routed_gives_the_same_calls_as_read_batch(
    monkeypatch: pytest.MonkeyPatch, testdata: Path
) -> None:
    source, handle = _source(monkeypatch, testdata)
    batched = _events(source, handle, routed=False)
    source, handle = _source(monkeypatch, testdata)
    routed = _events(source, handle, routed=True)
    assert len([e for e in batched if type(e).__name__ == "CallEnded"]) == 20
    assert routed == batched


@pytest.mark.django_db
def test_the_daemon_feeds_a_live_source_with_routes(
    monkeypatch: pytest.MonkeyPatch, testdata: Path
) -> None:
    source, handle = _source(monkeypatch, testdata)
    assert isinstance(source, RoutedSource)
    recorder = Recorder(run_id="routes-test", record_audio=False)
    yielded = []
    read_routed = source.read_routed

    def counted(timeout_s: float, routes: MediaRoutes | None) -> Iterator[Datagram]:
        assert routes is recorder.tracker.media_routes
        for dgram in read_routed(timeout_s, routes):
            yielded.append(dgram)
            yield dgram

    monkeypatch.setattr(source, "read_routed", counted)
    now = [handle.ready[0][0]]
    daemon = CaptureDaemon(source, recorder, sample_seconds=3600, clock=lambda: now[0])
    handled = 0
    while handle.ready or source.backlog:
        handled += daemon.process_one_batch(0)
    daemon.shutdown()
    assert handled == source.counters.datagrams == source.counters.packets
    assert len(yielded) < handled // 2  # the RTP went through the routes
    assert Call.objects.count() == 20
