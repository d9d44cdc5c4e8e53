"""RTP data packets (RFC 3550 5.1): a full parser with an exact inverse, and a hot path.

Every media packet of every call goes through this module, hundreds of thousands per second,
so there are two ways in:

* `looks_like_rtp(data)` and `parse_rtp_header(data)`: one `struct.unpack_from`, a few
  integer operations and a plain tuple, no object per packet. Use these on the capture path.
* `RtpPacket.parse(data)`: a frozen dataclass with every field (CSRC list, header extension,
  padding) and `bytes(packet) == data`. Use it where the whole packet matters (tests,
  benchmarks that generate traffic, diagnostics).

Both raise only `RtpParseError` with a fixed message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from callscope.protocol.errors import RtpParseError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpPacket",
    "looks_like_rtp",
    "parse_rtp_header",
]

#: RFC 3550 5.1: the only version this profile defines.
RTP_VERSION = 2
#: RFC 3550 5.1: fixed header size before the CSRC list.
RTP_HEADER_SIZE = 12

# RFC 3550 5.1: V(2) P(1) X(1) CC(4) | M(1) PT(7) | sequence(16) | timestamp(32) | SSRC(32)
_FIXED_HEADER = struct.Struct("!BBHII")
_unpack_fixed = _FIXED_HEADER.unpack_from
_pack_fixed = _FIXED_HEADER.pack
# RFC 3550 5.3.1: header extension: profile-defined 16 bits, length in 32-bit words
_EXTENSION_HEADER = struct.Struct("!HH")
_unpack_extension = _EXTENSION_HEADER.unpack_from
_pack_extension = _EXTENSION_HEADER.pack

_MSG_SHORT = "RTP packet shorter than 12 octets"
_MSG_VERSION = "RTP version is not 2"
_MSG_CSRC = "RTP CSRC list exceeds packet"
_MSG_EXTENSION = "RTP header extension exceeds packet"
_MSG_PADDING = "RTP padding length is invalid"


def looks_like_rtp(data: bytes) -> bool:
    """Cheap classifier: version 2, at least 12 octets, payload type outside 72-76.

    RFC 5761 4: RTCP packet types 200-204 read as RTP payload types 72-76 (marker bit set),
    so those values mean RTCP when RTP and RTCP share a port. Other checks belong to the
    caller (expected ports, SSRC continuity).
    """
    return len(data) >= 12 and data[0] >> 6 == 2 and not 72 <= (data[1] & 0x7F) <= 76


def parse_rtp_header(data: bytes) -> tuple[int, int, int, int, bool, int, int]:
    """Hot-path header parse: ``(payload_type, sequence, timestamp, ssrc, marker,
    payload_offset, payload_end)``.

    ``data[payload_offset:payload_end]`` is the payload, with the CSRC list, the header
    extension and any padding removed. The version is not checked (call `looks_like_rtp`
    first); lengths are, and a packet whose fields overrun it raises `RtpParseError`.
    """
    try:
        first, second, sequence, timestamp, ssrc = _unpack_fixed(data)
    except struct.error:
        raise RtpParseError(_MSG_SHORT) from None
    offset = 12 + ((first & 0x0F) << 2)
    end = len(data)
    if first & 0x10:
        # RFC 3550 5.3.1: a 4-octet extension header, then `length` 32-bit words
        if offset + 4 > end:
            raise RtpParseError(_MSG_EXTENSION)
        offset += 4 + (_unpack_extension(data, offset)[1] << 2)
    if offset > end:
        raise RtpParseError(_MSG_EXTENSION if first & 0x10 else _MSG_CSRC)
    if first & 0x20:
        # RFC 3550 5.1: the last octet counts the padding octets, itself included
        padding = data[-1]
        if padding == 0 or end - padding < offset:
            raise RtpParseError(_MSG_PADDING)
        end -= padding
    return second & 0x7F, sequence, timestamp, ssrc, second >= 0x80, offset, end


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet, every header field kept so that ``bytes(packet)`` rebuilds it exactly.

    ``extension_profile`` is None when the X bit is clear; ``extension_data`` is then empty
    and otherwise a multiple of 4 octets (RFC 3550 5.3.1). ``padding_bytes`` holds the
    padding as sent, its last octet being its own length (RFC 3550 5.1); it is empty when
    the P bit is clear. ``payload`` has the padding removed.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    payload: bytes = b""
    padding_bytes: bytes = b""
    version: int = RTP_VERSION

    @property
    def padding(self) -> bool:
        """The P bit."""
        return bool(self.padding_bytes)

    @property
    def extension(self) -> bool:
        """The X bit."""
        return self.extension_profile is not None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a whole RTP packet; raises `RtpParseError` with a fixed message."""
        if len(data) < 12:
            raise RtpParseError(_MSG_SHORT)
        if data[0] >> 6 != RTP_VERSION:
            raise RtpParseError(_MSG_VERSION)
        payload_type, sequence, timestamp, ssrc, marker, offset, end = parse_rtp_header(data)
        csrc_count = data[0] & 0x0F
        csrc = struct.unpack_from(f"!{csrc_count}I", data, 12) if csrc_count else ()
        profile: int | None = None
        extension_data = b""
        if data[0] & 0x10:
            at = 12 + 4 * csrc_count
            profile = _unpack_extension(data, at)[0]
            extension_data = data[at + 4 : offset]
        return cls(
            payload_type=payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=marker,
            csrc=csrc,
            extension_profile=profile,
            extension_data=extension_data,
            payload=data[offset:end],
            padding_bytes=data[end:],
            version=RTP_VERSION,
        )

    def __bytes__(self) -> bytes:
        first = (
            (self.version << 6)
            | (0x20 if self.padding_bytes else 0)
            | (0x10 if self.extension_profile is not None else 0)
            | len(self.csrc)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_pack_fixed(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            words = len(self.extension_data) >> 2
            parts.append(_pack_extension(self.extension_profile, words))
            parts.append(self.extension_data)
        parts.append(self.payload)
        parts.append(self.padding_bytes)
        return b"".join(parts)
