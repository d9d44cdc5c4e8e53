"""The HEP collector's decode step: SIP out, everything else counted; fast path = reference."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.capture.hepdecode import (
    MALFORMED_NO_ADDRESS,
    MALFORMED_NOT_SIP,
    HepCounters,
    HepDecoder,
)
from callscope.capture.hepwalk import _LAYOUTS, MAX_LAYOUTS, hep_fields
from callscope.capture.source import CaptureConfig, read_file
from callscope.core import Datagram, Endpoint, Timestamp, Transport
from callscope.protocol.errors import HepParseError
from callscope.protocol.hep import HepChunk, HepChunkType, HepPacket, HepProtoType
from callscope.protocol.sip import looks_like_sip

INVITE = (
    b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
    b"Call-ID: abc@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
A, B = Endpoint("10.0.0.1", 5060), Endpoint("10.0.0.2", 5070)
AT = 1_700_000_000_123_456_000


def hep(payload: bytes = INVITE, **fields: object) -> bytes:
    return bytes(HepPacket.build(payload=payload, src=A, dst=B, at=AT, **fields))  # type: ignore[arg-type]


def hep_datagrams(path: Path) -> list[bytes]:
    """Every HEP datagram of a capture as it was on the wire (mirror copies included)."""
    config = CaptureConfig(dedup_window_ns=0)
    return [d.payload for d in read_file(path, config=config) if d.payload[:4] == b"HEP3"]


def test_sip_becomes_a_datagram_with_the_inner_addresses_and_agent_time() -> None:
    out = HepDecoder().decode(hep(vlan=12, ip_proto=6), arrival_ns=5)
    assert out == Datagram(Timestamp(AT), A, B, Transport.TCP, INVITE, "hep", 12)


def test_without_a_timestamp_the_arrival_time_is_used() -> None:
    chunks = [c for c in HepPacket.parse(hep()).chunks if c.type not in (9, 10)]
    data = bytes(HepPacket(chunks=tuple(chunks)))
    out = HepDecoder().decode(data, arrival_ns=77)
    assert out is not None and out.at == 77


@pytest.mark.parametrize(
    ("data", "type_", "malformed"),
    [
        (hep(b'{"type":200}', proto_type=HepProtoType.RTCP_JSON), 5, {}),
        (hep(b"<13>log line", proto_type=HepProtoType.LOG), 100, {}),
        (hep(b"\x80\x00" + bytes(30)), 1, {MALFORMED_NOT_SIP: 1}),
        (hep(b"\r\n\r\n"), 1, {MALFORMED_NOT_SIP: 1}),
    ],
)
def test_other_types_and_non_sip_payloads_are_counted_not_passed(
    data: bytes, type_: int, malformed: dict[str, int]
) -> None:
    decoder = HepDecoder()
    assert decoder.decode(data, 0) is None
    assert decoder.counters.by_type == {type_: 1}
    assert decoder.counters.malformed == malformed
    assert decoder.counters.sip == 0


def test_sip_without_addresses_is_malformed() -> None:
    chunks = [c for c in HepPacket.parse(hep()).chunks if c.type not in (3, 4)]
    decoder = HepDecoder()
    assert decoder.decode(bytes(HepPacket(chunks=tuple(chunks))), 0) is None
    assert decoder.counters.malformed == {MALFORMED_NO_ADDRESS: 1}
    assert decoder.counters.anomalies[-1].kind == "hep.parse"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "HEP packet shorter than 6 octets"),
        (b"GET / HTTP/1.1\r\n\r\n", "HEP magic or version is not recognised"),
        (b"HEP3\x00\x0bzzzzz", "HEP chunk header is truncated"),
        (hep()[:-3], "HEP total length exceeds the datagram"),
    ],
)
def test_malformed_packets_are_counted_by_reason(data: bytes, message: str) -> None:
    decoder = HepDecoder()
    assert decoder.decode(data, 0) is None
    assert decoder.counters.malformed == {message: 1}
    assert decoder.counters.rejected == 1
    assert decoder.counters.packets == 1


def test_wrong_or_missing_auth_key_is_dropped_and_counted() -> None:
    decoder = HepDecoder(auth_key="s3cret")
    assert decoder.decode(hep(auth_key="s3cret"), 0) is not None
    assert decoder.decode(hep(auth_key="s3cret\0"), 1) is not None  # C string with its NUL
    assert decoder.decode(hep(auth_key="guess"), 2) is None
    assert decoder.decode(hep(), 3) is None
    counters = decoder.counters
    assert (counters.sip, counters.auth_failures, counters.rejected) == (2, 2, 2)
    assert [a.kind for a in counters.anomalies] == ["hep.auth", "hep.auth"]
    assert counters.by_type == {1: 2}  # refused packets are not counted by type


def test_agents_outside_the_allow_list_are_dropped_and_counted() -> None:
    decoder = HepDecoder(capture_ids=frozenset({2001}))
    assert decoder.decode(hep(capture_id=2001), 0) is not None
    assert decoder.decode(hep(capture_id=99), 1) is None
    assert decoder.decode(hep(capture_id=99, node_name="x"), 2) is None
    assert decoder.decode(hep(node_name="no id"), 3) is None
    assert decoder.counters.unknown_agents == {99: 2, -1: 1}
    assert decoder.counters.anomalies[-1].detail == "HEP capture id is not allowed"


def test_the_same_datagram_twice_is_a_duplicate_within_the_window() -> None:
    decoder = HepDecoder(dedup_window_ns=1000)
    data = hep()
    assert decoder.decode(data, 0) is not None
    assert decoder.decode(data, 500) is None
    assert decoder.decode(data, 5000) is not None  # a retransmission much later is kept
    assert decoder.counters.duplicates == 1


def test_only_sip_is_checked_for_duplicates_and_a_duplicate_is_not_counted_by_type() -> None:
    decoder = HepDecoder(dedup_window_ns=1000)
    report = hep(b'{"type":200}', proto_type=HepProtoType.RTCP_JSON)
    assert [decoder.decode(data, 0) for data in (report, report)] == [None, None]
    sip = hep()
    assert decoder.decode(sip, 0) is not None
    assert decoder.decode(sip, 1) is None
    counters = decoder.counters
    assert (counters.by_type, counters.duplicates, counters.packets) == ({5: 2, 1: 1}, 1, 4)
    assert len(decoder.dedup) == 1  # the reports were not remembered


def test_a_duplicate_with_the_wrong_key_is_an_auth_failure() -> None:
    decoder = HepDecoder(auth_key="right", dedup_window_ns=1000)
    wrong = hep(auth_key="wrong")
    assert [decoder.decode(wrong, 0), decoder.decode(wrong, 1)] == [None, None]
    assert (decoder.counters.auth_failures, decoder.counters.duplicates) == (2, 0)


def test_compressed_and_legacy_packets_take_the_reference_path() -> None:
    decoder = HepDecoder()
    compressed = hep(compress=True)
    assert hep_fields(compressed) is None
    assert decoder.decode(compressed, 0) == Datagram(
        Timestamp(AT), A, B, Transport.UDP, INVITE, "hep"
    )
    v2 = HepPacket(version=2, src=A, dst=B, at=AT, payload=INVITE, ip_family=2, ip_proto=17)
    assert decoder.decode(bytes(v2), 0) == Datagram(
        Timestamp(AT), A, B, Transport.UDP, INVITE, "hep"
    )


def test_ipv6_addresses() -> None:
    a, b = Endpoint("2001:db8::1", 5060), Endpoint("2001:db8::2", 5060)
    data = bytes(HepPacket.build(payload=INVITE, src=a, dst=b, at=AT))
    out = HepDecoder().decode(data, 0)
    assert out is not None and (out.src, out.dst) == (a, b)


# -- the reference captures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sip", "by_type", "duplicates"),
    [
        ("hep.pcap", 6, {1: 6, 100: 1, 5: 1}, 0),
        ("hep3_compressed.pcap.pcapng", 7, {1: 7}, 14),  # every message captured 3 times
        ("kamailio_5calls_hep_only.pcap", 65, {1: 65}, 0),
        ("kamailio_5calls_sip_and_hep.pcap", 65, {1: 65}, 0),
    ],
)
def test_reference_captures(
    testdata: Path, name: str, sip: int, by_type: dict[int, int], duplicates: int
) -> None:
    decoder = HepDecoder()
    out = [decoder.decode(data, 0) for data in hep_datagrams(testdata / "hep" / name)]
    datagrams = [d for d in out if d is not None]
    assert len(datagrams) == sip
    assert len({d.payload for d in datagrams}) == sip  # distinct messages
    counters = decoder.counters
    assert (counters.by_type, counters.duplicates, counters.malformed) == (by_type, duplicates, {})


def test_fast_path_takes_every_reference_datagram_but_compressed_ones(testdata: Path) -> None:
    for name in ("hep.pcap", "kamailio_5calls_hep_only.pcap"):
        for data in hep_datagrams(testdata / "hep" / name):
            slow = HepDecoder()._slow(data)
            assert hep_fields(data) == slow  # walked (the layout is learned)
            assert hep_fields(data) == slow  # by the agent's layout


# -- fuzz ------------------------------------------------------------------------------------

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "capture_id": st.integers(0, 2**32 - 1),
        "auth_key": st.text(max_size=8),
        "vlan": st.integers(0, 4095),
        "node_name": st.text(max_size=8),
        "correlation_id": st.text(max_size=8),
        "proto_type": st.integers(0, 255),
        "ip_proto": st.sampled_from([6, 17, 132, 0, 255]),
    },
)
EXTRA = st.lists(
    st.builds(HepChunk, st.integers(0, 3), st.integers(0, 25), st.binary(max_size=20)),
    max_size=4,
)


@given(FIELDS, EXTRA, st.binary(max_size=60))
def test_fast_path_agrees_with_the_reference(
    fields: dict[str, object], extra: list[HepChunk], payload: bytes
) -> None:
    built = HepPacket.build(payload=INVITE + payload, src=A, dst=B, at=AT, **fields)  # type: ignore[arg-type]
    data = bytes(HepPacket(chunks=built.chunks + tuple(extra)))  # extras unchecked
    assert_agrees(data)


def assert_agrees(data: bytes) -> None:
    """The fast path, walked and then by a learned layout, gives the reference's fields or
    defers (None); where the reference refuses, it always defers."""
    fast, again = hep_fields(data), hep_fields(data)
    try:
        slow = HepDecoder()._slow(data)
    except HepParseError:
        assert fast is None and again is None
        return
    assert fast is None or fast == slow
    assert again is None or again == slow


def _mutations(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    mutable = bytearray(data)
    for position, value in cuts:
        if mutable:
            mutable[position % len(mutable)] = value
    return bytes(mutable)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    decoder = HepDecoder()
    decoder.decode(data, 0)
    decoder.decode(b"HEP3" + struct.pack("!H", len(data) + 6) + data, 0)
    assert decoder.counters.packets == 2


@given(FIELDS, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6))
def test_damaged_packets_never_raise(
    fields: dict[str, object], cuts: list[tuple[int, int]]
) -> None:
    counters = HepCounters()
    decoder = HepDecoder(auth_key="k", capture_ids=frozenset({1}), counters=counters)
    data = _mutations(hep(**fields), cuts)  # type: ignore[arg-type]
    out = decoder.decode(data, 0)
    assert counters.packets == 1
    assert (out is None) == (counters.sip == 0)
    if out is not None:
        assert looks_like_sip(out.payload)


def test_chunk_type_of_every_fixed_size_is_checked() -> None:
    # a proto type chunk of two octets: the reference refuses it, so must the fast path
    chunks = list(HepPacket.parse(hep()).chunks)
    chunks.append(HepChunk(0, HepChunkType.PROTO_TYPE, b"\x00\x01"))
    data = bytes(HepPacket(chunks=tuple(chunks)))
    decoder = HepDecoder()
    assert decoder.decode(data, 0) is None
    assert decoder.counters.malformed == {"HEP chunk has the wrong size for its type": 1}


def test_an_agent_clock_far_off_is_replaced_by_the_arrival_time() -> None:
    decoder = HepDecoder(max_skew_ns=10**9)
    near = decoder.decode(hep(), arrival_ns=AT + 10**9 - 1)
    far = decoder.decode(hep(b"SIP/2.0 200 OK\r\n\r\n"), arrival_ns=AT - 10**9 - 1)
    assert near is not None and near.at == AT
    assert far is not None and far.at == AT - 10**9 - 1
    assert decoder.counters.clock_skew == 1


def test_an_agent_layout_is_learned_and_other_layouts_still_walk() -> None:
    _LAYOUTS.clear()
    plain, keyed = hep(), hep(auth_key="k", capture_id=7)
    assert hep_fields(plain) == hep_fields(plain) == HepDecoder()._slow(plain)
    assert len(_LAYOUTS) == 1
    assert hep_fields(keyed) == hep_fields(keyed) == HepDecoder()._slow(keyed)
    assert len(_LAYOUTS) == 2
    # a payload of another length, and another vendor's chunk: still right
    longer = hep(INVITE + b"x" * 300, extra_chunks=[HepChunk(0x0014, 9, b"\x01\x02")])
    assert hep_fields(longer) == hep_fields(longer) == HepDecoder()._slow(longer)
    for agent in range(MAX_LAYOUTS + 2):  # more agents than remembered: oldest forgotten
        other = hep(node_name="n" * (agent + 1))
        assert hep_fields(other) == HepDecoder()._slow(other)
    assert len(_LAYOUTS) == MAX_LAYOUTS
    assert hep_fields(plain) == HepDecoder()._slow(plain)


def test_a_layout_never_reads_past_a_shorter_or_different_packet() -> None:
    _LAYOUTS.clear()
    data = hep()
    hep_fields(data)
    for cut in range(6, len(data)):
        assert_agrees(b"HEP3" + cut.to_bytes(2, "big") + data[6:cut])
    other_type = bytearray(data)
    other_type[data.index(b"\x00\x00\x00\x0f") + 3] = 0x13  # the payload as a node name
    assert_agrees(bytes(other_type))
    assert hep_fields(bytes(other_type)) is not None
