"""Stateless link, network and transport decoding of one captured frame.

`link_layer` finds the network header behind any supported link header (registry
`LINK_LAYERS`), `ip_packet` decodes IPv4 / IPv6 (with extension headers) into an
`IpPacket`, `udp_payload` / `tcp_segment` read the transport header. Bad frames raise
`MalformedFrameError` (a `CaptureParseError` whose ``kind`` names what was wrong); callers
count them, they never stop a capture.

The stateful work (fragment reassembly, TCP streams, duplicate suppression, building
`Datagram`s) is in `callscope.capture.source`, which also holds an inlined fast path for the
common Ethernet/IPv4/UDP frame; this module is the reference it must agree with.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

from callscope.capture.errors import CaptureParseError

# https://www.tcpdump.org/linktypes.html
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12  # DLT_RAW on some BSDs, written as-is into pcap files
LINKTYPE_RAW_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100  # IEEE 802.1Q C-tag
ETHERTYPE_QINQ = 0x88A8  # IEEE 802.1ad S-tag
ETHERTYPE_QINQ_OLD = 0x9100  # pre-standard QinQ
ETHERTYPE_MPLS = 0x8847
ETHERTYPE_PPPOE = 0x8864  # PPPoE session stage (RFC 2516)
NOT_IP = 0  # `link_layer` result: no IP behind this link header

IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_DSTOPTS = 60
IPPROTO_NONE = 59

_VLAN_TAGS = frozenset({ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD})
# RFC 1332 / RFC 5072: PPP protocol numbers of IPv4 and IPv6
_PPP_PROTOCOLS = {0x0021: ETHERTYPE_IPV4, 0x0057: ETHERTYPE_IPV6}
# RFC 8200 4.1: extension headers walked to reach the upper layer (fragment handled apart)
_IPV6_SKIPPED = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS})
_MAX_EXTENSIONS = 8

FRAME_ERRORS = {
    "link.short": "frame shorter than its link header",
    "link.unsupported": "link type not supported",
    "ipv4.header": "IPv4 header invalid",
    "ipv4.short": "IPv4 packet longer than the captured frame",
    "ipv6.header": "IPv6 header invalid",
    "ipv6.short": "IPv6 packet longer than the captured frame",
    "ipv6.extension": "IPv6 extension header invalid",
    "udp.header": "UDP header invalid",
    "tcp.header": "TCP header invalid",
    "frag.invalid": "IP fragment invalid",
}


class MalformedFrameError(CaptureParseError):
    """One frame that cannot be decoded; ``kind`` is a key of `FRAME_ERRORS`."""

    def __init__(self, kind: str) -> None:
        super().__init__(FRAME_ERRORS[kind])
        self.kind = kind


# -- link layer ----------------------------------------------------------------------------

LinkResult = tuple[int, int, int | None]  # (ethertype or NOT_IP, network offset, vlan)
_H = struct.Struct("!H").unpack_from


def _ethertype_chain(frame: bytes, ethertype: int, at: int) -> LinkResult:
    """Walk 802.1Q/802.1ad tags, MPLS labels (RFC 3032) and a PPPoE session header from
    ``at`` (IEEE 802.1Q 9.6)."""
    vlan = None
    for _ in range(8):
        if ethertype in _VLAN_TAGS:
            if len(frame) < at + 4:
                raise MalformedFrameError("link.short")
            tci, ethertype = struct.unpack_from("!HH", frame, at)
            vlan = tci & 0x0FFF  # QinQ: the innermost (customer) tag wins
            at += 4
        elif ethertype == ETHERTYPE_MPLS:
            # RFC 3032 2.1: pop labels up to bottom-of-stack, then guess IP by version
            while True:
                if len(frame) < at + 5:
                    raise MalformedFrameError("link.short")
                bottom = frame[at + 2] & 1
                at += 4
                if bottom:
                    break
            return _by_version(frame, at), at, vlan
        elif ethertype == ETHERTYPE_PPPOE:
            # RFC 2516 4: version/type, code, session id, length; then the PPP protocol
            if len(frame) < at + 8:
                raise MalformedFrameError("link.short")
            return _PPP_PROTOCOLS.get(_H(frame, at + 6)[0], NOT_IP), at + 8, vlan
        else:
            break
    return ethertype, at, vlan


def _ethernet(frame: bytes) -> LinkResult:
    if len(frame) < 14:
        raise MalformedFrameError("link.short")
    return _ethertype_chain(frame, _H(frame, 12)[0], 14)


def _by_version(frame: bytes, at: int) -> int:
    if len(frame) <= at:
        raise MalformedFrameError("link.short")
    version = frame[at] >> 4
    if version == 4:
        return ETHERTYPE_IPV4
    if version == 6:
        return ETHERTYPE_IPV6
    return NOT_IP


def _raw(frame: bytes) -> LinkResult:
    return _by_version(frame, 0), 0, None


def _linux_sll(frame: bytes) -> LinkResult:
    # LINKTYPE_LINUX_SLL: packet type, ARPHRD, address length, 8 address bytes, protocol
    if len(frame) < 16:
        raise MalformedFrameError("link.short")
    return _ethertype_chain(frame, _H(frame, 14)[0], 16)


def _linux_sll2(frame: bytes) -> LinkResult:
    # LINKTYPE_LINUX_SLL2: protocol, reserved, ifindex, ARPHRD, packet type, addr len, addr
    if len(frame) < 20:
        raise MalformedFrameError("link.short")
    return _ethertype_chain(frame, _H(frame, 0)[0], 20)


# BSD address family values for IPv4 / IPv6 (IPv6 differs per OS: Linux 10, NetBSD/OpenBSD
# 24, FreeBSD 28, Darwin 30)
_AF_FAMILIES = {2: ETHERTYPE_IPV4, 10: ETHERTYPE_IPV6, 24: ETHERTYPE_IPV6, 28: ETHERTYPE_IPV6}
_AF_FAMILIES[30] = ETHERTYPE_IPV6


def _null(frame: bytes) -> LinkResult:
    # LINKTYPE_NULL: 4-byte family in the byte order of the capturing host
    if len(frame) < 4:
        raise MalformedFrameError("link.short")
    family = int.from_bytes(frame[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(frame[:4], "big")
    return _AF_FAMILIES.get(family, NOT_IP), 4, None


def _loop(frame: bytes) -> LinkResult:
    # LINKTYPE_LOOP: like NULL but always big-endian (OpenBSD)
    if len(frame) < 4:
        raise MalformedFrameError("link.short")
    return _AF_FAMILIES.get(int.from_bytes(frame[:4], "big"), NOT_IP), 4, None


LINK_LAYERS: dict[int, Callable[[bytes], LinkResult]] = {
    LINKTYPE_NULL: _null,
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_RAW_12: _raw,
    LINKTYPE_RAW_14: _raw,
    LINKTYPE_RAW: _raw,
    LINKTYPE_LOOP: _loop,
    LINKTYPE_LINUX_SLL: _linux_sll,
    LINKTYPE_IPV4: _raw,
    LINKTYPE_IPV6: _raw,
    LINKTYPE_LINUX_SLL2: _linux_sll2,
}


def link_layer(linktype: int, frame: bytes) -> LinkResult:
    """Return ``(ethertype, offset, vlan)`` of the network packet inside ``frame``.

    ``ethertype`` is `NOT_IP` (0) or an EtherType such as ARP for frames without IP;
    raises `MalformedFrameError` for a short frame or an unsupported link type.
    """
    decoder = LINK_LAYERS.get(linktype)
    if decoder is None:
        raise MalformedFrameError("link.unsupported")
    return decoder(frame)


# -- network layer -------------------------------------------------------------------------


class IpPacket(NamedTuple):
    """One IP packet (or fragment) with the fields the pipeline needs.

    ``src`` / ``dst`` are the raw 4 or 16 address bytes; ``proto`` the upper-layer protocol
    (for a fragment: the protocol of the reassembled payload); ``payload`` the bytes after
    the IP header(s); ``ident`` / ``frag_offset`` / ``more`` describe fragmentation
    (``fragment`` is True for any piece of a fragmented datagram); ``tag`` is what, with
    the addresses, ports and payload, tells two sendings of the same bytes apart for
    duplicate suppression: the IPv4 Identification, the IPv6 flow label.
    """

    version: int
    src: bytes
    dst: bytes
    proto: int
    payload: bytes
    fragment: bool
    ident: int
    frag_offset: int
    more: bool
    tag: int


_IPV4 = struct.Struct("!BBHHHBB")


def ipv4_packet(frame: bytes, at: int) -> IpPacket:
    """RFC 791 3.1: IPv4 header (options skipped), cut to its Total Length."""
    if len(frame) < at + 20:
        raise MalformedFrameError("ipv4.header")
    vihl, _tos, total, ident, flags, _ttl, proto = _IPV4.unpack_from(frame, at)
    ihl = (vihl & 0x0F) * 4
    if total == 0 and len(frame) >= at + ihl:
        # a segmentation-offloaded packet captured on its sender (TSO/GSO) has Total
        # Length 0: it extends to the end of the frame (as Wireshark assumes)
        total = len(frame) - at
    if vihl >> 4 != 4 or ihl < 20 or total < ihl:
        raise MalformedFrameError("ipv4.header")
    end = at + total
    if end > len(frame):
        raise MalformedFrameError("ipv4.short")
    offset = (flags & 0x1FFF) * 8
    more = bool(flags & 0x2000)
    return IpPacket(
        4,
        frame[at + 12 : at + 16],
        frame[at + 16 : at + 20],
        proto,
        frame[at + ihl : end],
        more or offset > 0,
        ident,
        offset,
        more,
        ident,
    )


def ipv6_packet(frame: bytes, at: int) -> IpPacket:
    """RFC 8200 3-4: IPv6 header and extension headers up to the upper layer."""
    if len(frame) < at + 40 or frame[at] >> 4 != 6:
        raise MalformedFrameError("ipv6.header")
    (length,) = _H(frame, at + 4)
    end = at + 40 + length
    if end > len(frame):
        raise MalformedFrameError("ipv6.short")
    if length == 0:
        raise MalformedFrameError("ipv6.header")  # RFC 2675 jumbograms are not expected
    src, dst = frame[at + 8 : at + 24], frame[at + 24 : at + 40]
    flow_label = _H(frame, at + 2)[0] | (frame[at + 1] & 0x0F) << 16
    proto, pos = ipv6_extensions(frame[at + 6], frame, at + 40, end)
    if proto != IPPROTO_FRAGMENT:
        return IpPacket(6, src, dst, proto, frame[pos:end], False, 0, 0, False, flow_label)
    # RFC 8200 4.5: next header, reserved, offset/flags, identification
    if pos + 8 > end:
        raise MalformedFrameError("ipv6.extension")
    nxt, _res, offset_flags, ident = struct.unpack_from("!BBHI", frame, pos)
    offset = offset_flags & 0xFFF8
    more = bool(offset_flags & 1)
    return IpPacket(6, src, dst, nxt, frame[pos + 8 : end], True, ident, offset, more, flow_label)


def ipv6_extensions(proto: int, data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Skip hop-by-hop, routing and destination options headers (RFC 8200 4.3-4.6).

    Returns the next protocol and where it starts; stops at a fragment header.
    """
    for _ in range(_MAX_EXTENSIONS):
        if proto not in _IPV6_SKIPPED:
            return proto, pos
        if pos + 2 > end:
            raise MalformedFrameError("ipv6.extension")
        proto, size = data[pos], (data[pos + 1] + 1) * 8
        pos += size
        if pos > end:
            raise MalformedFrameError("ipv6.extension")
    raise MalformedFrameError("ipv6.extension")


