"""Writing classic pcap files (Ethernet / IPv4 / UDP): for generated demo traffic and
benchmark captures. Nanosecond timestamps (magic 0xa1b23c4d)."""

from __future__ import annotations

import socket
import struct
from typing import BinaryIO

from callscope.core import Endpoint

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_ETHER = bytes.fromhex("0200000000020200000000010800")
_UDP = struct.Struct("!HHHH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def _checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Appends UDP datagrams as Ethernet frames to a pcap stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.ident = 0
        self._ip_cache: dict[str, bytes] = {}
        stream.write(_GLOBAL.pack(MAGIC_NS, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))

    def _ip(self, text: str) -> bytes:
        raw = self._ip_cache.get(text)
        if raw is None:
            raw = self._ip_cache[text] = socket.inet_aton(text)
        return raw

    def udp(self, at: int, src: Endpoint, dst: Endpoint, payload: bytes) -> None:
        """One UDP datagram over IPv4 (no fragmentation: keep payloads under the MTU)."""
        udp = _UDP.pack(src.port, dst.port, 8 + len(payload), 0) + payload
        self.ident = (self.ident + 1) & 0xFFFF
        header = _IPV4.pack(0x45, 0, 20 + len(udp), self.ident, 0x4000, 64, 17, 0,
                            self._ip(src.ip), self._ip(dst.ip))  # fmt: skip
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        frame = _ETHER + header + udp
        seconds, nanos = divmod(at, 1_000_000_000)
        self.stream.write(_RECORD.pack(seconds, nanos, len(frame), len(frame)) + frame)
