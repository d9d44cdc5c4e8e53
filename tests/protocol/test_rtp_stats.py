"""Per-stream RTP statistics against tshark's `-z rtp,streams` and RFC 3550 A.1/A.8 cases."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.core.compiled import compiled_module
from callscope.protocol.rtp import looks_like_rtp, parse_rtp_header
from callscope.protocol.rtp_stats import PythonStreamStats, StreamReport, StreamStats
from tests.protocol._hep_pcap import read_udp

MS = 1_000_000  # ns

_compiled = compiled_module("callscope.protocol._rtpfast")
#: the Python class and its compiled twin (where built): every figure test runs on both
IMPLEMENTATIONS = [PythonStreamStats] + ([_compiled.StreamStats] if _compiled else [])
_IDS = ["python", "compiled"][: len(IMPLEMENTATIONS)]
both = pytest.mark.parametrize("stats_class", IMPLEMENTATIONS, ids=_IDS)

# Every capture with RTP streams in its tshark ground truth (folder/file as under testdata).
RTP_CAPTURES = [
    "pcap/Asterisk_ZFONE_XLITE.pcap",
    "pcap/SIP_CALL_RTP_G711",
    "pcap/SIP_DTMF2.cap",
    "pcap/b2bua-asterisk.pcapng",
    "pcap/codec-negotiation.pcap",
    "pcap/h263-over-rtp.pcap",
    "pcap/invite-opus-bye.pcap",
    "pcap/register-invite-reinvite-bye.pcap",
    "pcap/rtp-protocol.pcap",
    "pcap/sip-over-tcp.pcap",
    "pcap/sip-rtp-g711.pcap",
    "pcap/sip-rtp-g722.pcap",
    "pcap/sip-rtp-g729a.pcap",
    "pcap/sip-rtp-opus-hybrid.pcap",
    "pcap/rtp-only/09a_2833_dtmf.pcap",
    "pcap/rtp-only/10a_g722.pcap",
    "pcap/rtp-only/11a_g721.pcap",
    "pcap/rtp-only/12a_g729.pcap",
    "pcap/rtp-only/g722_108s.pcap",
    *(
        f"pcap/rtp-only/sipp_dtmf_2833_{name}.pcap"
        for name in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "star", "pound"]
    ),
    "pcap/rtp-only/sipp_g711a.pcap",
    "pcap/rtp-only/speech_8k_ulaw.pcap",
    "generated/baresip_call_pcmu_8s.pcap",
    "generated/sipp_20calls_g711a_dtmf.pcap",
]

# RFC 3551 6: clock rates of the static payload types in these captures
STATIC_CLOCK = {0: 8000, 2: 8000, 8: 8000, 9: 8000, 13: 8000, 18: 8000, 34: 90000}

_STREAM = re.compile(
    r"\s*[\d.]+\s+[\d.]+\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+(?P<dport>\d+)"
    r"\s+0x(?P<ssrc>[0-9A-F]+)\s+(?P<payload>.+?)\s+(?P<packets>\d+)\s+(?P<lost>-?\d+) \(.*?\)"
    r"\s+\S+\s+\S+\s+(?P<max_delta>\S+)\s+\S+\s+(?P<mean_jitter>\S+)\s+(?P<max_jitter>\S+)"
)


def _ground_truth(testdata: Path, capture: str) -> Path:
    folder, _, name = capture.partition("/")
    if folder == "generated":
        return testdata / "generated" / f"{name}.tshark.txt"
    return testdata / "pcap" / "ground_truth" / f"{name.replace('/', '_')}.tshark.txt"


def _clock_rate(payload_type: int, payload_names: str) -> int:
    """What the SDP would say; for dynamic types, tshark's payload column names it.

    telephone-event (and an unnamed dynamic type) gets 0, as in tshark: its timestamp does
    not advance with the clock (RFC 4733 2.2.1)."""
    if payload_type < 96:
        return STATIC_CLOCK[payload_type]
    return 48000 if "opus" in payload_names else 0


def _streams(path: Path) -> dict[tuple[str, int, str, int, int], list[tuple[int, bytes]]]:
    streams = defaultdict(list)
    for record in read_udp(path):
        if looks_like_rtp(record.payload):
            ssrc = int.from_bytes(record.payload[8:12], "big")
            key = (record.src.ip, record.src.port, record.dst.ip, record.dst.port, ssrc)
            streams[key].append((record.at, record.payload))
    return streams


def test_every_ground_truth_with_rtp_is_checked(testdata: Path) -> None:
    with_rtp = {
        path.name
        for folder in (testdata / "pcap" / "ground_truth", testdata / "generated")
        for path in folder.glob("*.tshark.txt")
        if any(_STREAM.match(line) for line in path.read_text().splitlines())
    }
    assert with_rtp == {_ground_truth(testdata, capture).name for capture in RTP_CAPTURES}


@pytest.mark.parametrize("capture", RTP_CAPTURES)
@both
def test_matches_tshark_rtp_streams(
    testdata: Path, capture: str, stats_class: type[StreamStats]
) -> None:
    truth = [
        match
        for line in _ground_truth(testdata, capture).read_text().splitlines()
        if (match := _STREAM.match(line))
    ]
    assert truth
    streams = _streams(testdata / capture)
    for row in truth:
        key = (row["src"], int(row["sport"]), row["dst"], int(row["dport"]), int(row["ssrc"], 16))
        stats = stats_class()
        for at, data in streams[key]:
            payload_type, sequence, timestamp, _, marker, _, _ = parse_rtp_header(data)
            stats.receive(
                at,
                sequence,
                timestamp,
                _clock_rate(payload_type, row["payload"]),
                marker=marker,
                comfort_noise=payload_type == 13,  # RFC 3389
            )
        report = stats.report()
        label = f"{capture} {row['ssrc']}"
        assert report.packets == int(row["packets"]), label
        # tshark counts duplicates as received, so its "lost" may be negative
        assert report.expected - report.packets == int(row["lost"]), label
        assert report.lost == max(0, int(row["lost"])), label
        assert report.max_delta_ms == pytest.approx(float(row["max_delta"]), abs=6e-4), label
        assert report.mean_jitter_ms == pytest.approx(float(row["mean_jitter"]), abs=6e-4), label
        assert report.max_jitter_ms == pytest.approx(float(row["max_jitter"]), abs=6e-4), label


@both
def test_sipp_end_copies_are_duplicates_not_negative_loss(
    testdata: Path, stats_class: type[StreamStats]
) -> None:
    (packets,) = _streams(testdata / "pcap/rtp-only/sipp_dtmf_2833_0.pcap").values()
    stats = stats_class()
    for at, data in packets:
        _, sequence, timestamp, _, marker, _, _ = parse_rtp_header(data)
        stats.receive(at, sequence, timestamp, 0, marker=marker)
    # tshark: 10 packets, "-2 lost": the 3 End packets share one sequence number
    assert (stats.packets, stats.expected, stats.duplicates, stats.lost) == (10, 8, 2, 0)
    assert stats.reordered == 0
    assert stats.jitter_ms == 0.0


def _feed(stats: StreamStats, packets: list[tuple[int, int, int]], clock: int = 8000) -> None:
    for at, sequence, timestamp in packets:
        stats.receive(at, sequence, timestamp, clock)


def _regular(count: int, first_sequence: int = 0, step_ms: int = 20) -> list[tuple[int, int, int]]:
    return [
        (n * step_ms * MS, (first_sequence + n) & 0xFFFF, (n * step_ms * 8) & 0xFFFFFFFF)
        for n in range(count)
    ]


@both
def test_empty(stats_class: type[StreamStats]) -> None:
    report = stats_class().report()
    assert report == StreamReport(0, 0, 0, 0, 0, 0, None, None, 0.0, 0.0, 0.0, 0.0)


@both
def test_sequence_wrap_without_loss(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    _feed(stats, _regular(100, first_sequence=65500))
    assert (stats.packets, stats.expected, stats.lost) == (100, 100, 0)
    assert stats.extended_highest_sequence == (1 << 16) + (65500 + 99 - 65536)
    assert stats.jitter_ms == 0.0
    assert stats.max_delta_ms == 20.0
    assert (stats.first_at, stats.last_at) == (0, 99 * 20 * MS)


@both
def test_loss_duplicates_and_reordering(stats_class: type[StreamStats]) -> None:
    packets = _regular(20)
    del packets[5:8]  # 3 lost
    packets.insert(10, packets[9])  # a duplicate
    packets[12], packets[13] = packets[13], packets[12]  # a late packet
    stats = stats_class()
    _feed(stats, packets)
    assert (stats.packets, stats.expected, stats.lost) == (18, 20, 3)
    assert (stats.duplicates, stats.reordered, stats.sequence_resets) == (1, 1, 0)


@both
def test_timestamp_wrap_keeps_jitter_zero(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    for n in range(50):
        stats.receive(n * 20 * MS, n, (0xFFFFFF00 + 160 * n) & 0xFFFFFFFF, 8000)
    assert stats.jitter_ms == 0.0
    assert stats.max_jitter_ms == 0.0


@both
def test_sequence_restart_is_a_new_run(stats_class: type[StreamStats]) -> None:
    # RFC 3550 A.1: a big jump followed by its successor means the sender restarted
    stats = stats_class()
    packets = _regular(10) + [(at + 200 * MS, seq + 30000, ts) for at, seq, ts in _regular(10)]
    _feed(stats, packets)
    assert stats.sequence_resets == 1
    assert (stats.packets, stats.expected, stats.lost) == (20, 20, 0)


@both
def test_a_single_stray_jump_is_not_a_restart(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    packets = _regular(20)
    packets.insert(10, (packets[9][0] + MS, 40000, packets[9][2]))
    _feed(stats, packets)
    assert stats.sequence_resets == 0
    assert (stats.packets, stats.expected, stats.lost) == (21, 20, 0)


@both
def test_jitter_follows_rfc3550_a8(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    model = 0.0  # J += (|D| - J) / 16, in ms, as a float reference
    for n in range(200):
        offset = 3 * MS if n % 2 else 0  # every other packet 3 ms late
        stats.receive(n * 20 * MS + offset, n, n * 160, 8000)
        if n:
            model += (3.0 - model) / 16
    assert stats.jitter_ms == pytest.approx(model, abs=1e-6)
    assert stats.jitter == 24  # RTP units at 8 kHz: 3 ms
    assert stats.max_jitter_ms == pytest.approx(model, abs=1e-6)


@both
def test_jitter_at_48khz_is_in_its_own_units(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    for n in range(400):
        stats.receive(n * 20 * MS + (MS if n % 2 else 0), n, n * 960, 48000)
    assert stats.jitter_ms == pytest.approx(1.0, abs=1e-6)
    assert stats.jitter == 48


@both
def test_marker_and_comfort_noise_do_not_count_as_gaps(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    _feed(stats, _regular(10))
    # silence suppression: 2 s gap, then a talkspurt starts with the marker bit
    stats.receive(2 * 1000 * MS, 10, 16000, 8000, marker=True)
    stats.receive(2 * 1000 * MS + 20 * MS, 11, 16160, 8000)
    assert stats.max_delta_ms == 20.0
    # comfort noise (RFC 3389) and the packet after it are not regular either
    stats.receive(3 * 1000 * MS, 12, 24000, 8000, comfort_noise=True)
    stats.receive(4 * 1000 * MS, 13, 32000, 8000)
    assert stats.max_delta_ms == 20.0
    stats.receive(5 * 1000 * MS, 14, 40000, 8000)
    assert stats.max_delta_ms == 1000.0


@both
def test_events_do_not_move_jitter(stats_class: type[StreamStats]) -> None:
    stats = stats_class()
    for n in range(10):
        stats.receive(n * 20 * MS, n, 4000, 0)  # RFC 4733: timestamp stays at the start
    assert stats.jitter_ms == 0.0
    assert stats.max_delta_ms == 20.0


_steps = st.lists(
    st.tuples(
        st.integers(0, 100 * MS),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.sampled_from([0, 8000, 16000, 48000]),
        st.booleans(),
        st.booleans(),
    ),
    max_size=60,
)


@both
@given(steps=_steps)
def test_fuzz_invariants(
    steps: list[tuple[int, int, int, int, bool, bool]], stats_class: type[StreamStats]
) -> None:
    stats = stats_class()
    at = 0
    for gap, sequence, timestamp, clock, marker, comfort_noise in steps:
        at += gap
        stats.receive(at, sequence, timestamp, clock, marker=marker, comfort_noise=comfort_noise)
    report = stats.report()
    assert report.packets == len(steps)
    assert report.lost >= 0
    assert report.duplicates + report.reordered <= max(0, report.packets - 1)
    assert report.jitter_ms >= 0.0
    assert report.max_jitter_ms >= 0.0
    assert 0.0 <= report.max_delta_ms <= 100.0


class _Reference(PythonStreamStats):
    """`StreamStats.receive` as written before the usual case was inlined: `_timing` for
    every packet after the first."""

    __slots__ = ()

    def receive(
        self,
        at: int,
        sequence: int,
        timestamp: int,
        clock_rate: int,
        marker: bool = False,
        comfort_noise: bool = False,
    ) -> None:
        if self.packets == 0:
            super().receive(at, sequence, timestamp, clock_rate, marker, comfort_noise)
            return
        step = (sequence - self._highest) & 0xFFFF
        if 0 < step < 3000:
            self._highest += step
            self._window = ((self._window << step) | 1) & ((1 << 128) - 1)
        else:
            self._sequence(sequence, step)
        self._timing(at, timestamp, clock_rate, marker or comfort_noise)
        self._after_comfort_noise = comfort_noise
        self.last_at = at
        self.packets += 1


def _state(stats: StreamStats) -> dict[str, object]:
    return {name: getattr(stats, name) for name in PythonStreamStats.__slots__}


# steps mostly in order (the inline case), with jumps, steps back, repeats and restarts
_sequence_steps = st.one_of(
    st.integers(1, 3), st.integers(-5, 0), st.integers(2990, 3010), st.integers(0, 0xFFFF)
)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 60 * MS),
            _sequence_steps,
            st.integers(-400, 2000),
            st.sampled_from([0, 8000, 8000, 16000, 48000, 90000]),
            st.booleans(),
            st.booleans(),
        ),
        max_size=80,
    )
)
def test_inline_usual_case_equals_the_reference(
    steps: list[tuple[int, int, int, int, bool, bool]],
) -> None:
    # every figure, floats included, bit for bit after every packet
    fast, reference = PythonStreamStats(), _Reference()
    at, sequence, timestamp = 0, 65_000, 0xFFFF_F000
    for gap, sequence_step, timestamp_step, clock, marker, comfort_noise in steps:
        at += gap
        sequence = (sequence + sequence_step) & 0xFFFF
        timestamp = (timestamp + timestamp_step) & 0xFFFFFFFF
        fast.receive(at, sequence, timestamp, clock, marker, comfort_noise)
        reference.receive(at, sequence, timestamp, clock, marker, comfort_noise)
        assert _state(fast) == _state(reference)
    assert fast.report() == reference.report()


def _figures(stats: StreamStats) -> tuple[object, ...]:
    return (
        stats.report(),
        stats.jitter,
        stats.extended_highest_sequence,
        stats.max_delta,
        stats.reordered,
        stats.sequence_resets,
    )


@pytest.mark.skipif(_compiled is None, reason="the compiled twin is not built")
@given(
    st.lists(
        st.tuples(
            # gaps up to days (a held call) and back in time (merged interfaces)
            st.one_of(st.integers(0, 60 * MS), st.integers(-(10**12), 3 * 86_400 * 10**9)),
            _sequence_steps,
            st.one_of(st.integers(-400, 2000), st.integers(0, 0xFFFFFFFF)),
            st.sampled_from([0, 1, 8000, 16000, 48000, 90000, 2**32]),
            st.booleans(),
            st.booleans(),
        ),
        max_size=80,
    ),
    st.integers(0, 2**62),
)
def test_compiled_twin_equals_the_python_class(
    steps: list[tuple[int, int, int, int, bool, bool]], start: int
) -> None:
    # every figure, floats included, bit for bit after every packet
    compiled, python = IMPLEMENTATIONS[1](), PythonStreamStats()
    at, sequence, timestamp = start, 65_000, 0xFFFF_F000
    for gap, sequence_step, timestamp_step, clock, marker, comfort_noise in steps:
        at = max(0, at + gap)
        sequence = (sequence + sequence_step) & 0xFFFF
        timestamp = (timestamp + timestamp_step) & 0xFFFFFFFF
        compiled.receive(at, sequence, timestamp, clock, marker, comfort_noise)
        python.receive(at, sequence, timestamp, clock, marker, comfort_noise)
        assert _figures(compiled) == _figures(python)


@pytest.mark.skipif(_compiled is None, reason="the compiled twin is not built")
def test_compiled_twin_clips_what_no_packet_carries() -> None:
    stats = IMPLEMENTATIONS[1]()
    stats.receive(2**70, 70_000, 2**40, 10**30)  # no crash: clipped to the fields' ranges
    stats.receive(-(2**70), 1, 1, -5)
    assert stats.packets == 2
