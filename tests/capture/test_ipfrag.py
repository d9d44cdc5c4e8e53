"""IPv4 and IPv6 fragment reassembly: order, overlaps, missing pieces, bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.capture.ipfrag import FragmentReassembler
from callscope.capture.source import CaptureConfig, PacketPipeline
from callscope.core import Datagram, Endpoint, Transport
from tests.capture import wire

AT = 1_764_000_000_000_000_000
MS = 1_000_000
# a large INVITE, as the anchors lost 3-5 % of calls by not reassembling these
INVITE = wire.sip_request("INVITE", b"v=0\r\n" + b"a=x-padding:" + b"z" * 3000 + b"\r\n")
UDP = wire.udp(5060, 5060, INVITE)


def v4_fragments(l4: bytes, size: int = 1480, ident: int = 77) -> list[bytes]:
    pieces = [l4[i : i + size] for i in range(0, len(l4), size)]
    return [
        wire.ether(
            wire.ipv4(
                "192.0.2.1",
                "192.0.2.2",
                piece,
                ident=ident,
                offset=i * size,
                more=i < len(pieces) - 1,
            )
        )
        for i, piece in enumerate(pieces)
    ]


def v6_fragments(l4: bytes, next_header: int = 17, size: int = 1232) -> list[bytes]:
    pieces = [l4[i : i + size] for i in range(0, len(l4), size)]
    return [
        wire.ether(
            wire.ipv6(
                "2001:db8::1",
                "2001:db8::2",
                wire.frag6(next_header, i * size, i < len(pieces) - 1, 0xABCDEF, piece),
                next_header=44,
            ),
            ethertype=0x86DD,
        )
        for i, piece in enumerate(pieces)
    ]


def run(
    frames: list[bytes], step_ns: int = MS, **config: int
) -> tuple[list[Datagram], PacketPipeline]:
    pipeline = PacketPipeline(CaptureConfig(**config))
    records = [(AT + i * step_ns, 1, f, len(f)) for i, f in enumerate(frames)]
    return list(pipeline.datagrams(records)), pipeline


def expect_invite(datagrams: list[Datagram], at: int, version: int = 4) -> None:
    assert len(datagrams) == 1
    d = datagrams[0]
    assert d.payload == INVITE
    assert d.transport is Transport.UDP
    assert d.at == at
    src = "192.0.2.1" if version == 4 else "2001:db8::1"
    assert d.src == Endpoint(src, 5060)


def test_ipv4_in_order() -> None:
    frames = v4_fragments(UDP)
    assert len(frames) == 3
    datagrams, pipeline = run(frames)
    expect_invite(datagrams, AT + 2 * MS)
    assert (pipeline.counters.fragments, pipeline.counters.reassembled) == (3, 1)
    assert len(pipeline.fragments) == 0


def test_ipv4_out_of_order() -> None:
    frames = v4_fragments(UDP, size=512)
    random.Random(5).shuffle(frames)
    datagrams, _pipeline = run(frames)
    expect_invite(datagrams, AT + (len(frames) - 1) * MS)


def test_ipv4_identical_overlap_and_duplicate_are_harmless() -> None:
    frames = v4_fragments(UDP, size=1024)
    overlap = wire.ether(
        wire.ipv4("192.0.2.1", "192.0.2.2", UDP[512:2048], ident=77, offset=512, more=True)
    )
    datagrams, pipeline = run([frames[0], overlap, frames[1], frames[1], frames[2], frames[3]])
    expect_invite(datagrams, AT + 5 * MS)
    assert pipeline.fragments.counters.duplicates >= 1
    assert pipeline.counters.duplicates == 1  # the repeated frame, within the mirror window


def test_ipv4_conflicting_overlap_drops_the_datagram() -> None:
    frames = v4_fragments(UDP, size=1024)
    evil = wire.ether(
        wire.ipv4("192.0.2.1", "192.0.2.2", b"X" * 1024, ident=77, offset=512, more=True)
    )
    datagrams, pipeline = run([frames[0], evil, *frames[1:]])
    assert datagrams == []
    assert pipeline.fragments.counters.overlaps == 1
    assert pipeline.counters.errors["frag.dropped"] >= 1


def test_missing_piece_times_out_by_packet_time() -> None:
    frames = v4_fragments(UDP)
    later = wire.ether(wire.ipv4("192.0.2.9", "192.0.2.2", wire.udp(1, 2, b"rtp")))
    datagrams, pipeline = run([frames[0], frames[2], later], step_ns=20_000 * MS)
    assert [d.payload for d in datagrams] == [b"rtp"]
    assert pipeline.fragments.counters.timeouts == 1
    assert len(pipeline.fragments) == 0
    # the missing piece arriving after the timeout does not complete anything
    datagrams, pipeline = run([frames[0], frames[2], later, frames[1]], step_ns=20_000 * MS)
    assert [d.payload for d in datagrams] == [b"rtp"]


def test_interleaved_datagrams_with_different_ids() -> None:
    a = v4_fragments(UDP, ident=1)
    b = v4_fragments(wire.udp(5062, 5060, INVITE), ident=2)
    datagrams, _pipeline = run([a[0], b[0], b[1], a[1], a[2], b[2]])
    assert [d.src.port for d in datagrams] == [5060, 5062]


def test_ipv6_fragments_out_of_order() -> None:
    frames = v6_fragments(UDP)
    datagrams, _pipeline = run(list(reversed(frames)))
    expect_invite(datagrams, AT + (len(frames) - 1) * MS, version=6)


def test_ipv6_destination_options_after_the_fragment_header() -> None:
    frames = v6_fragments(wire.ext(17) + UDP, next_header=60)
    datagrams, _pipeline = run(frames)
    expect_invite(datagrams, AT + (len(frames) - 1) * MS, version=6)


def test_ipv6_conflicting_overlap_drops_the_datagram() -> None:
    # RFC 5722: overlapping IPv6 fragments discard the whole datagram
    frames = v6_fragments(UDP, size=1024)
    evil = wire.ether(
        wire.ipv6(
            "2001:db8::1",
            "2001:db8::2",
            wire.frag6(17, 1024, True, 0xABCDEF, b"Y" * 1024),
            next_header=44,
        ),
        ethertype=0x86DD,
    )
    datagrams, _pipeline = run([frames[0], evil, *frames[1:]])
    assert datagrams == []


# -- FragmentReassembler directly ------------------------------------------------------------


def test_non_final_fragment_must_be_a_multiple_of_8() -> None:
    frags = FragmentReassembler()
    assert frags.push(AT, "k", 0, True, b"12345") is None
    assert frags.counters.invalid == 1
    assert len(frags) == 0


def test_fragment_beyond_65535_is_invalid() -> None:
    frags = FragmentReassembler()
    assert frags.push(AT, "k", 65528, False, b"0123456789") is None
    assert frags.counters.invalid == 1


def test_second_last_fragment_with_another_length_conflicts() -> None:
    frags = FragmentReassembler()
    assert frags.push(AT, "k", 8, False, b"a" * 8) is None
    assert frags.push(AT, "k", 16, False, b"a" * 8) is None
    assert frags.counters.overlaps == 1


def test_memory_bounds_evict_the_oldest() -> None:
    frags = FragmentReassembler(max_datagrams=3, max_bytes=10_000)
    for key in range(5):
        frags.push(AT + key, key, 0, True, b"\0" * 1000)
    assert len(frags) == 3
    assert frags.counters.evicted == 2
    frags.push(AT + 10, "big", 0, True, b"\0" * 9000)
    assert frags.held_bytes <= 10_000


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_order_and_duplication_reassembles_exactly(data: st.DataObject) -> None:
    payload = data.draw(st.binary(min_size=1, max_size=3000))
    size = data.draw(st.integers(1, 64)) * 8
    pieces = [(i, payload[i : i + size]) for i in range(0, len(payload), size)]
    order = data.draw(st.permutations(pieces))
    extra = data.draw(st.lists(st.sampled_from(pieces), max_size=4))
    frags = FragmentReassembler()
    results = []
    for offset, piece in [*extra, *order]:
        out = frags.push(AT, "k", offset, offset + len(piece) < len(payload), piece)
        if out is not None:
            results.append(out)
    assert results[:1] == [payload]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9000), st.booleans(), st.binary(max_size=600)), max_size=30)
)
def test_fuzz_arbitrary_fragments_stay_bounded(pushes: list[tuple[int, bool, bytes]]) -> None:
    frags = FragmentReassembler(max_datagrams=4, max_bytes=4096)
    for i, (offset, more, piece) in enumerate(pushes):
        result = frags.push(AT + i, i % 3, offset, more, piece)
        assert result is None or isinstance(result, bytes)
        assert frags.held_bytes <= 4096 and len(frags) <= 4


@pytest.mark.parametrize("window", [0, 5 * MS])
def test_fragments_and_dedup_together(window: int) -> None:
    frames = v4_fragments(UDP)
    datagrams, pipeline = run(
        [f for f in frames for _ in range(2)], step_ns=1000, dedup_window_ns=window
    )
    expect_invite(datagrams, datagrams[0].at if datagrams else 0)
    assert pipeline.counters.duplicates == (3 if window else 0)
