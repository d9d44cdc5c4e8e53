"""Link, network and transport decoding: synthetic frames for every supported layout, the
fast path against the reference path, and fuzzing."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.capture.decode import (
    FRAME_ERRORS,
    MalformedFrameError,
    format_ip,
    ip_packet,
    link_layer,
    tcp_segment,
    udp_payload,
)
from callscope.capture.source import CaptureConfig, PacketPipeline
from callscope.core import Datagram, Endpoint, Transport
from tests.capture import wire

AT = 1_764_000_000_000_000_000
SIP = b"OPTIONS sip:a@example.org SIP/2.0\r\nContent-Length: 0\r\n\r\n"


def decode(linktype: int, frame: bytes, **config: int) -> tuple[list[Datagram], PacketPipeline]:
    pipeline = PacketPipeline(CaptureConfig(**config))
    return pipeline.push(AT, linktype, frame), pipeline


def one(linktype: int, frame: bytes) -> Datagram:
    datagrams, pipeline = decode(linktype, frame)
    assert pipeline.counters.errors == {}
    assert len(datagrams) == 1
    return datagrams[0]


V4 = wire.ipv4("192.0.2.10", "198.51.100.7", wire.udp(5060, 5080, SIP))
V6 = wire.ipv6("2001:db8::10", "2001:db8::7", wire.udp(5060, 5080, SIP))
EXPECT_V4 = (Endpoint("192.0.2.10", 5060), Endpoint("198.51.100.7", 5080))
EXPECT_V6 = (Endpoint("2001:db8::10", 5060), Endpoint("2001:db8::7", 5080))


@pytest.mark.parametrize(
    ("linktype", "frame", "vlan"),
    [
        (1, wire.ether(V4), None),
        (1, wire.ether(V4, tags=((0x8100, 42),)), 42),  # 802.1Q
        (1, wire.ether(V4, tags=((0x88A8, 300), (0x8100, 42))), 42),  # QinQ: inner tag kept
        (1, wire.ether(V4, tags=((0x9100, 7), (0x8100, 43))), 43),  # pre-standard QinQ
        (101, V4, None),  # raw IP
        (12, V4, None),
        (14, V4, None),
        (228, V4, None),
        (113, wire.sll(V4), None),  # Linux cooked
        (276, wire.sll2(V4), None),  # Linux cooked v2
        (0, struct.pack("<I", 2) + V4, None),  # BSD loopback, little-endian host
        (0, struct.pack(">I", 2) + V4, None),  # BSD loopback, big-endian host
        (108, struct.pack(">I", 2) + V4, None),  # OpenBSD loopback
        (1, wire.ether(b"\x11\x00\x12\x34\x00\x00\x00\x21" + V4, ethertype=0x8864), None),
        (1, wire.ether(b"\x00\x01\x01\x40" + V4, ethertype=0x8847), None),  # MPLS, 1 label
        (1, wire.ether(b"\x00\x01\x00\x40\x00\x02\x01\x40" + V4, ethertype=0x8847), None),
    ],
)
def test_ipv4_behind_every_link_type(linktype: int, frame: bytes, vlan: int | None) -> None:
    datagram = one(linktype, frame)
    assert (datagram.src, datagram.dst) == EXPECT_V4
    assert datagram.payload == SIP
    assert datagram.vlan == vlan
    assert datagram.transport is Transport.UDP
    assert datagram.at == AT


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, wire.ether(V6, ethertype=0x86DD)),
        (1, wire.ether(V6, ethertype=0x86DD, tags=((0x8100, 5),))),
        (101, V6),
        (229, V6),
        (113, wire.sll(V6, 0x86DD)),
        (276, wire.sll2(V6, 0x86DD)),
        (0, struct.pack("<I", 24) + V6),  # NetBSD/OpenBSD AF_INET6
        (0, struct.pack("<I", 28) + V6),  # FreeBSD
        (0, struct.pack("<I", 30) + V6),  # Darwin
        (108, struct.pack(">I", 24) + V6),
    ],
)
def test_ipv6_behind_link_types(linktype: int, frame: bytes) -> None:
    datagram = one(linktype, frame)
    assert (datagram.src, datagram.dst, datagram.payload) == (*EXPECT_V6, SIP)


def test_ipv6_extension_headers() -> None:
    # hop-by-hop -> routing -> destination options -> UDP (RFC 8200 4.1 order)
    chain = wire.ext(43) + wire.ext(60, b"\0" * 14) + wire.ext(17) + wire.udp(5060, 5080, SIP)
    frame = wire.ether(
        wire.ipv6("2001:db8::10", "2001:db8::7", chain, next_header=0), ethertype=0x86DD
    )
    datagram = one(1, frame)
    assert (datagram.src, datagram.dst, datagram.payload) == (*EXPECT_V6, SIP)


def test_ipv4_options_are_skipped() -> None:
    options = b"\x94\x04\x00\x00"  # router alert
    frame = wire.ether(
        wire.ipv4("192.0.2.10", "198.51.100.7", wire.udp(5060, 5080, SIP), options=options)
    )
    assert one(1, frame).payload == SIP


def test_ethernet_padding_and_udp_length_cut_the_payload() -> None:
    frame = wire.ether(wire.ipv4("192.0.2.10", "198.51.100.7", wire.udp(1, 2, b"ab"))) + b"\0" * 20
    assert one(1, frame).payload == b"ab"


def test_tcp_header() -> None:
    segment = wire.tcp(5060, 40000, 123456, "PA", b"data")
    assert tcp_segment(segment) == (5060, 40000, 123456, 0x18, b"data")


def test_non_ip_and_other_protocols_are_counted() -> None:
    arp = wire.ether(b"\0" * 28, ethertype=0x0806)
    icmp = wire.ether(wire.ipv4("192.0.2.1", "192.0.2.2", b"\x08\0" + b"\0" * 6, proto=1))
    pipeline = PacketPipeline()
    assert pipeline.push(AT, 1, arp) == []
    assert pipeline.push(AT, 1, icmp) == []
    assert (pipeline.counters.non_ip, pipeline.counters.non_udp_tcp) == (1, 1)
    assert pipeline.counters.packets == 2


@pytest.mark.parametrize(
    ("linktype", "frame", "kind"),
    [
        (1, b"\x01\x02", "link.short"),
        (147, V4, "link.unsupported"),
        (1, wire.ether(V4[:30]), "ipv4.short"),
        (1, wire.ether(b"\x45\x00\x00\x0a" + V4[4:]), "ipv4.header"),  # total length < 20
        (1, wire.ether(b"\x43" + V4[1:]), "ipv4.header"),  # IHL 3
        (101, V6[:39], "ipv6.header"),
        (101, V6[:60], "ipv6.short"),
        (101, wire.ipv6("::1", "::1", b"\x11\x05" + b"\0" * 6, next_header=0), "ipv6.extension"),
        (101, wire.ipv4("192.0.2.1", "192.0.2.2", wire.udp(1, 2, b"x", length=40)), "udp.header"),
        (101, wire.ipv4("192.0.2.1", "192.0.2.2", b"\0" * 12, proto=6), "tcp.header"),
    ],
)
def test_bad_frames_are_counted_by_kind(linktype: int, frame: bytes, kind: str) -> None:
    datagrams, pipeline = decode(linktype, frame)
    assert datagrams == []
    assert pipeline.counters.errors == {kind: 1}


def test_malformed_frame_error_messages_are_fixed() -> None:
    err = MalformedFrameError("udp.header")
    assert (str(err), err.kind) == ("UDP header invalid", "udp.header")
    assert FRAME_ERRORS["link.unsupported"] == "link type not supported"


# -- fast path against the reference decoders ------------------------------------------------


def both_paths(frame: bytes, linktype: int = 1) -> tuple[list[Datagram], list[Datagram]]:
    fast = PacketPipeline()
    slow = PacketPipeline()
    return list(fast.datagrams([(AT, linktype, frame, len(frame))])), slow.push(AT, linktype, frame)


def test_datagram_built_through_slots_equals_constructor() -> None:
    fast, slow = both_paths(wire.ether(V4))
    expected = Datagram(AT, *EXPECT_V4, Transport.UDP, SIP, "pcap", None)  # type: ignore[arg-type]
    assert fast == slow == [expected]
    assert hash(fast[0]) == hash(expected)
    assert repr(fast[0]) == repr(expected)


FAST_LAYOUTS = [
    (1, wire.ether(V4)),
    (1, wire.ether(V4, tags=((0x8100, 42),))),
    (113, wire.sll(V4)),
    (276, wire.sll2(V4)),
]


@pytest.mark.parametrize(("linktype", "frame"), FAST_LAYOUTS)
def test_fast_path_layouts(linktype: int, frame: bytes) -> None:
    fast, slow = both_paths(frame, linktype)
    assert fast == slow
    assert [d.payload for d in fast] == [SIP]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(FAST_LAYOUTS), st.data())
def test_fast_path_agrees_with_reference_on_mutated_frames(
    layout: tuple[int, bytes], data: st.DataObject
) -> None:
    linktype, original = layout
    frame = bytearray(original)
    for _ in range(data.draw(st.integers(0, 4))):
        # mutate the link, IP and UDP headers where the fast path makes its decisions
        frame[data.draw(st.integers(0, 49))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    fast, slow = both_paths(bytes(frame[:cut]), linktype)
    assert fast == slow


# -- addresses ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=16, max_size=16) | st.binary(min_size=4, max_size=4))
def test_format_ip_matches_ipaddress(raw: bytes) -> None:
    assert format_ip(raw) == str(ipaddress.ip_address(raw))


@pytest.mark.parametrize("text", ["::ffff:192.0.2.1", "::192.0.2.1", "2001:db8:0:1:1:1:1:1", "::"])
def test_format_ip_special_ipv6_forms(text: str) -> None:
    raw = wire.ip6(text)
    assert format_ip(raw) == str(ipaddress.IPv6Address(raw))


# -- fuzz -----------------------------------------------------------------------------------

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(LINKTYPES), st.binary(max_size=200))
def test_fuzz_decoders_raise_only_malformed_frame(linktype: int, frame: bytes) -> None:
    try:
        ethertype, offset, _vlan = link_layer(linktype, frame)
        ip = ip_packet(frame, ethertype, offset)
        if ip is not None and not ip.fragment:
            udp_payload(ip.payload)
            tcp_segment(ip.payload)
    except MalformedFrameError:
        pass


PREFIXES = [
    wire.ether(b"")[:12] + b"\x08\x00",
    wire.ether(b"")[:12] + b"\x86\xdd",
    wire.ether(b"")[:12] + b"\x81\x00\x00\x2a\x08\x00",
    wire.sll(b""),
    b"\x02\0\0\0",
]


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(PREFIXES), st.binary(max_size=120))
def test_fuzz_pipeline_never_raises_and_never_hits_the_safety_net(
    prefix: bytes, rest: bytes
) -> None:
    pipeline = PacketPipeline()
    for linktype in (1, 113, 0, 101):
        frame = prefix + rest
        list(pipeline.datagrams([(AT, linktype, frame, len(frame))]))
    assert "frame.malformed" not in pipeline.counters.errors
    assert pipeline.counters.packets == 4
