"""RTCP compound packets (RFC 3550 6.4-6.7), SRTCP detection (RFC 3711 3.4), fuzz."""

from __future__ import annotations

import contextlib
import datetime
import struct
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.protocol.errors import RtcpParseError
from callscope.protocol.rtcp import (
    App,
    Bye,
    RawRtcp,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SdesType,
    SenderReport,
    SourceDescription,
    looks_like_rtcp,
    looks_like_srtcp,
    parse_compound,
)
from callscope.protocol.rtp import looks_like_rtp
from tests.protocol._hep_pcap import UdpRecord, read_udp


@cache
def _rtcp_records(path: Path) -> dict[int, UdpRecord]:
    return {r.frame: r for r in read_udp(path) if looks_like_rtcp(r.payload)}


CAPTURES_WITH_RTCP = {
    # file: number of RTCP datagrams (tshark -Y rtcp)
    "pcap/rtp-protocol.pcap": 2,
    "pcap/sip-over-tcp.pcap": 2,
    "pcap/SIP_CALL_RTP_G711": 28,
    "generated/baresip_call_pcmu_8s.pcap": 6,
}


@pytest.mark.parametrize(("name", "count"), CAPTURES_WITH_RTCP.items())
def test_real_rtcp_parses_and_rebuilds(testdata: Path, name: str, count: int) -> None:
    records = _rtcp_records(testdata / name)
    assert len(records) == count
    for record in records.values():
        assert not looks_like_rtp(record.payload)
        assert not looks_like_srtcp(record.payload)
        packets = parse_compound(record.payload)
        rebuilt = b"".join(map(bytes, packets))
        # SIP_CALL_RTP_G711's gateway appends 2 null octets after some compounds
        assert record.payload == rebuilt + bytes(len(record.payload) - len(rebuilt))
        assert len(record.payload) - len(rebuilt) < 4


