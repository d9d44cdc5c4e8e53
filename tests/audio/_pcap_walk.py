"""A test-local classic-pcap walker: Ethernet (also DLT_NULL and Linux SLL) / IPv4 / UDP -> RTP.

Only for the audio tests until the capture layer lands: it reads little- or big-endian
classic pcap, skips anything that is not an unfragmented IPv4 UDP datagram, and parses the
fixed RTP header (RFC 3550 5.1) with CSRC and extension skipping. No validation beyond that.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from callscope.audio.packets import MediaPacket


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    at_ns: int
    src: str
    dst: str
    payload: bytes


def udp_datagrams(path: Path) -> list[UdpDatagram]:
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    out: list[UdpDatagram] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        frame = data[off : off + incl]
        off += incl
        at_ns = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        ip = _ip_payload(frame, linktype)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:
            continue  # fragment
        total = struct.unpack_from("!H", ip, 2)[0]
        udp = ip[ihl:total]
        if len(udp) < 8:
            continue
        sport, dport = struct.unpack_from("!HH", udp, 0)
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        out.append(UdpDatagram(at_ns, f"{src}:{sport}", f"{dst}:{dport}", bytes(udp[8:])))
    return out


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == 1:  # Ethernet, possibly 802.1Q tagged
        off, ethertype = 14, struct.unpack_from("!H", frame, 12)[0]
        while ethertype in (0x8100, 0x88A8):
            ethertype = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        return frame[off:] if ethertype == 0x0800 else None
    if linktype == 0:  # DLT_NULL
        return frame[4:]
    if linktype == 113:  # Linux cooked (SLL)
        return frame[16:] if struct.unpack_from("!H", frame, 14)[0] == 0x0800 else None
    if linktype == 101:  # raw IP
        return frame
    return None


def rtp_packet(at_ns: int, payload: bytes) -> MediaPacket | None:
    """Parse an RTP datagram (RFC 3550 5.1); None when it is not version 2 RTP."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", payload, 0)
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(payload) < off + 4:
            return None
        off += 4 + 4 * struct.unpack_from("!H", payload, off + 2)[0]
    end = len(payload)
    if b0 & 0x20:  # padding
        end -= payload[-1]
    if off > end:
        return None
    return MediaPacket(at_ns, ssrc, seq, ts, b1 & 0x7F, bool(b1 & 0x80), payload[off:end])


def rtp_by_ssrc(path: Path, ssrc: int, src: str | None = None) -> list[MediaPacket]:
    """RTP packets of one SSRC (optionally from one source address) in capture order."""
    packets = []
    for dgram in udp_datagrams(path):
        if src is not None and dgram.src != src:
            continue
        pkt = rtp_packet(dgram.at_ns, dgram.payload)
        if pkt is not None and pkt.ssrc == ssrc:
            packets.append(pkt)
    return packets
