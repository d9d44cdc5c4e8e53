"""Builders of synthetic frames and capture files for the capture tests.

Only for layouts the shared test data does not contain (VLAN, QinQ, IPv6 extension headers,
SLL2, NULL/LOOP, fragments, TCP reordering, pcapng variants); real captures are read from
../shared/testdata.
"""

from __future__ import annotations

import socket
import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ip4(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, text)


def ip6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def udp(sport: int, dport: int, payload: bytes, length: int | None = None) -> bytes:
    size = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, size, 0) + payload


def tcp(sport: int, dport: int, seq: int, flags: str = "A", payload: bytes = b"") -> bytes:
    bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}
    value = sum(bits[f] for f in flags)
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, value, 65535, 0, 0) + payload


def ipv4(
    src: str,
    dst: str,
    l4: bytes,
    *,
    proto: int = 17,
    ident: int = 1,
    ttl: int = 64,
    offset: int = 0,
    more: bool = False,
    options: bytes = b"",
) -> bytes:
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more else 0) | (offset // 8)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(l4),
        ident,
        flags,
        ttl,
        proto,
        0,
        ip4(src),
        ip4(dst),
    )
    return header + options + l4


def ipv6(src: str, dst: str, l4: bytes, *, next_header: int = 17, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(l4), next_header, hop_limit) + ip6(src) + ip6(dst) + l4


def ext(next_header: int, body: bytes = b"\0" * 6) -> bytes:
    """A hop-by-hop / routing / destination options header (body padded to 8n - 2)."""
    assert (len(body) + 2) % 8 == 0
    return bytes([next_header, (len(body) + 2) // 8 - 1]) + body


def frag6(next_header: int, offset: int, more: bool, ident: int, data: bytes) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset | int(more), ident) + data


def ether(
    packet: bytes, *, ethertype: int = 0x0800, tags: tuple[tuple[int, int], ...] = ()
) -> bytes:
    """Ethernet II; ``tags`` are (TPID, VLAN id) outermost first."""
    head = MAC_B + MAC_A
    for tpid, vid in tags:
        head += struct.pack("!H", tpid) + struct.pack("!H", vid)
    return head + struct.pack("!H", ethertype) + packet


def sll(packet: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", protocol) + packet


def sll2(packet: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", protocol, 0, 3, 1, 0, 6, MAC_A + b"\0\0") + packet


def pcap(
    records: list[tuple[int, bytes]],
    *,
    linktype: int = 1,
    big: bool = False,
    nano: bool = False,
    network_extra: int = 0,
) -> bytes:
    order = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype | network_extra)
    for at, data in records:
        sec, rest = divmod(at, 1_000_000_000)
        frac = rest if nano else rest // 1000
        out += struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data
    return out


# -- pcapng ---------------------------------------------------------------------------------


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = 12 + len(body)
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return block(order, 0x0A0D0D0A, body)


def idb(order: str, linktype: int, *, tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + opts)


def epb(order: str, iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 6, head + data)


def spb(order: str, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data)) + data)


def obsolete_pb(order: str, iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 2, head + data)


def sip_request(method: str = "INVITE", body: bytes = b"", call_id: str = "c1") -> bytes:
    head = (
        f"{method} sip:bob@example.org SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{call_id}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