def test_sender_report_with_block_and_cname(testdata: Path) -> None:
    record = _rtcp_records(testdata / "pcap" / "sip-over-tcp.pcap")[17]
    report, description = parse_compound(record.payload)
    # values as tshark -V decodes frame 17
    assert report == SenderReport(
        ssrc=0x5A3361B3,
        ntp_timestamp=(2508829 << 32) | 2572685233,
        rtp_timestamp=95878790,
        packet_count=1,
        octet_count=160,
        reports=(
            ReportBlock(
                ssrc=0x42F433D4,
                fraction_lost=0,
                cumulative_lost=0,
                highest_sequence=54340,
                jitter=0,
                last_sr=153432162,
                delay_since_last_sr=1048,
            ),
        ),
    )
    # tshark: "Mar  7, 2036 07:22:05.598999958 UTC" (NTP era 1, RFC 4330 3)
    moment = datetime.datetime.fromtimestamp(report.ntp_time_ns // 10**9, datetime.UTC)
    assert moment == datetime.datetime(2036, 3, 7, 7, 22, 5, tzinfo=datetime.UTC)
    assert report.ntp_time_ns % 10**9 == 598999958
    assert isinstance(description, SourceDescription)
    assert description.cnames == {0x5A3361B3: "c0"}
    assert description.chunks[0].items == (SdesItem(SdesType.CNAME, b"c0\x00"),)


def test_sr_rr_sdes_compound_from_a_carrier_gateway(testdata: Path) -> None:
    record = _rtcp_records(testdata / "pcap" / "SIP_CALL_RTP_G711")[529]
    sender, receiver, description = parse_compound(record.payload)
    assert isinstance(sender, SenderReport)
    assert isinstance(receiver, ReceiverReport)
    assert sender.ssrc == receiver.ssrc == 0xD2BD4E3E
    assert receiver.reports[0].ssrc == 0x58F33DEA
    assert isinstance(description, SourceDescription)
    assert description.cnames == {0xD2BD4E3E: "unknown@200.57.7.204"}


def test_app_packets_from_baresip(testdata: Path) -> None:
    records = _rtcp_records(testdata / "generated" / "baresip_call_pcmu_8s.pcap")
    apps = [parse_compound(r.payload) for r in records.values()]
    assert (App(subtype=0, ssrc=0xB7EE7BA4, name=b"PING", data=b"PONG"),) in apps


def test_srtcp_is_recognised_in_a_zrtp_call(testdata: Path) -> None:
    records = _rtcp_records(testdata / "pcap" / "Asterisk_ZFONE_XLITE.pcap")
    encrypted = [r for r in records.values() if looks_like_srtcp(r.payload)]
    # tshark: frames 21 and 25 are plain RR+SDES; the SRs after the ZRTP exchange are SRTCP
    assert sorted(records) == [21, 25, 252, 399, 556, 676, 901]
    assert [r.frame for r in encrypted] == [252, 399, 556, 676, 901]
    for record in encrypted:
        with pytest.raises(RtcpParseError) as caught:
            parse_compound(record.payload)
        assert str(caught.value) == "RTCP packet is SRTCP (RFC 3711), not parsed"
    assert isinstance(parse_compound(records[21].payload)[0], ReceiverReport)


def _compound() -> tuple[RtcpPacket, ...]:
    block = ReportBlock(0xA, 25, -3, 0x1_0005, 77, 0x1234_5678, 65536)
    return (
        SenderReport(0x1, 0xE000_0000_8000_0000, 160, 10, 1600, (block, block)),
        ReceiverReport(0x2, (block,), profile_extension=b"\x01\x02\x03\x04"),
        SourceDescription(
            (
                SdesChunk(0x1, (SdesItem(SdesType.CNAME, b"alice@example.com"),)),
                SdesChunk(0x2, (SdesItem(SdesType.CNAME, b"bob"), SdesItem(SdesType.TOOL, b"x"))),
                SdesChunk(0x3, ()),
            )
        ),
        Bye((0x1, 0x2), b"hangup"),
        App(subtype=3, ssrc=0x1, name=b"TEST", data=b"data"),
        RawRtcp(packet_type=207, count=0, body=b"\x00\x00\x00\x01" + bytes(8)),
        Bye((), None, padding_bytes=b"\x00\x00\x00\x04"),
    )


def test_built_compound_round_trips() -> None:
    packets = _compound()
    data = b"".join(map(bytes, packets))
    assert len(data) % 4 == 0
    assert looks_like_rtcp(data)
    assert not looks_like_srtcp(data)
    assert parse_compound(data) == packets
    assert packets[0].reports[0].cumulative_lost == -3


def test_srtcp_trailer_heuristic_on_built_packets() -> None:
    plain = b"".join(map(bytes, _compound()[:3]))
    index_auth_only = struct.pack("!I", 7)  # E flag clear: authentication only
    index_encrypted = struct.pack("!I", 0x8000_0007)
    assert looks_like_srtcp(plain + index_auth_only + bytes(10))
    assert looks_like_srtcp(plain + index_auth_only + bytes(4))
    first = bytes(_compound()[0])
    scrambled = first[:8] + bytes(b ^ 0x5A for b in plain[8:])
    assert looks_like_srtcp(scrambled + index_encrypted + bytes(10))
    assert not looks_like_srtcp(plain)
    assert not looks_like_srtcp(b"\x80\x00" + plain[2:])


def _packet(first: int, packet_type: int, body: bytes) -> bytes:
    return struct.pack("!BBH", first, packet_type, (4 + len(body)) // 4 - 1) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP compound packet is empty"),
        (b"\x80\xc9\x00", "RTCP packet shorter than 4 octets"),
        (_packet(0x40, 201, bytes(4)), "RTCP version is not 2"),
        (b"\x80\xc9\x00\x05" + bytes(8), "RTCP length exceeds compound packet"),
        (_packet(0xA0, 201, bytes(3) + b"\x00"), "RTCP padding length is invalid"),
        (_packet(0xA0, 201, bytes(3) + b"\x09"), "RTCP padding length is invalid"),
        (_packet(0x81, 200, bytes(24)), "RTCP sender report is truncated"),
        (_packet(0x80, 200, bytes(20)), "RTCP sender report is truncated"),
        (_packet(0x81, 201, bytes(4)), "RTCP receiver report is truncated"),
        (_packet(0x81, 202, bytes(4)), "RTCP SDES chunk is truncated"),
        (_packet(0x81, 202, bytes(3) + b"\x01" + b"\x01\x09ab"), "RTCP SDES chunk is truncated"),
        (_packet(0x82, 202, bytes(4) + b"\x00\x00\x00\x00"), "RTCP SDES chunk is truncated"),
        (_packet(0x82, 203, bytes(4)), "RTCP BYE is truncated"),
        (_packet(0x81, 203, bytes(4) + b"\x09abc"), "RTCP BYE is truncated"),
        (_packet(0x80, 204, bytes(4)), "RTCP APP is truncated"),
    ],
)
def test_errors_have_fixed_messages(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError) as caught:
        parse_compound(data)
    assert str(caught.value) == message