def ip_packet(frame: bytes, ethertype: int, at: int) -> IpPacket | None:
    """Decode the IPv4 or IPv6 packet at ``frame[at]``; None for other EtherTypes."""
    if ethertype == ETHERTYPE_IPV4:
        return ipv4_packet(frame, at)
    if ethertype == ETHERTYPE_IPV6:
        return ipv6_packet(frame, at)
    return None


# -- transport layer -----------------------------------------------------------------------

_UDP = struct.Struct("!HHH")
_TCP = struct.Struct("!HHIIBB")


def udp_payload(segment: bytes) -> tuple[int, int, bytes]:
    """RFC 768: ``(source port, destination port, payload)`` cut to the UDP length."""
    if len(segment) < 8:
        raise MalformedFrameError("udp.header")
    sport, dport, length = _UDP.unpack_from(segment)
    if length < 8 or length > len(segment):
        if length != 0:  # RFC 2675 4: 0 for IPv6 jumbograms; else take the IP length
            raise MalformedFrameError("udp.header")
        length = len(segment)
    return sport, dport, segment[8:length]


# TCP flag bits (RFC 9293 3.1)
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04


class TcpSegment(NamedTuple):
    """RFC 9293 3.1: the fields of a TCP header the stream reassembly needs."""

    sport: int
    dport: int
    seq: int
    flags: int
    payload: bytes


def tcp_segment(segment: bytes) -> TcpSegment:
    """Decode a TCP header (options skipped)."""
    if len(segment) < 20:
        raise MalformedFrameError("tcp.header")
    sport, dport, seq, _ack, offset, flags = _TCP.unpack_from(segment)
    size = (offset >> 4) * 4
    if size < 20 or size > len(segment):
        raise MalformedFrameError("tcp.header")
    return TcpSegment(sport, dport, seq, flags, segment[size:])


# -- addresses -----------------------------------------------------------------------------


def format_ip(raw: bytes) -> str:
    """Canonical text of 4 or 16 raw address bytes: the same text as ``str(ipaddress...)``
    (which `Endpoint.parse` uses), RFC 5952 for IPv6. Callers cache the result.
    """
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    text = socket.inet_ntop(socket.AF_INET6, raw)
    if "." in text:
        # glibc writes IPv4-mapped/compatible addresses in dotted form, ipaddress in hex
        return str(ipaddress.IPv6Address(raw))
    return text
