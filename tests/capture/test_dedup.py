"""Mirror-port duplicate suppression."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscope.capture.dedup import MIN_SWEEP, DuplicateFilter
from callscope.capture.source import CaptureConfig, CaptureCounters, PacketPipeline, read_file
from tests.capture import wire

AT = 1_764_000_000_000_000_000
US = 1_000
RTP = b"\x80\x00\x00\x01" + b"\0" * 168


def packet(*, ttl: int = 64, ident: int = 9, payload: bytes = RTP) -> bytes:
    return wire.ipv4("10.0.0.1", "10.0.0.2", wire.udp(7000, 6000, payload), ttl=ttl, ident=ident)


def run(frames: list[tuple[int, bytes]], **config: int) -> tuple[list[bytes], CaptureCounters]:
    pipeline = PacketPipeline(CaptureConfig(**config))
    records = [(at, 1, frame, len(frame)) for at, frame in frames]
    return [d.payload for d in pipeline.datagrams(records)], pipeline.counters


def test_hep_capture_triplicated_on_a_docker_bridge(testdata: Path) -> None:
    # every HEP message is captured 3 times: to the broadcast address from 192.168.137.247
    # (a different IP packet), and twice on the docker bridge 172.17.0.1 -> 172.17.0.2,
    # 10-20 us apart (the same IP packet: suppressed)
    name = testdata / "hep/hep3_compressed.pcap.pcapng"
    every = list(read_file(name, config=CaptureConfig(dedup_window_ns=0)))
    counters = CaptureCounters()
    kept = list(read_file(name, counters=counters))
    assert (len(every), len(kept), counters.duplicates) == (21, 14, 7)
    assert kept == [d for i, d in enumerate(every) if i % 3 != 2]


def test_rfc4733_end_packets_sent_back_to_back_are_kept(testdata: Path) -> None:
    # SIPp's digit file: 3 identical end-of-event packets 42 us apart, different IP ids
    counters = CaptureCounters()
    got = list(read_file(testdata / "pcap/rtp-only/sipp_dtmf_2833_1.pcap", counters=counters))
    assert len(got) == 10
    assert got[-1].payload == got[-2].payload == got[-3].payload
    assert counters.duplicates == 0


@pytest.mark.parametrize("name", ["generated/sipp_20calls_g711a_dtmf.pcap", "pcap/SIP_DTMF2.cap"])
def test_no_false_duplicates_in_clean_captures(testdata: Path, name: str) -> None:
    counters = CaptureCounters()
    for _datagram in read_file(testdata / name, counters=counters):
        pass
    assert counters.duplicates == 0


def test_same_packet_with_other_ttl_and_link_header_is_a_duplicate() -> None:
    first = wire.ether(packet(ttl=64))
    routed = wire.ether(packet(ttl=63), tags=((0x8100, 20),))  # other tap, other VLAN
    got, counters = run([(AT, first), (AT + 30 * US, routed)])
    assert got == [RTP]
    assert counters.duplicates == 1


def test_other_ip_id_or_outside_the_window_is_kept() -> None:
    got, _ = run([(AT, wire.ether(packet(ident=1))), (AT + 10 * US, wire.ether(packet(ident=2)))])
    assert got == [RTP, RTP]
    same = wire.ether(packet())
    got, _ = run([(AT, same), (AT + 6_000 * US, same)])
    assert got == [RTP, RTP]
    got, _ = run([(AT, same), (AT + 6_000 * US, same)], dedup_window_ns=10_000_000)
    assert got == [RTP]
    got, _ = run([(AT, same), (AT, same)], dedup_window_ns=0)
    assert got == [RTP, RTP]


def test_ipv6_has_no_identification_so_identical_packets_are_suppressed() -> None:
    six = wire.ether(wire.ipv6("2001:db8::1", "2001:db8::2", wire.udp(1, 2, RTP)), ethertype=0x86DD)
    hop = bytearray(six)
    hop[14 + 7] = 3  # another hop limit
    got, counters = run([(AT, six), (AT + US, bytes(hop))])
    assert got == [RTP] and counters.duplicates == 1


def test_time_going_backwards_within_the_window() -> None:
    same = wire.ether(packet())
    got, _ = run([(AT + 50 * US, same), (AT, same)])
    assert got == [RTP]


def test_filter_memory_is_bounded() -> None:
    dedup = DuplicateFilter(window_ns=10**12, max_entries=2000)
    for i in range(10_000):
        assert not dedup.seen(i, AT + i)
    assert len(dedup) <= 2 * 2000
    assert dedup.overflows >= 1
    fresh = DuplicateFilter(window_ns=1_000)
    for i in range(5 * MIN_SWEEP):
        fresh.seen(i, AT + i * 10_000)  # each entry is stale by the next one
    assert len(fresh) <= MIN_SWEEP + 1
    assert fresh.overflows == 0
