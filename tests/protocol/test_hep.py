"""HEPv3/v2 parsing against the independent TLV walker's ground truth, building, framing, fuzz."""

from __future__ import annotations

import json
import struct
import zlib
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.core import Endpoint
from callscope.protocol.errors import HepParseError
from callscope.protocol.hep import (
    MAX_PAYLOAD,
    HepChunk,
    HepChunkType,
    HepFramer,
    HepPacket,
    HepProtoType,
)
from tests.protocol._hep_pcap import UdpRecord, read_udp

HEP_CAPTURES = {
    # file: HEP datagrams in it (README)
    "hep.pcap": 8,
    "hep3_compressed.pcap.pcapng": 21,
    "kamailio_5calls_hep_only.pcap": 65,
    "kamailio_5calls_sip_and_hep.pcap": 65,
}


@cache
def _frames(path: Path) -> dict[int, UdpRecord]:
    return {record.frame: record for record in read_udp(path)}


def _expected(line: dict[str, object]) -> dict[str, object]:
    """The ground-truth line in HepPacket's terms."""
    payload = line.get("payload", line.get("payload_compressed"))
    assert isinstance(payload, str)
    ts_sec, ts_usec = line["ts_sec"], line["ts_usec"]
    assert isinstance(ts_sec, int)
    assert isinstance(ts_usec, int)
    return {
        "version": 3,
        "total_length": line["total_len"],
        "ip_family": line["ip_family"],
        "ip_proto": line["ip_proto"],
        "src": Endpoint(str(line["src_ip4"]), int(str(line["src_port"]))),
        "dst": Endpoint(str(line["dst_ip4"]), int(str(line["dst_port"]))),
        "at": ts_sec * 1_000_000_000 + ts_usec * 1000,
        "proto_type": line["proto_type"],
        "capture_id": line["capture_id"],
        "auth_key": line.get("auth_key"),
        "correlation_id": line.get("correlation_id"),
        "payload": payload.encode(),
        "compressed": "payload_compressed" in line,
        "vlan": None,
        "node_name": None,
    }


@pytest.mark.parametrize(("name", "count"), HEP_CAPTURES.items())
def test_every_datagram_matches_ground_truth(testdata: Path, name: str, count: int) -> None:
    frames = _frames(testdata / "hep" / name)
    lines = (testdata / "hep" / f"{name}.hep.jsonl").read_text().splitlines()
    assert len(lines) == count
    for text in lines:
        line = json.loads(text)
        datagram = frames[line["frame"]].payload
        assert len(datagram) == line["wire_len"]
        packet = HepPacket.parse(datagram)
        expected = _expected(line)
        actual = {field: getattr(packet, field) for field in expected}
        assert actual == expected, f"{name} frame {line['frame']}"
        assert bytes(packet) == datagram


def test_hepgen_sample_details(testdata: Path) -> None:
    packets = [HepPacket.parse(r.payload) for r in _frames(testdata / "hep" / "hep.pcap").values()]
    types = [p.proto_type for p in packets]
    assert types.count(HepProtoType.SIP) == 6
    assert types.count(HepProtoType.LOG) == 1
    assert types.count(HepProtoType.RTCP_JSON) == 1
    invite = packets[0]
    assert invite.payload.startswith(b"INVITE sip:nodejs@127.0.0.1 SIP/2.0\n")  # bare LF
    assert invite.correlation_id == "qgf3dm9rudi@127.0.0.1"
    assert [c.type for c in invite.chunks] == [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 14, 17, 15]
    assert invite.total_length == 775


def test_compressed_capture_is_inflated(testdata: Path) -> None:
    records = _frames(testdata / "hep" / "hep3_compressed.pcap.pcapng")
    packets = [HepPacket.parse(r.payload) for r in records.values()]
    assert all(p.compressed for p in packets)
    assert all(p.capture_id == 228 for p in packets)
    # every message was captured three times (broadcast + twice on the docker bridge)
    assert len({p.payload for p in packets}) == 7
    chunk = next(c for c in packets[0].chunks if c.type == HepChunkType.COMPRESSED_PAYLOAD)
    assert zlib.decompress(chunk.value) == packets[0].payload


def test_build_round_trip() -> None:
    at = 1_795_906_016_100_093_000
    packet = HepPacket.build(
        payload=b"OPTIONS sip:a@b SIP/2.0\r\n\r\n",
        src=Endpoint("10.0.0.1", 5060),
        dst=Endpoint("10.0.0.2", 5080),
        at=at + 999,  # below a microsecond: not representable in HEP
        capture_id=2001,
        auth_key="secret",
        correlation_id="call-1@host",
        vlan=42,
        node_name="probe-1",
        extra_chunks=[HepChunk(0x0003, 0x0020, b"vendor")],
    )
    assert packet.at == at
    assert packet.vlan == 42
    assert packet.node_name == "probe-1"
    assert packet.ip_family == 2
    assert packet.ip_proto == 17
    assert packet.proto_type == HepProtoType.SIP
    assert HepChunk(3, 32, b"vendor") in packet.chunks
    data = bytes(packet)
    assert data[:4] == b"HEP3"
    assert struct.unpack_from("!H", data, 4)[0] == len(data) == packet.total_length
    assert HepPacket.parse(data) == packet


