"""RTCP compound packets (RFC 3550 6.4-6.7): SR, RR, SDES, BYE, APP; others kept raw.

`parse_compound(data)` walks the length fields of a compound packet and returns one frozen
dataclass per RTCP packet. Packet types without a parser here (RTPFB 205, PSFB 206, XR 207
and the rest of 192-223) come back as `RawRtcp`, body untouched. Every packet has
``bytes(packet)``; for canonical input (null padding in SDES and BYE, as RFC 3550 requires,
and a length that is a multiple of 4) ``b"".join(map(bytes, parse_compound(data))) == data``.

SRTCP (RFC 3711 3.4) appends an E-flag + SRTCP index word and an authentication tag after
the compound packet, and encrypts everything after the first 8 octets. `looks_like_srtcp`
recognises that shape cheaply; `parse_compound` reports it with its own fixed message.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from callscope.protocol.errors import RtcpParseError

__all__ = [
    "App",
    "Bye",
    "RawRtcp",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpType",
    "SdesChunk",
    "SdesItem",
    "SdesType",
    "SenderReport",
    "SourceDescription",
    "looks_like_rtcp",
    "looks_like_srtcp",
    "parse_compound",
]


class RtcpType(enum.IntEnum):
    """RTCP packet types (RFC 3550 12.1, RFC 4585 6.1, RFC 3611 2)."""

    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204
    RTPFB = 205
    PSFB = 206
    XR = 207


class SdesType(enum.IntEnum):
    """SDES item types (RFC 3550 6.5)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_NTP_UNIX_OFFSET = 2_208_988_800  # RFC 868: seconds from 1900-01-01 to 1970-01-01

_MSG_SHORT = "RTCP packet shorter than 4 octets"
_MSG_VERSION = "RTCP version is not 2"
_MSG_LENGTH = "RTCP length exceeds compound packet"
_MSG_PADDING = "RTCP padding length is invalid"
_MSG_SR = "RTCP sender report is truncated"
_MSG_RR = "RTCP receiver report is truncated"
_MSG_SDES = "RTCP SDES chunk is truncated"
_MSG_BYE = "RTCP BYE is truncated"
_MSG_APP = "RTCP APP is truncated"
_MSG_SRTCP = "RTCP packet is SRTCP (RFC 3711), not parsed"
_MSG_EMPTY = "RTCP compound packet is empty"


def _header(packet_type: int, count: int, body_length: int, padding: bytes) -> bytes:
    """RFC 3550 6.4.1: V=2, P, count, PT, length in 32-bit words minus one."""
    words = (4 + body_length + len(padding)) // 4 - 1
    return _HEADER.pack(0x80 | (0x20 if padding else 0) | count, packet_type, words)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point fraction (divide by 256); ``cumulative_lost``
    is signed (24 bits); ``last_sr`` is the middle 32 bits of the last SR's NTP time and
    ``delay_since_last_sr`` is in units of 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int
    delay_since_last_sr: int

    @classmethod
    def _parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(
            self.ssrc, lost, self.highest_sequence, self.jitter, self.last_sr,
            self.delay_since_last_sr,
        )  # fmt: skip


def _report_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock._parse(body, offset + 24 * index) for index in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 6.4.1). ``ntp_timestamp`` is the 64-bit NTP time as one integer."""

    packet_type: ClassVar[int] = RtcpType.SR
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""
    padding_bytes: bytes = b""

    @property
    def ntp_time_ns(self) -> int:
        """The sender's NTP wallclock as Unix-epoch nanoseconds.

        RFC 4330 3: seconds with the top bit clear are in NTP era 1 (from 2036-02-07).
        """
        seconds = self.ntp_timestamp >> 32
        if seconds < 0x80000000:
            seconds += 1 << 32
        seconds -= _NTP_UNIX_OFFSET
        return seconds * 1_000_000_000 + ((self.ntp_timestamp & 0xFFFFFFFF) * 1_000_000_000 >> 32)

    @classmethod
    def _parse(cls, count: int, body: bytes, padding: bytes) -> SenderReport:
        if len(body) < 24 + 24 * count:
            raise RtcpParseError(_MSG_SR)
        ssrc, ntp, rtp_timestamp, packets, octets = _SENDER_INFO.unpack_from(body)
        reports = _report_blocks(body, 24, count)
        return cls(
            ssrc, ntp, rtp_timestamp, packets, octets, reports, body[24 + 24 * count :], padding
        )

    def __bytes__(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count,
            self.octet_count,
        )  # fmt: skip
        blocks = b"".join(map(bytes, self.reports))
        body = info + blocks + self.profile_extension
        return _header(self.packet_type, len(self.reports), len(body), self.padding_bytes) + (
            body + self.padding_bytes
        )


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 6.4.2)."""

    packet_type: ClassVar[int] = RtcpType.RR
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""
    padding_bytes: bytes = b""

    @classmethod
    def _parse(cls, count: int, body: bytes, padding: bytes) -> ReceiverReport:
        if len(body) < 4 + 24 * count:
            raise RtcpParseError(_MSG_RR)
        ssrc = struct.unpack_from("!I", body)[0]
        return cls(ssrc, _report_blocks(body, 4, count), body[4 + 24 * count :], padding)

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(map(bytes, self.reports))
        body += self.profile_extension
        return _header(self.packet_type, len(self.reports), len(body), self.padding_bytes) + (
            body + self.padding_bytes
        )


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 6.5): type and value octets (UTF-8 text for most types)."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC/CSRC and its items, END item and padding not included."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    @property
    def cname(self) -> str | None:
        """The CNAME item (RFC 3550 6.5.1), decoded leniently, or None. Some senders
        include a C string's terminating NUL in the item: it is dropped here."""
        for item in self.items:
            if item.type == SdesType.CNAME:
                return item.value.rstrip(b"\0").decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        parts = [struct.pack("!I", self.ssrc)]
        for item in self.items:
            parts.append(bytes((item.type, len(item.value))))
            parts.append(item.value)
        length = 4 + sum(2 + len(item.value) for item in self.items)
        # RFC 3550 6.5: an END octet, then null octets up to the next 32-bit boundary
        parts.append(bytes(4 - length % 4))
        return b"".join(parts)


