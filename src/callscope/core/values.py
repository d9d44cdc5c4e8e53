"""Value types shared by the pipeline.

Times are `Timestamp`: int nanoseconds since the Unix epoch (UTC), taken from the packet
(or HEP chunk, or socket arrival at the I/O edge), never from a clock inside the pipeline.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
from dataclasses import dataclass
from typing import NewType

Timestamp = NewType("Timestamp", int)

_NAIVE_EPOCH = _dt.datetime(1970, 1, 1)  # UTC, rendered with a Z


class CallscopeError(Exception):
    """Base of every error callscope raises on purpose; each layer derives its own."""


class Transport(enum.StrEnum):
    """Transport of a datagram or stream segment, as named in the call-record contract."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    SCTP = "sctp"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """An IP address (textual, canonical form) and a port."""

    ip: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse ``ip:port`` or ``[ipv6]:port``; raises ValueError on bad input."""
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
        else:
            host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"not an ip:port endpoint: {text!r}")
        return cls(str(ipaddress.ip_address(host)), int(port))

    def __str__(self) -> str:
        if ":" in self.ip:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Datagram:
    """One transport payload seen on the wire (a UDP datagram or a reassembled TCP segment).

    ``at`` is the capture time; ``source`` names the feed (``pcap``, ``live``, ``hep``,
    ``siprec``) so that call records can say where they came from.
    """

    at: Timestamp
    src: Endpoint
    dst: Endpoint
    transport: Transport
    payload: bytes
    source: str = "pcap"
    vlan: int | None = None


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Bad or surprising input, kept as data: counted per call and stored, never raised.

    ``kind`` is a stable machine name (``sip.parse``, ``rtp.unpaired``, ``pcap.truncated``);
    ``detail`` is the fixed human message of the error that produced it.
    """

    kind: str
    detail: str = ""
    at: Timestamp | None = None


def format_utc(at: int | None) -> str | None:
    """Render int nanoseconds as the contract's ISO 8601 UTC text with microseconds and a Z.

    The text up to the second is remembered for the seconds seen lately (a call's times,
    and the calls ending together, fall in few seconds): the rest is one integer format.
    """
    if at is None:
        return None
    second, nanos = divmod(at, 1_000_000_000)
    head = _SECOND_TEXT.get(second)
    if head is None:
        if len(_SECOND_TEXT) >= _SECOND_TEXT_BOUND:
            _SECOND_TEXT.clear()
        head = _SECOND_TEXT[second] = _second_text(second)
    return f"{head}.{nanos // 1000:06d}Z"


def _second_text(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of whole seconds since the epoch (UTC)."""
    return (_NAIVE_EPOCH + _dt.timedelta(seconds=second)).isoformat()  # years as 4 digits


_SECOND_TEXT: dict[int, str] = {}
_SECOND_TEXT_BOUND = 4096
