"""A tiny capture walker for protocol tests only (the real one lives in callscope.capture).

Reads classic pcap, pcapng and Microsoft NetMon 2 files (the PROTOS capture is one) with
Ethernet (+VLAN, PPPoE), BSD loopback and Linux cooked link layers, IPv4 (fragments reassembled
naively) and IPv6 without extension headers, and yields UDP and TCP payloads in capture
order. No TCP reordering: good enough for the test captures, nothing more.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

UDP, TCP = 17, 6


@dataclass(frozen=True)
class Payload:
    frame: int
    proto: int  # 17 UDP, 6 TCP
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes


def _frames(blob: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (link type, frame bytes) for each record of a pcap, pcapng or NetMon 2 file."""
    magic = blob[:4]
    if magic in (
        b"\xd4\xc3\xb2\xa1",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\xa1\xb2\x3c\x4d",
    ):
        end = "<" if magic[0] in (0xD4, 0x4D) else ">"
        link = struct.unpack_from(end + "I", blob, 20)[0] & 0xFFFF
        pos = 24
        while pos + 16 <= len(blob):
            incl = struct.unpack_from(end + "I", blob, pos + 8)[0]
            yield link, blob[pos + 16 : pos + 16 + incl]
            pos += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(blob)
    elif magic == b"GMBU":
        # NetMon 2.x: frame table of 4-byte offsets; frame = ts(8) len(4) avail(4) data
        link = 1 if struct.unpack_from("<H", blob, 6)[0] == 1 else -1
        table, table_len = struct.unpack_from("<II", blob, 24)
        for (offset,) in struct.iter_unpack("<I", blob[table : table + table_len]):
            avail = struct.unpack_from("<I", blob, offset + 12)[0]
            yield link, blob[offset + 16 : offset + 16 + avail]
    else:
        raise ValueError("unknown capture format")


def _pcapng(blob: bytes) -> Iterator[tuple[int, bytes]]:
    links: list[int] = []
    pos = 0
    end = "<"
    while pos + 12 <= len(blob):
        if blob[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            end = "<" if blob[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(end + "II", blob, pos)
        if blen < 12:
            return
        if btype == 1:
            links.append(struct.unpack_from(end + "H", blob, pos + 8)[0])
        elif btype == 6:
            iface, _, _, caplen = struct.unpack_from(end + "IIII", blob, pos + 8)
            yield links[iface], blob[pos + 28 : pos + 28 + caplen]
        elif btype == 3:
            yield links[0], blob[pos + 12 : pos + blen - 4]
        pos += blen


def _network(link: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, network-layer bytes) for the link types in the test captures."""
    if link == 1:  # Ethernet
        etype, pos = struct.unpack_from("!H", frame, 12)[0], 14
        while etype in (0x8100, 0x88A8):
            etype, pos = struct.unpack_from("!H", frame, pos + 2)[0], pos + 4
        if etype == 0x8864 and frame[pos + 6 : pos + 8] == b"\x00\x21":  # PPPoE session, IPv4
            etype, pos = 0x0800, pos + 8
        return etype, frame[pos:]
    if link in (0, 108):  # BSD loopback: 4-byte address family
        family = struct.unpack_from("<I" if link == 0 else "!I", frame)[0]
        return (0x0800 if family == 2 else 0x86DD), frame[4:]
    if link == 113:  # Linux cooked
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    return None


def payloads(path: Path) -> Iterator[Payload]:
    """Every UDP and TCP payload (non-empty) in the capture, in capture order."""
    fragments: dict[tuple[bytes, bytes, int], dict[int, bytes]] = {}
    for number, (link, frame) in enumerate(_frames(path.read_bytes()), start=1):
        net = _network(link, frame)
        if net is None:
            continue
        etype, packet = net
        if etype == 0x0800 and len(packet) >= 20:
            ihl = (packet[0] & 0x0F) * 4
            total = struct.unpack_from("!H", packet, 2)[0]
            flags_frag = struct.unpack_from("!H", packet, 6)[0]
            proto, src, dst = packet[9], packet[12:16], packet[16:20]
            data = packet[ihl:total]
            if flags_frag & 0x3FFF:  # MF set or offset > 0: collect, reassemble when whole
                key = (src, dst, struct.unpack_from("!H", packet, 4)[0])
                parts = fragments.setdefault(key, {})
                parts[(flags_frag & 0x1FFF) * 8] = data
                if flags_frag & 0x2000:
                    continue
                data = b"".join(parts[k] for k in sorted(parts))
                del fragments[key]
            src_ip, dst_ip = ".".join(map(str, src)), ".".join(map(str, dst))
        elif etype == 0x86DD and len(packet) >= 40:
            proto, data = packet[6], packet[40:]
            src_ip, dst_ip = packet[8:24].hex(), packet[24:40].hex()
        else:
            continue
        if proto == UDP and len(data) >= 8:
            sport, dport = struct.unpack_from("!HH", data)
            body = data[8:]
        elif proto == TCP and len(data) >= 20:
            sport, dport = struct.unpack_from("!HH", data)
            body = data[(data[12] >> 4) * 4 :]
        else:
            continue
        if body:
            yield Payload(number, proto, (src_ip, sport), (dst_ip, dport), body)