def test_build_ipv6_and_compressed() -> None:
    payload = b"BYE sip:x SIP/2.0\r\n" * 50
    packet = HepPacket.build(
        payload=payload,
        src=Endpoint("2001:db8::1", 5060),
        dst=Endpoint("2001:db8::2", 5060),
        at=10**18,
        ip_proto=6,
        compress=True,
    )
    assert packet.compressed
    assert packet.payload == payload
    assert packet.src == Endpoint("2001:db8::1", 5060)
    assert packet.ip_family == 10
    assert len(bytes(packet)) < len(payload)
    assert HepPacket.parse(bytes(packet)) == packet


def test_unknown_and_vendor_chunks_are_kept_and_missing_fields_are_none() -> None:
    chunks = [HepChunk(0, 99, b"future"), HepChunk(0x0002, 1, b"\xff"), HepChunk(0, 7, b"\x13\xc4")]
    data = b"HEP3" + struct.pack("!H", 6 + sum(len(bytes(c)) for c in chunks))
    data += b"".join(map(bytes, chunks))
    packet = HepPacket.parse(data)
    assert packet.chunks == tuple(chunks)
    assert packet.ip_family is None  # vendor 2's type 1 is not the generic IP family
    assert packet.src is None  # a port without an address
    assert packet.at is None
    assert packet.payload == b""
    assert bytes(packet) == data


def test_text_chunks_drop_the_c_terminator() -> None:
    chunks = [HepChunk(0, HepChunkType.AUTH_KEY, b"myHep\x00"), HepChunk(0, 12, b"\x07\xd1")]
    data = b"HEP3" + struct.pack("!H", 6 + 12 + 8) + b"".join(map(bytes, chunks))
    packet = HepPacket.parse(data)
    assert packet.auth_key == "myHep"
    assert packet.capture_id == 2001  # some agents send a 16-bit capture id


def _hepv2(version: int = 2, family: int = 2, header_length: int = 16) -> bytes:
    header = struct.pack("!BBBBHH", version, header_length, family, 17, 5060, 5070)
    addresses = bytes((192, 168, 0, 1, 192, 168, 0, 2)) if family == 2 else bytes(range(32))
    time = struct.pack("<IIH2x", 1_481_455_196, 100, 2001) if version == 2 else b""
    return header + addresses + time + b"INVITE sip:x SIP/2.0\r\n\r\n"


def test_hepv2() -> None:
    data = _hepv2()
    packet = HepPacket.parse(data)
    assert packet.version == 2
    assert packet.src == Endpoint("192.168.0.1", 5060)
    assert packet.dst == Endpoint("192.168.0.2", 5070)
    assert packet.at == 1_481_455_196_000_100_000
    assert packet.capture_id == 2001
    assert packet.ip_proto == 17
    assert packet.payload == b"INVITE sip:x SIP/2.0\r\n\r\n"
    assert packet.chunks == ()
    assert bytes(packet) == data
    ipv6 = HepPacket.parse(_hepv2(family=10, header_length=40))
    assert ipv6.src == Endpoint("1:203:405:607:809:a0b:c0d:e0f", 5060)
    assert bytes(ipv6) == _hepv2(family=10, header_length=40)
    v1 = HepPacket.parse(_hepv2(version=1))
    assert v1.at is None
    assert bytes(v1) == _hepv2(version=1)


def _v3(*chunks: bytes, total: int | None = None) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body) if total is None else total) + body


def _chunk(chunk_type: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HHH", 0, chunk_type, 6 + len(value) if length is None else length) + value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HEP3\x00", "HEP packet shorter than 6 octets"),
        (b"EEP1\x00\x06", "HEP magic or version is not recognised"),
        (_v3(total=5), "HEP total length is shorter than its header"),
        (_v3(_chunk(1, b"\x02"), total=20), "HEP total length exceeds the datagram"),
        (_v3(_chunk(1, b"\x02"), total=7), "HEP datagram is longer than its total length"),
        (_v3(b"\x00\x00\x00\x01"), "HEP chunk header is truncated"),
        (_v3(_chunk(1, b"\x02", length=5)), "HEP chunk length is shorter than its header"),
        (_v3(_chunk(1, b"\x02", length=9)), "HEP chunk exceeds the packet"),
        (_v3(_chunk(3, b"\x01\x02\x03")), "HEP chunk has the wrong size for its type"),
        (_v3(_chunk(7, b"\x13")), "HEP chunk has the wrong size for its type"),
        (_v3(_chunk(12, b"\x01")), "HEP chunk has the wrong size for its type"),
        (_v3(_chunk(16, b"not zlib")), "HEP compressed payload is not valid zlib data"),
        (_v3(_chunk(16, zlib.compress(b"x" * 100)[:-6])), "HEP compressed payload is truncated"),
        (
            _v3(_chunk(16, zlib.compress(bytes(MAX_PAYLOAD + 1)))),
            "HEP compressed payload exceeds the size limit",
        ),
        (_hepv2(family=7), "HEPv2 address family is not IPv4 or IPv6"),
        (_hepv2(header_length=40), "HEPv2 header length does not match its family"),
        (_hepv2()[:20], "HEPv2 packet shorter than its header"),
        (b"\x02\x10\x02\x11\x13\xc4", "HEPv2 packet shorter than its header"),
    ],
)
def test_errors_have_fixed_messages(data: bytes, message: str) -> None:
    with pytest.raises(HepParseError) as caught:
        HepPacket.parse(data)
    assert str(caught.value) == message


