"""HEP (Homer Encapsulation Protocol): HEPv3 TLV packets, legacy HEPv1/v2, and TCP framing.

HEPv3 (HEP3 spec rev. 37): ``"HEP3"``, a 16-bit total length, then chunks of vendor id
(16 bits), type id (16 bits), chunk length (16 bits, header included) and value. Vendor 0
chunks 1-19 are decoded into fields; every chunk, known or not, is kept in ``chunks`` in
wire order so that ``bytes(packet)`` is the exact inverse of `HepPacket.parse`. A
compressed payload (chunk 16) is inflated with a size limit (a zip bomb cannot exhaust
memory); ``payload`` is always the inflated bytes.

HEPv1/v2 (Kamailio/OpenSIPS ``hep_hdr``): version, header length, family, protocol and
ports in network order, then both addresses, then for v2 a time header written in the
sender's host order (little-endian on every agent seen: x86 and ARM) and padded to 12
octets, then the payload. It has no length field, so it works over UDP only.

HEP over TCP: `HepFramer` cuts a byte stream into HEPv3 messages by their total length.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from callscope.core import Endpoint
from callscope.protocol.errors import HepParseError

__all__ = [
    "HEP3_MAGIC",
    "MAX_PAYLOAD",
    "HepChunk",
    "HepChunkType",
    "HepFramer",
    "HepPacket",
    "HepProtoType",
]

HEP3_MAGIC = b"HEP3"
#: Largest inflated payload accepted from a compressed chunk (zip-bomb guard).
MAX_PAYLOAD = 1 << 20
AF_INET = 2
AF_INET6 = 10  # Linux value, as agents send it


class HepChunkType(enum.IntEnum):
    """Generic (vendor 0) chunk types of HEPv3."""

    IP_FAMILY = 1
    IP_PROTO = 2
    IPV4_SRC = 3
    IPV4_DST = 4
    IPV6_SRC = 5
    IPV6_DST = 6
    SRC_PORT = 7
    DST_PORT = 8
    TIMESTAMP_SEC = 9
    TIMESTAMP_USEC = 10
    PROTO_TYPE = 11
    CAPTURE_ID = 12
    KEEP_ALIVE = 13
    AUTH_KEY = 14
    PAYLOAD = 15
    COMPRESSED_PAYLOAD = 16
    CORRELATION_ID = 17
    VLAN = 18
    NODE_NAME = 19


class HepProtoType(enum.IntEnum):
    """Chunk 11: what the payload is."""

    SIP = 1
    XMPP = 2
    SDP = 3
    RTP = 4
    RTCP_JSON = 5
    MGCP = 6
    MEGACO = 7
    M2UA = 8
    M3UA = 9
    IAX = 10
    H322 = 11
    H321 = 12
    M2PA = 13
    MOS_FULL = 34
    MOS_SHORT = 35
    SIP_JSON = 50
    DNS_JSON = 53
    M3UA_JSON = 54
    RTSP = 55
    DIAMETER = 56
    GSM_MAP = 57
    RTCP_PION = 58
    CDR = 60
    LOG = 100


_CHUNK_HEADER = struct.Struct("!HHH")
_V12_TIME = struct.Struct("<IIH2x")  # struct hep_timehdr, host order, padded to 12 octets

_MSG_SHORT = "HEP packet shorter than 6 octets"
_MSG_VERSION = "HEP magic or version is not recognised"
_MSG_TOTAL_SHORT = "HEP total length is shorter than its header"
_MSG_TOTAL_LONG = "HEP total length exceeds the datagram"
_MSG_TRAILING = "HEP datagram is longer than its total length"
_MSG_CHUNK_HEADER = "HEP chunk header is truncated"
_MSG_CHUNK_LENGTH = "HEP chunk length is shorter than its header"
_MSG_CHUNK_OVERRUN = "HEP chunk exceeds the packet"
_MSG_CHUNK_SIZE = "HEP chunk has the wrong size for its type"
_MSG_ZLIB = "HEP compressed payload is not valid zlib data"
_MSG_ZLIB_LIMIT = "HEP compressed payload exceeds the size limit"
_MSG_ZLIB_TRUNCATED = "HEP compressed payload is truncated"
_MSG_V12_FAMILY = "HEPv2 address family is not IPv4 or IPv6"
_MSG_V12_HEADER = "HEPv2 header length does not match its family"
_MSG_V12_SHORT = "HEPv2 packet shorter than its header"


@dataclass(frozen=True, slots=True)
class HepChunk:
    """One HEPv3 chunk as sent: vendor id, type id and value (chunk header not included)."""

    vendor: int
    type: int
    value: bytes

    def __bytes__(self) -> bytes:
        return _CHUNK_HEADER.pack(self.vendor, self.type, 6 + len(self.value)) + self.value


def _unsigned(size: int) -> Callable[[bytes], int]:
    def decode(value: bytes) -> int:
        if len(value) != size:
            raise HepParseError(_MSG_CHUNK_SIZE)
        return int.from_bytes(value, "big")

    return decode


def _capture_id(value: bytes) -> int:
    # the spec says 32 bits; some old agents send 16
    if len(value) not in (2, 4):
        raise HepParseError(_MSG_CHUNK_SIZE)
    return int.from_bytes(value, "big")


def _ipv4(value: bytes) -> str:
    if len(value) != 4:
        raise HepParseError(_MSG_CHUNK_SIZE)
    return f"{value[0]}.{value[1]}.{value[2]}.{value[3]}"


def _ipv6(value: bytes) -> str:
    if len(value) != 16:
        raise HepParseError(_MSG_CHUNK_SIZE)
    return str(ipaddress.IPv6Address(value))


def _text(value: bytes) -> str:
    # C agents often send the terminating NUL; text from the wire is decoded leniently
    return value.rstrip(b"\0").decode("utf-8", "replace")


def _raw(value: bytes) -> bytes:
    return value


# vendor 0 chunk type -> (field it sets while decoding, decoder)
_DECODERS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    HepChunkType.IP_FAMILY: ("ip_family", _unsigned(1)),
    HepChunkType.IP_PROTO: ("ip_proto", _unsigned(1)),
    HepChunkType.IPV4_SRC: ("src_ip", _ipv4),
    HepChunkType.IPV4_DST: ("dst_ip", _ipv4),
    HepChunkType.IPV6_SRC: ("src_ip", _ipv6),
    HepChunkType.IPV6_DST: ("dst_ip", _ipv6),
    HepChunkType.SRC_PORT: ("src_port", _unsigned(2)),
    HepChunkType.DST_PORT: ("dst_port", _unsigned(2)),
    HepChunkType.TIMESTAMP_SEC: ("ts_sec", _unsigned(4)),
    HepChunkType.TIMESTAMP_USEC: ("ts_usec", _unsigned(4)),
    HepChunkType.PROTO_TYPE: ("proto_type", _unsigned(1)),
    HepChunkType.CAPTURE_ID: ("capture_id", _capture_id),
    HepChunkType.KEEP_ALIVE: ("keep_alive", _unsigned(2)),
    HepChunkType.AUTH_KEY: ("auth_key", _text),
    HepChunkType.PAYLOAD: ("payload", _raw),
    HepChunkType.COMPRESSED_PAYLOAD: ("compressed_payload", _raw),
    HepChunkType.CORRELATION_ID: ("correlation_id", _text),
    HepChunkType.VLAN: ("vlan", _unsigned(2)),
    HepChunkType.NODE_NAME: ("node_name", _text),
}
# decoded names that are HepPacket fields as they are (the others are combined below)
_PACKET_FIELDS = frozenset(
    {
        "ip_family", "ip_proto", "proto_type", "capture_id", "auth_key", "correlation_id",
        "vlan", "node_name", "payload",
    }
)  # fmt: skip


def _inflate(data: bytes, limit: int) -> bytes:
    """Inflate a zlib (or gzip) stream, refusing more than ``limit`` octets of output."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header, detected
    try:
        payload = inflater.decompress(data, limit)
    except zlib.error:
        raise HepParseError(_MSG_ZLIB) from None
    if inflater.unconsumed_tail or (not inflater.eof and len(payload) >= limit):
        raise HepParseError(_MSG_ZLIB_LIMIT)
    if not inflater.eof:
        raise HepParseError(_MSG_ZLIB_TRUNCATED)
    return payload


