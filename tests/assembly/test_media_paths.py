"""`MediaStream.receive`: the usual-packet path gives exactly what the general path gives.

The usual-packet path is `RtpReceiver.receive`: its compiled twin where it is built
(`CALLSCOPE_PURE_PYTHON=1` runs the Python one).

The general path is forced by clearing the remembered SSRC before every packet; both
streams get the same packets (SSRC changes, payload type switches, comfort noise,
telephone events, RTCP, CSRCs and padding, probation, payload maps changed mid-stream, the
answer arriving mid-stream) and must agree on every figure, every sink write and every
anomaly and digit of their owners.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.assembly.events import StreamDirection
from callscope.assembly.media import MediaStream
from callscope.core import Endpoint
from callscope.protocol.rtp_stats import StreamStats
from callscope.protocol.telephone_event import DetectedEvent, DigitDetector
from tests.assembly._assemble import WriteLog

MS = 1_000_000
SRC, DST = Endpoint("10.0.0.1", 4000), Endpoint("10.0.0.2", 6000)
PAYLOAD_MAP = {0: ("PCMU", 8000, 1), 13: ("CN", 8000, 1), 101: ("telephone-event", 8000, 1)}


@dataclass
class Owner:
    key: int = 7
    answered: bool = False
    early_media: bool = False
    anomalies: list[str] = field(default_factory=list)
    digits: list[tuple[StreamDirection, DetectedEvent]] = field(default_factory=list)
    detectors: dict[StreamDirection, DigitDetector] = field(default_factory=dict, compare=False)
    encrypted: list[str] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.anomalies.append(kind)

    def on_digit(self, direction: StreamDirection, event: DetectedEvent) -> None:
        self.digits.append((direction, event))

    def detector(self, direction: StreamDirection) -> DigitDetector:
        return self.detectors.setdefault(direction, DigitDetector())

    def encrypted_media(self, how: str) -> None:
        self.encrypted.append(how)


def _packet(first: int, second: int, seq: int, ts: int, ssrc: int, body: bytes) -> bytes:
    header = struct.pack("!BBHII", first, second, seq, ts, ssrc)
    if first & 0x0F:  # CSRCs
        header += b"\x00\x00\x00\x01" * (first & 0x0F)
    if first & 0x20:  # padding, its last octet its length
        body += b"\x00\x00\x03"
    return header + body


_kinds = st.sampled_from(
    ["voice"] * 12 + ["marker", "cn", "event", "other_pt", "unknown_pt", "rtcp", "csrc",
     "padding", "new_ssrc", "jump", "back", "map", "answer", "short"]
)  # fmt: skip


def _stream(owner: Owner, sink: WriteLog, *, trusted: bool) -> MediaStream:
    stream = MediaStream(owner, StreamDirection.CALLER_TO_CALLEE, "audio", SRC, DST, sink=sink)
    stream.update_payload_map(PAYLOAD_MAP)
    stream.trusted = trusted
    return stream


def _stats(stats: StreamStats) -> tuple[object, ...]:
    # every figure (the compiled statistics have no slots to compare)
    return (stats.report(), stats.jitter, stats.extended_highest_sequence, stats.max_delta)


@given(
    st.lists(st.tuples(_kinds, st.integers(0, 40 * MS), st.integers(1, 4)), max_size=60),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=300)
def test_usual_packet_path_equals_general_path(
    runs: list[tuple[str, int, int]], trusted: bool, answered: bool
) -> None:
    owners, sinks = (Owner(answered=answered), Owner(answered=answered)), (WriteLog(), WriteLog())
    streams = [_stream(owners[i], sinks[i], trusted=trusted) for i in (0, 1)]
    at, seq, ts, ssrc = 0, 100, 1000, 0xA
    steps = [(kind, gap) for kind, gap, repeat in runs for _ in range(repeat)]
    for kind, gap in steps:
        at += gap
        seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
        first, pt = 0x80, 0
        if kind == "marker":
            pt = 0x80
        elif kind == "cn":
            pt = 13
        elif kind == "event":
            pt = 101
        elif kind == "other_pt":
            pt = 8  # static PCMA: not in the map, taken from RFC 3551
        elif kind == "unknown_pt":
            pt = 99
        elif kind == "rtcp":
            first, pt = 0x81, 200 & 0xFF  # a receiver report: PT 72 with the marker bit
        elif kind == "csrc":
            first = 0x82
        elif kind == "padding":
            first = 0xA0
        elif kind == "new_ssrc":
            ssrc += 1
        elif kind == "jump":
            seq = (seq + 5000) & 0xFFFF
        elif kind == "back":
            seq = (seq - 3) & 0xFFFF
        if kind == "map":
            for stream in streams:
                stream.update_payload_map({0: ("PCMU", 16000, 1), 99: ("X-TEST", 8000, 1)})
            continue
        if kind == "answer":
            for owner in owners:
                owner.answered = True
            continue
        data = _packet(first, pt, seq, ts, ssrc, b"\xff" * 20)
        if kind == "short":
            data = data[:12] if first == 0x80 else data[:10]
        for index, stream in enumerate(streams):
            if index:
                stream._hot_ssrc = -1
            stream.receive(at, data)
    for stream in streams:
        stream.settle()
    fast, general = streams
    assert fast.record() == general.record()
    assert [_stats(s) for s in fast.ssrcs.values()] == [_stats(s) for s in general.ssrcs.values()]
    assert (fast.early, fast.last_at, fast.rtcp_packets) == (
        general.early, general.last_at, general.rtcp_packets,
    )  # fmt: skip
    assert owners[0] == owners[1]
    assert sinks[0].writes == sinks[1].writes
