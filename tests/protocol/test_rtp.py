"""RTP packets (RFC 3550 5.1): full parse with exact inverse, hot-path header parse, fuzz."""

from __future__ import annotations

import contextlib
import struct
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.protocol.errors import RtpParseError
from callscope.protocol.rtp import RtpPacket, looks_like_rtp, parse_rtp_header
from tests.protocol._hep_pcap import read_udp


@cache
def _rtp_datagrams(path: Path) -> tuple[bytes, ...]:
    return tuple(r.payload for r in read_udp(path) if looks_like_rtp(r.payload))


def _header(first: int, second: int, sequence: int = 1, timestamp: int = 2, ssrc: int = 3) -> bytes:
    return struct.pack("!BBHII", first, second, sequence, timestamp, ssrc)


@pytest.mark.parametrize(
    "name", ["sip-rtp-g711.pcap", "sip-rtp-g722.pcap", "SIP_DTMF2.cap", "invite-opus-bye.pcap"]
)
def test_real_packets_parse_and_rebuild_exactly(testdata: Path, name: str) -> None:
    datagrams = _rtp_datagrams(testdata / "pcap" / name)
    assert len(datagrams) > 300
    for data in datagrams:
        packet = RtpPacket.parse(data)
        assert bytes(packet) == data
        fast = parse_rtp_header(data)
        assert fast[:5] == (
            packet.payload_type,
            packet.sequence,
            packet.timestamp,
            packet.ssrc,
            packet.marker,
        )
        assert data[fast[5] : fast[6]] == packet.payload


def test_first_packet_of_sip_rtp_g711_fields(testdata: Path) -> None:
    packet = RtpPacket.parse(_rtp_datagrams(testdata / "pcap" / "sip-rtp-g711.pcap")[0])
    # tshark: stream 0x343DA99B, PCMU, 20 ms of audio per packet
    assert packet.ssrc == 0x343DA99B
    assert packet.payload_type == 0
    assert packet.version == 2
    assert len(packet.payload) == 160
    assert not packet.padding
    assert not packet.extension
    assert packet.csrc == ()


def test_csrc_extension_and_padding() -> None:
    data = (
        _header(0x80 | 0x20 | 0x10 | 2, 0x80 | 96, 65535, 0xFFFFFFFF, 0xDEADBEEF)
        + struct.pack("!II", 11, 22)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
        + b"payload"
        + b"\x00\x00\x03"
    )
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(
        payload_type=96,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0xDEADBEEF,
        marker=True,
        csrc=(11, 22),
        extension_profile=0xBEDE,
        extension_data=b"\x10\xaa\x00\x00",
        payload=b"payload",
        padding_bytes=b"\x00\x00\x03",
    )
    assert packet.padding
    assert packet.extension
    assert bytes(packet) == data
    offset, end = parse_rtp_header(data)[5:]
    assert data[offset:end] == b"payload"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet shorter than 12 octets"),
        (_header(0x80, 0)[:11], "RTP packet shorter than 12 octets"),
        (_header(0x40, 0), "RTP version is not 2"),
        (_header(0x80 | 2, 0) + b"\x00" * 7, "RTP CSRC list exceeds packet"),
        (_header(0x90, 0) + b"\xbe\xde", "RTP header extension exceeds packet"),
        (
            _header(0x90, 0) + b"\xbe\xde\x00\x02" + b"\x00" * 7,
            "RTP header extension exceeds packet",
        ),
        (_header(0xA0, 0) + b"abc\x00", "RTP padding length is invalid"),
        (_header(0xA0, 0) + b"ab\x04", "RTP padding length is invalid"),
    ],
)
def test_errors_have_fixed_messages(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as caught:
        RtpPacket.parse(data)
    assert str(caught.value) == message
    if data[:1] != b"\x40":  # the hot path leaves the version to looks_like_rtp
        with pytest.raises(RtpParseError) as fast:
            parse_rtp_header(data)
        assert str(fast.value) == message


def test_padding_may_fill_the_whole_payload() -> None:
    data = _header(0xA0, 0) + b"\x00\x00\x03"
    assert RtpPacket.parse(data).payload == b""
    assert parse_rtp_header(data)[5:] == (12, 12)


def test_looks_like_rtp() -> None:
    assert looks_like_rtp(_header(0x80, 8))
    assert looks_like_rtp(_header(0x80, 0x80 | 0))
    assert looks_like_rtp(_header(0x80, 77))
    # RFC 5761 4: RTCP SR/RR/SDES/BYE/APP read as RTP payload types 72-76
    for packet_type in range(200, 205):
        assert not looks_like_rtp(_header(0x80, packet_type))
    assert not looks_like_rtp(_header(0x80, 8)[:11])
    assert not looks_like_rtp(b"INVITE sip:bob@example.com SIP/2.0\r\n")
    assert not looks_like_rtp(_header(0x00, 8))  # STUN / ZRTP start with version 0


def test_sip_and_rtcp_in_a_real_capture_are_not_taken_for_rtp(testdata: Path) -> None:
    records = read_udp(testdata / "pcap" / "sip-over-tcp.pcap")
    rtp = [r for r in records if looks_like_rtp(r.payload)]
    # tshark: 24 + 42 RTP packets, plus 2 RTCP compound packets that must not count
    assert len(rtp) == 66


@given(st.binary(max_size=80))
def test_fuzz_only_rtp_parse_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        pass
    else:
        assert bytes(packet) == data
    with contextlib.suppress(RtpParseError):
        parse_rtp_header(data)


@st.composite
def _packets(draw: st.DrawFn) -> RtpPacket:
    has_extension = draw(st.booleans())
    padding_length = draw(st.integers(0, 255))
    padding = b""
    if padding_length:
        padding = draw(st.binary(min_size=padding_length - 1, max_size=padding_length - 1))
        padding += bytes((padding_length,))
    words = draw(st.integers(0, 4))
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        csrc=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))),
        extension_profile=draw(st.integers(0, 0xFFFF)) if has_extension else None,
        extension_data=draw(st.binary(min_size=4 * words, max_size=4 * words))
        if has_extension
        else b"",
        payload=draw(st.binary(max_size=64)),
        padding_bytes=padding,
    )


@given(_packets())
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert looks_like_rtp(data) == (not 72 <= packet.payload_type <= 76)
    payload_type, sequence, timestamp, ssrc, marker, offset, end = parse_rtp_header(data)
    assert (payload_type, sequence, timestamp, ssrc, marker) == (
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
    )
    assert data[offset:end] == packet.payload