@dataclass(frozen=True, slots=True)
class HepPacket:
    """One HEP message, decoded.

    ``at`` is the capture time in int ns (seconds * 10^9 + microseconds * 1000), None when
    the agent sent no timestamp. ``src``/``dst`` are None without an address chunk; a missing
    port reads as 0. ``payload`` is inflated when ``compressed``. For HEPv3, ``chunks`` holds
    every chunk as sent (vendor chunks, unknown types and repeats included: the last of a
    repeated type sets the field) and ``bytes(packet)`` rebuilds the datagram exactly; HEPv1/v2
    packets have no chunks and ``bytes()`` rebuilds their canonical form.
    """

    version: int = 3
    proto_type: int | None = None
    src: Endpoint | None = None
    dst: Endpoint | None = None
    at: int | None = None
    payload: bytes = b""
    compressed: bool = False
    ip_family: int | None = None
    ip_proto: int | None = None
    capture_id: int | None = None
    auth_key: str | None = None
    correlation_id: str | None = None
    vlan: int | None = None
    node_name: str | None = None
    chunks: tuple[HepChunk, ...] = ()

    @property
    def total_length(self) -> int:
        """Length of the message on the wire (HEPv3: the header's total length field)."""
        return len(bytes(self))

    @classmethod
    def parse(cls, data: bytes, max_payload: int = MAX_PAYLOAD) -> HepPacket:
        """Parse one HEP datagram (v3, or legacy v1/v2); raises `HepParseError`."""
        if len(data) < 6:
            raise HepParseError(_MSG_SHORT)
        if data[:4] == HEP3_MAGIC:
            return cls._parse_v3(data, max_payload)
        if data[0] in (1, 2):
            return cls._parse_v12(data)
        raise HepParseError(_MSG_VERSION)

    @classmethod
    def _parse_v3(cls, data: bytes, max_payload: int) -> HepPacket:
        total = (data[4] << 8) | data[5]
        if total < 6:
            raise HepParseError(_MSG_TOTAL_SHORT)
        if total > len(data):
            raise HepParseError(_MSG_TOTAL_LONG)
        if total < len(data):
            raise HepParseError(_MSG_TRAILING)
        offset, chunks = 6, []
        while offset < total:
            if offset + 6 > total:
                raise HepParseError(_MSG_CHUNK_HEADER)
            vendor, chunk_type, length = _CHUNK_HEADER.unpack_from(data, offset)
            if length < 6:
                raise HepParseError(_MSG_CHUNK_LENGTH)
            if offset + length > total:
                raise HepParseError(_MSG_CHUNK_OVERRUN)
            chunks.append(HepChunk(vendor, chunk_type, data[offset + 6 : offset + length]))
            offset += length
        return cls._from_chunks(tuple(chunks), max_payload)

    @classmethod
    def _from_chunks(cls, chunks: tuple[HepChunk, ...], max_payload: int) -> HepPacket:
        decoded: dict[str, Any] = {}
        for chunk in chunks:
            if chunk.vendor == 0 and chunk.type in _DECODERS:
                name, decode = _DECODERS[chunk.type]
                decoded[name] = decode(chunk.value)
        fields = {name: value for name, value in decoded.items() if name in _PACKET_FIELDS}
        if "compressed_payload" in decoded:
            fields["payload"] = _inflate(decoded["compressed_payload"], max_payload)
            fields["compressed"] = True
        for side in ("src", "dst"):
            if side + "_ip" in decoded:
                fields[side] = Endpoint(decoded[side + "_ip"], decoded.get(side + "_port", 0))
        if "ts_sec" in decoded:
            fields["at"] = decoded["ts_sec"] * 1_000_000_000 + decoded.get("ts_usec", 0) * 1000
        return cls(version=3, chunks=chunks, **fields)

    @classmethod
    def _parse_v12(cls, data: bytes) -> HepPacket:
        if len(data) < 8:
            raise HepParseError(_MSG_V12_SHORT)
        version, header_length, family, ip_proto, src_port, dst_port = struct.unpack_from(
            "!BBBBHH", data
        )
        if family not in (AF_INET, AF_INET6):
            raise HepParseError(_MSG_V12_FAMILY)
        address_length = 8 if family == AF_INET else 32
        if header_length != 8 + address_length:
            raise HepParseError(_MSG_V12_HEADER)
        payload_at = header_length + (_V12_TIME.size if version == 2 else 0)
        if len(data) < payload_at:
            raise HepParseError(_MSG_V12_SHORT)
        decode = _ipv4 if family == AF_INET else _ipv6
        half = address_length // 2
        src_ip, dst_ip = decode(data[8 : 8 + half]), decode(data[8 + half : header_length])
        at = capture_id = None
        if version == 2:
            seconds, micros, capture_id = _V12_TIME.unpack_from(data, header_length)
            at = seconds * 1_000_000_000 + micros * 1000
        return cls(
            version=version,
            src=Endpoint(src_ip, src_port),
            dst=Endpoint(dst_ip, dst_port),
            at=at,
            payload=data[payload_at:],
            ip_family=family,
            ip_proto=ip_proto,
            capture_id=capture_id,
        )

    @classmethod
    def build(
        cls,
        *,
        payload: bytes,
        src: Endpoint,
        dst: Endpoint,
        at: int,
        proto_type: int = HepProtoType.SIP,
        ip_proto: int = 17,
        capture_id: int | None = None,
        auth_key: str | None = None,
        correlation_id: str | None = None,
        vlan: int | None = None,
        node_name: str | None = None,
        compress: bool = False,
        extra_chunks: Iterable[HepChunk] = (),
    ) -> HepPacket:
        """A HEPv3 packet as agents send it (the time is kept to the microsecond)."""
        src_ip, dst_ip = ipaddress.ip_address(src.ip), ipaddress.ip_address(dst.ip)
        ipv6 = src_ip.version == 6
        chunk = HepChunk
        chunks = [
            chunk(0, HepChunkType.IP_FAMILY, bytes((AF_INET6 if ipv6 else AF_INET,))),
            chunk(0, HepChunkType.IP_PROTO, bytes((ip_proto,))),
            chunk(0, HepChunkType.IPV6_SRC if ipv6 else HepChunkType.IPV4_SRC, src_ip.packed),
            chunk(0, HepChunkType.IPV6_DST if ipv6 else HepChunkType.IPV4_DST, dst_ip.packed),
            chunk(0, HepChunkType.SRC_PORT, src.port.to_bytes(2, "big")),
            chunk(0, HepChunkType.DST_PORT, dst.port.to_bytes(2, "big")),
            chunk(0, HepChunkType.TIMESTAMP_SEC, (at // 1_000_000_000).to_bytes(4, "big")),
            chunk(0, HepChunkType.TIMESTAMP_USEC, (at % 1_000_000_000 // 1000).to_bytes(4, "big")),
            chunk(0, HepChunkType.PROTO_TYPE, bytes((proto_type,))),
        ]
        if capture_id is not None:
            chunks.append(chunk(0, HepChunkType.CAPTURE_ID, capture_id.to_bytes(4, "big")))
        for chunk_type, text in (
            (HepChunkType.AUTH_KEY, auth_key),
            (HepChunkType.CORRELATION_ID, correlation_id),
            (HepChunkType.NODE_NAME, node_name),
        ):
            if text is not None:
                chunks.append(chunk(0, chunk_type, text.encode()))
        if vlan is not None:
            chunks.append(chunk(0, HepChunkType.VLAN, vlan.to_bytes(2, "big")))
        chunks.extend(extra_chunks)
        if compress:
            chunks.append(chunk(0, HepChunkType.COMPRESSED_PAYLOAD, zlib.compress(payload)))
        else:
            chunks.append(chunk(0, HepChunkType.PAYLOAD, payload))
        return cls._from_chunks(tuple(chunks), max(MAX_PAYLOAD, len(payload)))

    def __bytes__(self) -> bytes:
        if self.version == 3:
            body = b"".join(map(bytes, self.chunks))
            return HEP3_MAGIC + (6 + len(body)).to_bytes(2, "big") + body
        return self._bytes_v12()

    def _bytes_v12(self) -> bytes:
        assert self.src is not None and self.dst is not None and self.ip_family is not None
        ipv6 = self.ip_family == AF_INET6
        header = struct.pack(
            "!BBBBHH",
            self.version,
            40 if ipv6 else 16,
            self.ip_family,
            self.ip_proto or 0,
            self.src.port,
            self.dst.port,
        )
        src_ip, dst_ip = ipaddress.ip_address(self.src.ip), ipaddress.ip_address(self.dst.ip)
        parts = [header, src_ip.packed, dst_ip.packed]
        if self.version == 2:
            at = self.at or 0
            seconds, micros = at // 1_000_000_000, at % 1_000_000_000 // 1000
            parts.append(_V12_TIME.pack(seconds, micros, self.capture_id or 0))
        parts.append(self.payload)
        return b"".join(parts)


class HepFramer:
    """Cuts a HEPv3-over-TCP byte stream into whole messages, by their total length.

    Sans-IO and total: `feed` never raises. Bytes that cannot start a message (no "HEP3"
    magic, or a total length shorter than the header) are skipped up to the next magic and
    counted in ``discarded``. At most one partial message (< 64 KiB) is buffered.
    """

    __slots__ = ("_buffer", "discarded")

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: octets skipped while looking for the next "HEP3" magic
        self.discarded = 0

    @property
    def pending(self) -> int:
        """Octets buffered, waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append received bytes; return the complete messages now available, in order."""
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        offset = 0
        while len(buffer) - offset >= 6:
            if buffer[offset : offset + 4] != HEP3_MAGIC:
                found = buffer.find(HEP3_MAGIC, offset + 1)
                # keep the last 3 octets: a magic may straddle two reads
                resume = found if found >= 0 else max(offset, len(buffer) - 3)
                self.discarded += resume - offset
                offset = resume
                if found < 0:
                    break
                continue
            total = (buffer[offset + 4] << 8) | buffer[offset + 5]
            if total < 6:
                self.discarded += 1
                offset += 1
                continue
            if len(buffer) - offset < total:
                break
            messages.append(bytes(buffer[offset : offset + total]))
            offset += total
        del buffer[:offset]
        return messages
