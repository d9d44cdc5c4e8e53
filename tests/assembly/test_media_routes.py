"""Media routes: RTP handed from the capture pipeline straight to the tracker's flows.

With the tracker's `media_routes` given to `read_file` (as `callscope import` does), RTP of
known flows never becomes a `Datagram`. Every capture of the test data must give the same
events (whole call records), anomalies, unpaired streams, capture counters and media sink
writes, in the same order, as the plain path.
"""

from __future__ import annotations

import pytest

from callscope.assembly.tracker import CallTracker
from callscope.capture.source import read_file
from callscope.core import MediaRoutes, flow_key
from tests.assembly._assemble import run_capture
from tests.conftest import TESTDATA

_NOT_CAPTURES = {".json", ".jsonl", ".md", ".txt", ".tsv", ".wav", ".xml"}
CAPTURES = sorted(
    path.relative_to(TESTDATA).as_posix()
    for folder in ("pcap", "generated")
    for path in (TESTDATA / folder).rglob("*")
    if path.is_file() and path.suffix not in _NOT_CAPTURES
)


@pytest.mark.parametrize("capture", CAPTURES)
def test_routed_path_gives_the_same_results(capture: str) -> None:
    path = TESTDATA / capture
    plain = run_capture(path, routed=False)
    routed = run_capture(path, routed=True)
    assert routed.events == plain.events
    assert routed.anomalies == plain.anomalies
    assert routed.orphans == plain.orphans
    assert routed.counters == plain.counters
    assert routed.writes == plain.writes
    assert plain.yielded == plain.counters.datagrams


def test_captures_are_found() -> None:
    assert len(CAPTURES) >= 40


@pytest.mark.parametrize(
    "capture", ["generated/sipp_20calls_g711a_dtmf.pcap", "pcap/sip-rtp-g711.pcap"]
)
def test_routes_carry_the_rtp_of_calls(capture: str) -> None:
    # the routes are used: most RTP reaches its stream without a Datagram
    routed = run_capture(TESTDATA / capture, routed=True)
    assert routed.yielded < routed.counters.datagrams // 2
    assert any(routed.writes)


def test_flow_key_is_the_wire_order() -> None:
    # IPv4 source, destination (RFC 791 3.1), then the UDP ports (RFC 768)
    key = flow_key("10.0.0.1", 4000, "192.168.1.2", 6000)
    assert key == bytes([10, 0, 0, 1, 192, 168, 1, 2, 0x0F, 0xA0, 0x17, 0x70])
    assert len(flow_key("2001:db8::1", 1, "2001:db8::2", 2)) == 36


def test_tracker_routes_follow_its_flows() -> None:
    # a flow dropped by the tracker (an SDP moved it) leaves the routes too
    tracker = CallTracker()
    for dgram in read_file(TESTDATA / "pcap/sip-rtp-g711.pcap", media_routes=tracker.media_routes):
        tracker.receive(dgram)
    assert tracker.media_routes.flows
    keys = list(tracker._flows)
    assert {flow_key(*key) for key in keys} == set(tracker.media_routes.flows)
    for key in keys:
        tracker._drop_flow(key)
    assert tracker.media_routes.flows == {}
    assert isinstance(tracker.media_routes, MediaRoutes)
