"""Values of individual SDP lines and attributes (RFC 8866 5, RFC 3551, RFC 4568).

Each ``parse`` here returns None for a value it cannot use; the SDP parser records that as
a problem of the description instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callscope.core.frozen import quick_init
from callscope.protocol.sipuri import is_digits


@quick_init
@dataclass(frozen=True, slots=True)
class RtpMap:
    """An RTP payload format (a=rtpmap, RFC 8866 6.6): encoding name as on the wire,
    clock rate in Hz and number of audio channels."""

    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, text: str) -> RtpMap | None:
        """Parse ``PCMU/8000`` or ``opus/48000/2`` (the part after the payload type)."""
        parts = text.strip().split("/")
        if len(parts) < 2 or not parts[0] or not is_digits(parts[1]):
            return None
        channels = parts[2] if len(parts) > 2 else "1"
        if not is_digits(channels):
            return None
        return cls(parts[0], int(parts[1]), int(channels))


# RFC 3551 tables 4 and 5: payload types that need no a=rtpmap. G.722 runs an 8000 Hz RTP
# clock although it samples at 16 kHz (RFC 3551 4.5.2). PT 2 was G721 in RFC 1890 and is
# still sent as G.726-32 by older equipment, so it is kept here.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    2: RtpMap("G726-32", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000),
    6: RtpMap("DVI4", 16000),
    7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100),
    12: RtpMap("QCELP", 8000),
    13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000),
    15: RtpMap("G728", 8000),
    16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050),
    18: RtpMap("G729", 8000),
    25: RtpMap("CelB", 90000),
    26: RtpMap("JPEG", 90000),
    28: RtpMap("nv", 90000),
    31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000),
    33: RtpMap("MP2T", 90000),
    34: RtpMap("H263", 90000),
}


@quick_init
@dataclass(frozen=True, slots=True)
class Origin:
    """The o= line (RFC 8866 5.2)."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        parts = text.split()
        if len(parts) != 6:
            return None
        return cls(*parts)


@quick_init
@dataclass(frozen=True, slots=True)
class Connection:
    """The c= line (RFC 8866 5.7): ``IN IP4 192.0.2.1`` with optional multicast TTL/count."""

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> Connection | None:
        parts = text.split()
        if len(parts) != 3:
            return None
        address, *extra = parts[2].split("/")
        if not address or not all(is_digits(e) for e in extra):
            return None
        numbers = [int(e) for e in extra]
        if parts[1].upper() == "IP6":
            # RFC 8866 5.7: IPv6 multicast has no TTL, only a count
            count = numbers[0] if numbers else None
            return cls(parts[0], parts[1], address, None, count)
        ttl = numbers[0] if numbers else None
        count = numbers[1] if len(numbers) > 1 else None
        return cls(parts[0], parts[1], address, ttl, count)


@quick_init
@dataclass(frozen=True, slots=True)
class Crypto:
    """An SDES a=crypto line (RFC 4568 9.1); its presence means SRTP media.

    ``key_params`` hold the master key: kept for a later decrypting stage, never printed.
    """

    tag: int
    suite: str
    key_params: str = field(repr=False)
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Crypto | None:
        parts = text.split()
        if len(parts) < 3 or not is_digits(parts[0]):
            return None
        return cls(int(parts[0]), parts[1], parts[2], tuple(parts[3:]))


@quick_init
@dataclass(frozen=True, slots=True)
class SdpProblem:
    """A line the SDP parser could not use: fixed ``message`` plus the offending text."""

    message: str
    line: str


def parse_bandwidth(text: str) -> tuple[str, int] | None:
    """Parse ``b=AS:64`` (RFC 8866 5.8) into ``("AS", 64)``."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not is_digits(value.strip()):
        return None
    return kind.strip(), int(value.strip())
