"""HEP glue: datagrams that carry HEP become the SIP datagrams they encapsulate.

PBXs and proxies mirror each SIP message they handle as one HEP datagram, usually to UDP
port 9060 (Kamailio siptrace, OpenSIPS, Asterisk res_hep, heplify). `unwrap_hep` passes
every other datagram through unchanged and replaces a HEP datagram of SIP (HEP proto type
1) by a `Datagram` with the inner addresses, the agent's timestamp (when it sent one) and
``source="hep"``. Other HEP payloads (RTCP reports as JSON, logs) are dropped and counted;
a HEP datagram that does not parse is counted and dropped, never raised.

A capture that holds both the mirrored SIP and its HEP copies yields each message twice;
the call tracker recognises the second copy as the same message (one call, times from the
first copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from callscope.core import Datagram, Timestamp, Transport
from callscope.protocol.errors import HepParseError
from callscope.protocol.hep import HEP3_MAGIC, HepPacket, HepProtoType

__all__ = ["HEP_PORT", "HepCounters", "unwrap_hep"]

#: the port HEP agents send to by convention (HEP3 spec, Homer defaults)
HEP_PORT = 9060
_TRANSPORTS = {17: Transport.UDP, 6: Transport.TCP, 132: Transport.SCTP}


@dataclass(slots=True)
class HepCounters:
    """What the unwrapping saw: SIP messages taken out, other payloads, bad datagrams."""

    sip: int = 0
    other: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def _is_hep(dgram: Datagram) -> bool:
    """HEPv3 by its magic anywhere; HEPv1/v2 (no magic) only on the HEP port."""
    payload = dgram.payload
    if payload[:4] == HEP3_MAGIC:
        return True
    return dgram.dst.port == HEP_PORT and payload[:1] in (b"\x01", b"\x02")


def unwrap_hep(
    datagrams: Iterable[Datagram], counters: HepCounters | None = None
) -> Iterator[Datagram]:
    """Yield ``datagrams`` with every HEP datagram of SIP replaced by its inner message."""
    counts = counters if counters is not None else HepCounters()
    for dgram in datagrams:
        if not _is_hep(dgram):
            yield dgram
            continue
        try:
            packet = HepPacket.parse(dgram.payload)
        except HepParseError as exc:
            counts.errors[str(exc)] = counts.errors.get(str(exc), 0) + 1
            continue
        kind = packet.proto_type if packet.proto_type is not None else -1
        if kind != HepProtoType.SIP or packet.src is None or packet.dst is None:
            counts.other[kind] = counts.other.get(kind, 0) + 1
            continue
        counts.sip += 1
        transport = _TRANSPORTS.get(packet.ip_proto or 17, Transport.UNKNOWN)
        at = Timestamp(packet.at) if packet.at is not None else dgram.at
        yield Datagram(at, packet.src, packet.dst, transport, packet.payload, "hep", packet.vlan)
