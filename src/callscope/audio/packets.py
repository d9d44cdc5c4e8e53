"""What the audio layer is fed: RTP packets as plain tuples, per direction of the call.

`MediaPacket` is a NamedTuple so that a plain tuple
``(arrival_ns, ssrc, seq, timestamp, payload_type, marker, payload)`` from any source (the
spool reader, the capture layer, a test) is accepted without copying into another object.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple


class Direction(enum.IntEnum):
    """Which party sent the media; the values are stored in the spool (one byte)."""

    CALLER_TO_CALLEE = 0
    CALLEE_TO_CALLER = 1


class MediaPacket(NamedTuple):
    """One RTP packet as received (RFC 3550 5.1 header fields + payload after CSRC/extension).

    ``arrival_ns`` is the capture time (int ns since the epoch); ``timestamp`` is the RTP
    timestamp in the payload format's clock; ``payload`` excludes RTP padding.
    """

    arrival_ns: int
    ssrc: int
    seq: int
    timestamp: int
    payload_type: int
    marker: bool
    payload: bytes


class PayloadFormat(NamedTuple):
    """One ``a=rtpmap`` entry (RFC 4566 6): encoding name, RTP clock rate, channels."""

    encoding: str
    clock_rate: int
    channels: int = 1


#: payload type -> format, as negotiated in the call's SDP
PayloadTypeMap = Mapping[int, PayloadFormat | tuple[str, int, int]]

# RFC 3551 6, table 4: static payload types, used when the SDP did not map the number
STATIC_PAYLOAD_TYPES: dict[int, PayloadFormat] = {
    0: PayloadFormat("PCMU", 8000),
    3: PayloadFormat("GSM", 8000),
    4: PayloadFormat("G723", 8000),
    5: PayloadFormat("DVI4", 8000),
    6: PayloadFormat("DVI4", 16000),
    7: PayloadFormat("LPC", 8000),
    8: PayloadFormat("PCMA", 8000),
    9: PayloadFormat("G722", 8000),
    10: PayloadFormat("L16", 44100, 2),
    11: PayloadFormat("L16", 44100),
    12: PayloadFormat("QCELP", 8000),
    13: PayloadFormat("CN", 8000),
    14: PayloadFormat("MPA", 90000),
    15: PayloadFormat("G728", 8000),
    16: PayloadFormat("DVI4", 11025),
    17: PayloadFormat("DVI4", 22050),
    18: PayloadFormat("G729", 8000),
}


def payload_format(payload_type: int, payload_types: PayloadTypeMap) -> PayloadFormat | None:
    """The format of ``payload_type``: the SDP map first, then RFC 3551 static types."""
    mapped = payload_types.get(payload_type)
    if mapped is not None:
        return PayloadFormat(*mapped)
    return STATIC_PAYLOAD_TYPES.get(payload_type)
