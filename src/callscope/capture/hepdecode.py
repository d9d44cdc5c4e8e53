"""HEP datagrams received by the collector -> SIP `Datagram`s, with every other case counted.

`HepDecoder.decode` is the collector's per-packet step, shared by UDP datagrams and the
messages `HepFramer` cuts out of a TCP stream. It never raises: whatever arrives is either
a SIP `Datagram` (HEP proto type 1 whose payload looks like SIP) or a count in
`HepCounters`:

- ``malformed``: packets that are not HEP or do not parse (by the `HepParseError` message),
  SIP packets without addresses, SIP packets whose payload is not SIP;
- ``auth_failures``: a shared key is configured and the packet's key (chunk 14) differs;
- ``unknown_agents``: an allow-list of capture ids (chunk 12) is configured and the packet's
  id is not on it (-1: the packet has none);
- ``by_type``: every authenticated packet by proto type (chunk 11; -1: none), SIP included
  (but not its duplicates), so that RTCP reports (5), logs (100) and the rest are counted
  and never taken for SIP;
- ``duplicates``: the very same HEP SIP datagram again within ``dedup_window_ns`` of
  arrival (an agent or a network that delivers it twice), which would otherwise be a
  retransmission in the call's ladder. Other types are only counted, so they are not
  checked: a PBX's feed is mostly RTCP reports, and hashing and remembering each of them
  (and sweeping them out again) would be most of the table's work, for nothing;
- ``clock_skew``: SIP messages whose agent timestamp is more than ``max_skew_ns`` from the
  arrival time; they are given the arrival time instead, because the live recorder runs
  the tracker's timers on this machine's clock (an agent clock minutes behind would time
  out calls that are still ringing). None (the default) keeps every agent timestamp.

Hot path: HEPv3 as agents send it is read by `callscope.capture.hepwalk` (one struct call
per packet for a known agent layout; its compiled twin ``_hepfast`` walks the chunks in C,
with the same results); anything else (HEPv1/v2, compressed payloads, a chunk
of the wrong size, a bad length) goes to `HepPacket.parse`, which decides and names the
error. Tests check that both paths agree.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from callscope.capture import hepwalk
from callscope.capture.dedup import DuplicateFilter
from callscope.capture.hepwalk import Fields
from callscope.core import Anomaly, Datagram, Endpoint, Timestamp, Transport
from callscope.core.compiled import compiled_module
from callscope.protocol.errors import HepParseError
from callscope.protocol.hep import HEP3_MAGIC, HepPacket, HepProtoType
from callscope.protocol.sip import looks_like_sip

__all__ = ["MALFORMED_NOT_SIP", "MALFORMED_NO_ADDRESS", "HepCounters", "HepDecoder"]

MALFORMED_NO_ADDRESS = "HEP SIP packet has no addresses"
MALFORMED_NOT_SIP = "HEP SIP payload is not a SIP message"
#: anomalies kept for the report (oldest dropped first)
MAX_ANOMALIES = 100
#: endpoints cached before the cache is cleared
ENDPOINT_CACHE = 65_536

_TRANSPORTS = {17: Transport.UDP, 6: Transport.TCP, 132: Transport.SCTP}
_hepfast = compiled_module("callscope.capture._hepfast")
#: the fast path: the compiled twin of `hepwalk.hep_fields` where it is built
hep_fields: Callable[[bytes], Fields | None] = (
    hepwalk.hep_fields if _hepfast is None else _hepfast.hep_fields
)
_SIP = int(HepProtoType.SIP)


@dataclass(slots=True)
class HepCounters:
    """What the collector received, by outcome (see the module docstring)."""

    packets: int = 0  # HEP messages received: UDP datagrams and messages framed from TCP
    bytes: int = 0
    sip: int = 0  # SIP Datagrams handed on
    duplicates: int = 0
    clock_skew: int = 0  # SIP messages given the arrival time: the agent's clock is off
    auth_failures: int = 0
    by_type: dict[int, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    unknown_agents: dict[int, int] = field(default_factory=dict)
    #: recent problems, newest last (kind ``hep.parse``, ``hep.auth``, ``hep.agent``)
    anomalies: deque[Anomaly] = field(default_factory=lambda: deque(maxlen=MAX_ANOMALIES))

    @property
    def rejected(self) -> int:
        """Packets dropped as bad: malformed, wrong key or agent not allowed."""
        return sum(self.malformed.values()) + self.auth_failures + sum(self.unknown_agents.values())


class HepDecoder:
    """Turns received HEP messages into SIP `Datagram`s, counting the rest (never raises).

    ``auth_key``: the shared key agents must send (None: any or none is accepted).
    ``capture_ids``: the agents allowed (None: any). ``dedup_window_ns``: arrival time
    within which a byte-identical datagram is a duplicate (0: off). ``max_skew_ns``: see
    ``clock_skew`` in the module docstring.
    """

    def __init__(
        self,
        *,
        auth_key: str | None = None,
        capture_ids: frozenset[int] | None = None,
        dedup_window_ns: int = 200_000_000,
        max_skew_ns: int | None = None,
        counters: HepCounters | None = None,
        source: str = "hep",
    ) -> None:
        self.max_skew_ns = max_skew_ns
        self.auth_key = auth_key
        self._key = None if auth_key is None else auth_key.encode()
        self.capture_ids = capture_ids
        self.counters = counters if counters is not None else HepCounters()
        self.source = source
        self.dedup = DuplicateFilter(dedup_window_ns, max_entries=1 << 17)
        self._endpoints: dict[bytes, Endpoint] = {}

    def decode(self, data: bytes, arrival_ns: int) -> Datagram | None:
        """One received HEP message -> its SIP `Datagram`, or None (counted)."""
        counters = self.counters
        counters.packets += 1
        counters.bytes += len(data)
        fields = hep_fields(data) if data[:4] == HEP3_MAGIC else None
        if fields is None:
            fields = self._reference(data, arrival_ns)
            if fields is None:
                return None
        proto_type, ip_proto, src, dst, at, capture_id, key, vlan, payload = fields
        if (self._key is not None and key != self._key) or (
            self.capture_ids is not None and capture_id not in self.capture_ids
        ):
            self._refuse(key, capture_id, arrival_ns)
            return None
        kind = -1 if proto_type is None else proto_type
        by_type = counters.by_type
        if kind != _SIP:  # counted only: no duplicate check (see the module docstring)
            by_type[kind] = by_type.get(kind, 0) + 1
            return None
        dedup = self.dedup
        window = dedup.window_ns
        if window:  # DuplicateFilter.seen, inlined
            digest = hash(data)
            table = dedup.table
            last = table.get(digest)
            if last is not None and -window <= arrival_ns - last <= window:
                counters.duplicates += 1
                return None
            table[digest] = arrival_ns
            if len(table) > dedup.sweep_size:
                dedup.sweep(arrival_ns)
        by_type[kind] = by_type.get(kind, 0) + 1
        if src is None or dst is None or not looks_like_sip(payload):
            self._malformed(MALFORMED_NOT_SIP if src else MALFORMED_NO_ADDRESS, arrival_ns)
            return None
        counters.sip += 1
        skew = self.max_skew_ns
        if at is None:
            at = arrival_ns
        elif skew is not None and not -skew <= at - arrival_ns <= skew:
            counters.clock_skew += 1
            at = arrival_ns
        endpoints = self._endpoints
        return _datagram(
            at,
            endpoints.get(src) or self._endpoint(src),
            endpoints.get(dst) or self._endpoint(dst),
            _TRANSPORTS.get(17 if ip_proto is None else ip_proto, Transport.UNKNOWN),
            payload,
            self.source,
            vlan,
        )

    def _refuse(self, key: bytes | None, capture_id: int | None, arrival_ns: int) -> None:
        """Count a packet with the wrong key, or from an agent not allowed."""
        counters = self.counters
        if self._key is not None and key != self._key:
            counters.auth_failures += 1
            self._anomaly("hep.auth", "HEP auth key does not match", arrival_ns)
            return
        agent = -1 if capture_id is None else capture_id
        counters.unknown_agents[agent] = counters.unknown_agents.get(agent, 0) + 1
        self._anomaly("hep.agent", "HEP capture id is not allowed", arrival_ns)

    def _reference(self, data: bytes, arrival_ns: int) -> Fields | None:
        """`_slow`, or None for a packet it refuses (counted by its error message)."""
        try:
            return self._slow(data)
        except HepParseError as exc:
            self._malformed(str(exc), arrival_ns)
            return None

    def _slow(self, data: bytes) -> Fields:
        """The fields as `HepPacket.parse` decodes them (raises `HepParseError`)."""
        packet = HepPacket.parse(data)
        key = None if packet.auth_key is None else packet.auth_key.encode()
        src = dst = None
        if packet.src is not None and packet.dst is not None:
            src, dst = _endpoint_key(packet.src), _endpoint_key(packet.dst)
        proto_type = packet.proto_type
        if packet.version != 3:
            proto_type = _SIP  # HEPv1/v2 have no type: their agents sent only SIP
        return (
            proto_type,
            packet.ip_proto,
            src,
            dst,
            packet.at,
            packet.capture_id,
            key,
            packet.vlan,
            packet.payload,
        )

    def _endpoint(self, raw: bytes) -> Endpoint:
        if len(self._endpoints) >= ENDPOINT_CACHE:
            self._endpoints.clear()
        endpoint = self._endpoints[raw] = _endpoint_of(raw)
        return endpoint

    def _malformed(self, message: str, at: int) -> None:
        malformed = self.counters.malformed
        malformed[message] = malformed.get(message, 0) + 1
        self._anomaly("hep.parse", message, at)

    def _anomaly(self, kind: str, detail: str, at: int) -> None:
        self.counters.anomalies.append(Anomaly(kind, detail, Timestamp(at)))


def _slot_datagram() -> Callable[..., Datagram]:
    """``Datagram(...)`` without the frozen dataclass's ``__init__``: ``object.__new__`` and
    the slot descriptors build an equal object in half the time (as `capture.source` does;
    tests compare with ``Datagram(...)``). Plain ``Datagram`` if its slots are not as expected.
    """
    names = ("at", "src", "dst", "transport", "payload", "source", "vlan")
    if getattr(Datagram, "__slots__", ()) != names:  # pragma: no cover
        return Datagram
    s_at, s_src, s_dst, s_transport, s_payload, s_source, s_vlan = (
        getattr(Datagram, name).__set__ for name in names
    )
    new = object.__new__

    def build(  # noqa: PLR0917 - the Datagram fields, in order
        at: int, src: Endpoint, dst: Endpoint, transport: Transport, payload: bytes,
        source: str, vlan: int | None,
    ) -> Datagram:  # fmt: skip
        d = new(Datagram)
        s_at(d, at)
        s_src(d, src)
        s_dst(d, dst)
        s_transport(d, transport)
        s_payload(d, payload)
        s_source(d, source)
        s_vlan(d, vlan)
        return d

    return build


_datagram = _slot_datagram()


def _endpoint_key(endpoint: Endpoint) -> bytes:
    return ipaddress.ip_address(endpoint.ip).packed + endpoint.port.to_bytes(2, "big")


def _endpoint_of(raw: bytes) -> Endpoint:
    address, port = raw[:-2], int.from_bytes(raw[-2:], "big")
    if len(address) == 4:
        return Endpoint(f"{address[0]}.{address[1]}.{address[2]}.{address[3]}", port)
    return Endpoint(str(ipaddress.IPv6Address(address)), port)