def test_zip_bomb_limit_is_configurable() -> None:
    bomb = _v3(_chunk(16, zlib.compress(bytes(100_000))))
    assert len(bomb) < 200
    assert HepPacket.parse(bomb).payload == bytes(100_000)
    with pytest.raises(HepParseError, match="exceeds the size limit"):
        HepPacket.parse(bomb, max_payload=99_999)
    assert len(HepPacket.parse(bomb, max_payload=100_000).payload) == 100_000


def test_framer_splits_a_tcp_stream(testdata: Path) -> None:
    datagrams = [
        r.payload for r in _frames(testdata / "hep" / "kamailio_5calls_hep_only.pcap").values()
    ]
    stream = b"".join(datagrams)
    framer = HepFramer()
    received: list[bytes] = []
    for start in range(0, len(stream), 333):  # reads that cut messages anywhere
        received.extend(framer.feed(stream[start : start + 333]))
    assert received == datagrams
    assert framer.pending == 0
    assert framer.discarded == 0


def test_framer_skips_garbage_to_the_next_magic() -> None:
    message = bytes(
        HepPacket.build(payload=b"x", src=Endpoint("1.2.3.4", 1), dst=Endpoint("5.6.7.8", 2), at=0)
    )
    framer = HepFramer()
    assert framer.feed(b"garbage!" + message[:10]) == []
    assert framer.discarded == 8
    assert framer.feed(message[10:] + b"HEP3\x00\x02" + b"HE") == [message]
    assert framer.feed(b"P3" + message[4:]) == [b"HEP3" + message[4:]]
    assert framer.discarded == 8 + 1 + 5  # "HEP3" with length 2 is skipped octet by octet
    assert framer.pending == 0


@given(st.binary(max_size=120))
def test_fuzz_parse_only_hep_parse_error(data: bytes) -> None:
    for candidate in (data, b"HEP3" + struct.pack("!H", len(data) + 6) + data):
        try:
            packet = HepPacket.parse(candidate)
        except HepParseError:
            continue
        if packet.version == 3:
            assert bytes(packet) == candidate


@given(st.lists(st.tuples(st.integers(0, 21), st.binary(max_size=24)), max_size=8))
def test_fuzz_deep_chunks(chunks: list[tuple[int, bytes]]) -> None:
    """Well-formed chunk headers around arbitrary values reach every chunk decoder."""
    data = _v3(*(_chunk(chunk_type, value) for chunk_type, value in chunks))
    try:
        packet = HepPacket.parse(data)
    except HepParseError:
        return
    assert bytes(packet) == data
    assert len(packet.chunks) == len(chunks)


@given(st.lists(st.binary(max_size=40), max_size=12))
def test_fuzz_framer_never_raises(reads: list[bytes]) -> None:
    framer = HepFramer()
    for data in reads:
        for message in framer.feed(data):
            assert message[:4] == b"HEP3"
            assert struct.unpack_from("!H", message, 4)[0] == len(message)
        assert framer.pending <= 0xFFFF + len(data)


@given(
    payload=st.binary(max_size=200),
    ipv6=st.booleans(),
    ports=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    at=st.integers(0, (1 << 32) * 1_000_000_000 - 1),
    proto_type=st.integers(0, 255),
    capture_id=st.none() | st.integers(0, 0xFFFFFFFF),
    text=st.none()
    | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=20),
    vlan=st.none() | st.integers(0, 0xFFFF),
    compress=st.booleans(),
)
def test_build_parse_round_trip(
    payload: bytes,
    ipv6: bool,
    ports: tuple[int, int],
    at: int,
    proto_type: int,
    capture_id: int | None,
    text: str | None,
    vlan: int | None,
    compress: bool,
) -> None:
    src, dst = ("2001:db8::1", "::ffff:10.0.0.1") if ipv6 else ("10.1.2.3", "192.168.0.9")
    packet = HepPacket.build(
        payload=payload,
        src=Endpoint(src, ports[0]),
        dst=Endpoint(dst, ports[1]),
        at=at,
        proto_type=proto_type,
        capture_id=capture_id,
        auth_key=text,
        correlation_id=text,
        node_name=text,
        vlan=vlan,
        compress=compress,
    )
    data = bytes(packet)
    assert HepPacket.parse(data) == packet
    assert packet.payload == payload
    assert packet.at == at // 1000 * 1000
    assert (packet.auth_key, packet.correlation_id, packet.node_name) == (text, text, text)
    framer = HepFramer()
    assert framer.feed(data + data[:3]) == [data]