def _parse_sdes_chunk(body: bytes, offset: int) -> tuple[SdesChunk, int]:
    """One chunk starting at ``offset``; returns it and the offset of the next chunk."""
    if offset + 4 > len(body):
        raise RtcpParseError(_MSG_SDES)
    ssrc = struct.unpack_from("!I", body, offset)[0]
    at, items = offset + 4, []
    while True:
        if at >= len(body):
            raise RtcpParseError(_MSG_SDES)
        item_type = body[at]
        if item_type == SdesType.END:
            break
        if at + 2 > len(body) or at + 2 + body[at + 1] > len(body):
            raise RtcpParseError(_MSG_SDES)
        length = body[at + 1]
        items.append(SdesItem(item_type, body[at + 2 : at + 2 + length]))
        at += 2 + length
    next_chunk = (at + 4) & ~3  # past the END octet, to the next 32-bit boundary
    if next_chunk > len(body):
        raise RtcpParseError(_MSG_SDES)
    return SdesChunk(ssrc, tuple(items)), next_chunk


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 6.5): one chunk per source."""

    packet_type: ClassVar[int] = RtcpType.SDES
    chunks: tuple[SdesChunk, ...] = ()
    padding_bytes: bytes = b""

    @property
    def cnames(self) -> dict[int, str]:
        """SSRC -> CNAME for every chunk that carries one."""
        return {chunk.ssrc: name for chunk in self.chunks if (name := chunk.cname) is not None}

    @classmethod
    def _parse(cls, count: int, body: bytes, padding: bytes) -> SourceDescription:
        offset, chunks = 0, []
        for _ in range(count):
            chunk, offset = _parse_sdes_chunk(body, offset)
            chunks.append(chunk)
        return cls(tuple(chunks), padding)

    def __bytes__(self) -> bytes:
        body = b"".join(map(bytes, self.chunks))
        return _header(self.packet_type, len(self.chunks), len(body), self.padding_bytes) + (
            body + self.padding_bytes
        )


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (RFC 3550 6.6): the sources leaving and an optional reason text."""

    packet_type: ClassVar[int] = RtcpType.BYE
    sources: tuple[int, ...] = ()
    reason: bytes | None = None
    padding_bytes: bytes = b""

    @classmethod
    def _parse(cls, count: int, body: bytes, padding: bytes) -> Bye:
        if len(body) < 4 * count:
            raise RtcpParseError(_MSG_BYE)
        sources = struct.unpack_from(f"!{count}I", body)
        at = 4 * count
        reason = None
        if at < len(body):
            length = body[at]
            if at + 1 + length > len(body):
                raise RtcpParseError(_MSG_BYE)
            reason = body[at + 1 : at + 1 + length]
        return cls(sources, reason, padding)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            text = bytes((len(self.reason),)) + self.reason
            body += text + bytes(-len(text) % 4)
        return _header(self.packet_type, len(self.sources), len(body), self.padding_bytes) + (
            body + self.padding_bytes
        )


@dataclass(frozen=True, slots=True)
class App:
    """APP (RFC 3550 6.7): subtype, SSRC, 4-character name and application data."""

    packet_type: ClassVar[int] = RtcpType.APP
    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""
    padding_bytes: bytes = b""

    @classmethod
    def _parse(cls, count: int, body: bytes, padding: bytes) -> App:
        if len(body) < 8:
            raise RtcpParseError(_MSG_APP)
        return cls(count, struct.unpack_from("!I", body)[0], body[4:8], body[8:], padding)

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + self.name + self.data
        return _header(self.packet_type, self.subtype, len(body), self.padding_bytes) + (
            body + self.padding_bytes
        )


