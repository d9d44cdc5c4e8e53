"""A tiny test-local capture reader: UDP payloads out of classic pcap and simple pcapng.

Only what the protocol tests need while the real capture layer is being written: classic
pcap (micro- or nanosecond magic, either byte order) and pcapng (SHB/IDB/EPB/SPB), link
types Ethernet (with 802.1Q tags), Linux SLL, BSD loopback (DLT_NULL) and raw IP; IPv4 and
IPv6 (no extension headers); UDP only. IP fragments other than a first fragment that holds
the whole UDP datagram are skipped. Never use this outside tests.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

from callscope.core import Endpoint

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_SHB = 0x0A0D0D0A


@dataclass(frozen=True)
class UdpRecord:
    """One UDP datagram: 1-based frame number in the file, capture time in ns, endpoints."""

    frame: int
    at: int
    src: Endpoint
    dst: Endpoint
    payload: bytes


def read_udp(path: Path) -> list[UdpRecord]:
    """All UDP datagrams of a capture file, in file order."""
    data = path.read_bytes()
    if data[:4] in _PCAP_MAGIC:
        frames = _pcap_frames(data)
    elif struct.unpack_from("<I", data)[0] == _PCAPNG_SHB:
        frames = _pcapng_frames(data)
    else:
        raise ValueError("not a pcap or pcapng file")
    records = []
    for number, (at, linktype, frame) in enumerate(frames, start=1):
        udp = _udp_of_frame(linktype, frame)
        if udp is not None:
            src, dst, payload = udp
            records.append(UdpRecord(number, at, src, dst, payload))
    return records


def _pcap_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    order, ns_per_tick = _PCAP_MAGIC[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset, frames = 24, []
    while offset + 16 <= len(data):
        sec, frac, caplen, _wirelen = record.unpack_from(data, offset)
        offset += 16
        frames.append(
            (sec * 1_000_000_000 + frac * ns_per_tick, linktype, data[offset : offset + caplen])
        )
        offset += caplen
    return frames


def _pcapng_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    order = "<"
    interfaces: list[tuple[int, int]] = []  # (linktype, ns numerator / ticks per second)
    offset, frames = 0, []
    while offset + 12 <= len(data):
        block_type = struct.unpack_from(order + "I", data, offset)[0]
        if block_type == _PCAPNG_SHB:
            order = "<" if data[offset + 8 : offset + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        length = struct.unpack_from(order + "I", data, offset + 4)[0]
        body = data[offset + 8 : offset + length - 4]
        if block_type == 1:  # Interface Description Block
            linktype = struct.unpack_from(order + "H", body)[0]
            interfaces.append((linktype, _tsresol(body[8:], order)))
        elif block_type == 6:  # Enhanced Packet Block
            iface, high, low, caplen = struct.unpack_from(order + "IIII", body)
            linktype, per_second = interfaces[iface]
            ticks = (high << 32) | low
            at = ticks * 1_000_000_000 // per_second
            frames.append((at, linktype, body[20 : 20 + caplen]))
        elif block_type == 3:  # Simple Packet Block: no timestamp
            wirelen = struct.unpack_from(order + "I", body)[0]
            frames.append((0, interfaces[0][0], body[4 : 4 + wirelen]))
        offset += length
    return frames


def _tsresol(options: bytes, order: str) -> int:
    """Ticks per second of an interface (option if_tsresol, code 9; default microseconds)."""
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, offset)
        if code == 0:
            break
        if code == 9:
            value = options[offset + 4]
            return 2 ** (value & 0x7F) if value & 0x80 else 10 ** (value & 0x7F)
        offset += 4 + (length + 3) // 4 * 4
    return 1_000_000


def _network_of_frame(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, network-layer bytes) of a link-layer frame."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype, offset = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in (0x8100, 0x88A8):
            ethertype, offset = struct.unpack_from("!H", frame, offset + 2)[0], offset + 4
        return ethertype, frame[offset:]
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        family = frame[0] if frame[0] else frame[3]
        return (0x0800 if family == 2 else 0x86DD), frame[4:]
    if linktype == LINKTYPE_RAW:
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame
    return None


def _udp_of_frame(linktype: int, frame: bytes) -> tuple[Endpoint, Endpoint, bytes] | None:
    network = _network_of_frame(linktype, frame)
    if network is None:
        return None
    ethertype, packet = network
    if ethertype == 0x0800 and len(packet) >= 20 and packet[0] >> 4 == 4:
        header_length = (packet[0] & 0x0F) * 4
        total_length, flags_fragment = struct.unpack_from("!H2xH", packet, 2)
        if packet[9] != 17 or flags_fragment & 0x1FFF:
            return None
        src_ip = ".".join(str(octet) for octet in packet[12:16])
        dst_ip = ".".join(str(octet) for octet in packet[16:20])
        udp = packet[header_length:total_length]
    elif ethertype == 0x86DD and len(packet) >= 40 and packet[6] == 17:
        src_ip = str(ipaddress.IPv6Address(packet[8:24]))
        dst_ip = str(ipaddress.IPv6Address(packet[24:40]))
        udp = packet[40 : 40 + struct.unpack_from("!H", packet, 4)[0]]
    else:
        return None
    if len(udp) < 8:
        return None
    src_port, dst_port, udp_length = struct.unpack_from("!HHH", udp)
    if udp_length < 8 or udp_length > len(udp):
        return None
    return Endpoint(src_ip, src_port), Endpoint(dst_ip, dst_port), udp[8:udp_length]