def test_looks_like_rtcp() -> None:
    receiver_report = bytes(ReceiverReport(0x1))
    assert looks_like_rtcp(receiver_report)
    assert not looks_like_rtcp(receiver_report[:7])
    assert not looks_like_rtcp(b"\x80\x08" + receiver_report[2:])  # RTP PCMA
    assert not looks_like_rtcp(b"\x80\xc9\x00\x07" + bytes(4))  # length beyond datagram
    assert not looks_like_rtcp(b"REGISTER sip:x SIP/2.0\r\n")


@given(st.binary(max_size=120))
def test_fuzz_only_rtcp_parse_error(data: bytes) -> None:
    with contextlib.suppress(RtcpParseError):
        parse_compound(data)
    looks_like_rtcp(data)
    looks_like_srtcp(data)


@given(st.lists(st.sampled_from([200, 201, 202, 203, 204, 207]), min_size=1, max_size=4), st.data())
def test_fuzz_deep_bodies(types: list[int], data: st.DataObject) -> None:
    """Well-formed headers around arbitrary bodies reach every body parser."""
    compound = b""
    for packet_type in types:
        words = data.draw(st.integers(0, 8))
        first = 0x80 | data.draw(st.integers(0, 31))
        compound += _packet(
            first, packet_type, data.draw(st.binary(min_size=4 * words, max_size=4 * words))
        )
    try:
        packets = parse_compound(compound)
    except RtcpParseError:
        return
    assert len(packets) == len(types)


_u32 = st.integers(0, 0xFFFFFFFF)
_blocks = st.builds(
    ReportBlock,
    _u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    _u32,
    _u32,
    _u32,
    _u32,
)
_words = st.integers(0, 3).map(lambda n: bytes(4 * n))
_text = st.binary(max_size=40)
_any_packet = st.one_of(
    st.builds(
        SenderReport,
        _u32,
        st.integers(0, (1 << 64) - 1),
        _u32,
        _u32,
        _u32,
        st.lists(_blocks, max_size=3).map(tuple),
        _words,
    ),
    st.builds(ReceiverReport, _u32, st.lists(_blocks, max_size=3).map(tuple), _words),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                _u32,
                st.lists(st.builds(SdesItem, st.integers(1, 8), _text), max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(_u32, max_size=3).map(tuple), st.none() | _text),
    st.builds(App, st.integers(0, 31), _u32, st.binary(min_size=4, max_size=4), _words),
    st.builds(RawRtcp, st.integers(205, 223), st.integers(0, 31), _words),
)


@given(st.lists(_any_packet, min_size=1, max_size=4).map(tuple))
def test_round_trip(packets: tuple[RtcpPacket, ...]) -> None:
    data = b"".join(map(bytes, packets))
    assert parse_compound(data) == packets