@dataclass(frozen=True, slots=True)
class RawRtcp:
    """Any other RTCP packet (XR, RTPFB, PSFB, ...): header fields and the body as sent."""

    packet_type: int
    count: int
    body: bytes
    padding_bytes: bytes = b""

    @classmethod
    def _parse(cls, packet_type: int, count: int, body: bytes, padding: bytes) -> RawRtcp:
        return cls(packet_type, count, body, padding)

    def __bytes__(self) -> bytes:
        return _header(self.packet_type, self.count, len(self.body), self.padding_bytes) + (
            self.body + self.padding_bytes
        )


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | App | RawRtcp

_PARSERS: dict[int, Callable[[int, bytes, bytes], RtcpPacket]] = {
    RtcpType.SR: SenderReport._parse,
    RtcpType.RR: ReceiverReport._parse,
    RtcpType.SDES: SourceDescription._parse,
    RtcpType.BYE: Bye._parse,
    RtcpType.APP: App._parse,
}


def looks_like_rtcp(data: bytes) -> bool:
    """Cheap classifier: version 2, packet type 192-223 (RFC 5761 4), first length fits."""
    return (
        len(data) >= 8
        and data[0] >> 6 == 2
        and 192 <= data[1] <= 223
        and ((data[2] << 8 | data[3]) + 1) * 4 <= len(data)
    )


def _plain_end(data: bytes) -> int:
    """Offset where consistent RTCP headers stop when walking the length fields."""
    offset = 0
    while offset + 4 <= len(data) and data[offset] >> 6 == 2 and 192 <= data[offset + 1] <= 223:
        following = offset + ((data[offset + 2] << 8 | data[offset + 3]) + 1) * 4
        if following > len(data):
            break
        offset = following
    return offset


def looks_like_srtcp(data: bytes) -> bool:
    """Heuristic: an RTCP header whose compound walk does not end at the datagram's end, but
    leaves room for the RFC 3711 3.4 trailer (E-flag + 31-bit SRTCP index, then an 80- or
    32-bit authentication tag): either the walk ends exactly at the trailer (E=0,
    authentication only) or the E flag is set (encrypted).
    """
    if not looks_like_rtcp(data):
        return False
    end = _plain_end(data)
    if end == len(data):
        return False
    first_length = ((data[2] << 8 | data[3]) + 1) * 4
    for tag_length in (10, 4):
        trailer = len(data) - tag_length - 4
        if trailer >= first_length and (end == trailer or data[trailer] & 0x80):
            return True
    return False


def _parse_one(data: bytes, offset: int) -> tuple[RtcpPacket, int]:
    if offset + 4 > len(data):
        raise RtcpParseError(_MSG_SHORT)
    first, packet_type, words = _HEADER.unpack_from(data, offset)
    if first >> 6 != 2:
        raise RtcpParseError(_MSG_VERSION)
    end = offset + (words + 1) * 4
    if end > len(data):
        raise RtcpParseError(_MSG_LENGTH)
    body_end = end
    if first & 0x20:
        # RFC 3550 6.4.1: the last octet counts the padding octets, itself included
        body_end -= data[end - 1]
        if data[end - 1] == 0 or body_end < offset + 4:
            raise RtcpParseError(_MSG_PADDING)
    body, padding, count = data[offset + 4 : body_end], data[body_end:end], first & 0x1F
    parser = _PARSERS.get(packet_type)
    if parser is None:
        return RawRtcp._parse(packet_type, count, body, padding), end
    return parser(count, body, padding), end


def parse_compound(data: bytes) -> tuple[RtcpPacket, ...]:
    """Parse a compound RTCP packet (RFC 3550 6.1) into its packets, in order.

    Raises `RtcpParseError` with a fixed message; SRTCP gets its own message so that the
    tracker can record encrypted media rather than a broken peer.
    """
    if not data:
        raise RtcpParseError(_MSG_EMPTY)
    packets = []
    offset = 0
    # fewer than 4 octets after the last packet cannot be a packet: some gateways append
    # such a trailer (seen: 2 null octets); they are ignored, as Wireshark does
    end = len(data) - len(data) % 4
    try:
        while offset < end:
            packet, offset = _parse_one(data, offset)
            packets.append(packet)
    except RtcpParseError:
        if looks_like_srtcp(data):
            raise RtcpParseError(_MSG_SRTCP) from None
        raise
    if not packets:
        raise RtcpParseError(_MSG_SHORT)
    return tuple(packets)
