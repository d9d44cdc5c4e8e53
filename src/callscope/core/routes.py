"""Media routes: RTP of a known media flow handed from a capture source to its receiver.

Nearly every packet a recorder sees is RTP of a flow the call tracker already paired with a
call. For those, building a `Datagram` (and formatting its endpoints) is most of the
capture layer's work per packet. A consumer that keeps such flows (the call tracker)
publishes them here, keyed by the raw bytes of the UDP flow as they are on the wire
(`flow_key`); a source that decodes packets one by one, in order, and hands each to the
consumer before decoding the next, may then pass a packet of such a flow straight to its
receiver as ``receive(at, payload)`` instead of yielding a `Datagram`, under the same
conditions the consumer's own hot path has:

* the packet time is before ``deadline`` (the consumer has no timer due), and
* the payload looks like RTP or RTCP: at least 12 octets, version 2 (RFC 3550 5.1).

A source that decodes a whole batch before handing it over must not use the routes: a
packet would then reach its receiver before the datagrams decoded before it.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

__all__ = ["MediaRoutes", "flow_key"]

_PORTS = struct.Struct("!HH").pack


def flow_key(src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> bytes:
    """The raw key of a UDP flow: source address, destination address (4 or 16 octets
    each), source port, destination port (network order), as they follow each other in
    the IPv4 header and the UDP header (RFC 791 3.1, RFC 768)."""
    return (
        ipaddress.ip_address(src_ip).packed
        + ipaddress.ip_address(dst_ip).packed
        + _PORTS(src_port, dst_port)
    )


class MediaRoutes:
    """The receivers of known media flows by `flow_key`, and when they stop being valid."""

    __slots__ = ("deadline", "flows")

    def __init__(self) -> None:
        #: flow key -> the flow's receiver, called as ``receive(at, payload)`` (a bound
        #: method, or a receiver object that a compiled scanner may also run itself)
        self.flows: dict[bytes, Callable[[int, bytes], None]] = {}
        #: packet time (int ns) from which the consumer needs every datagram itself
        self.deadline = 0
