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
- ``by_type``: every authenticated packet by proto type (chunk 11; -1: none), SIP included,
  so that RTCP reports (5), logs (100) and the rest are counted and never taken for SIP;
- ``duplicates``: the very same HEP datagram again within ``dedup_window_ns`` of arrival
  (an agent or a network that delivers it twice);
- ``clock_skew``: SIP messages whose agent timestamp is more than ``max_skew_ns`` from the
  arrival time; they are given the arrival time instead, because the live recorder runs
  the tracker's timers on this machine's clock (an agent clock minutes behind would time
  out calls that are still ringing). None (the default) keeps every agent timestamp.

Hot path: HEPv3 as agents send it (uncompressed payload, fixed-size chunks of the spec's
sizes) is walked here with one struct read per chunk, taking only what a `Datagram` needs;
anything else (HEPv1/v2, compressed payloads, a chunk of the wrong size, a bad length) goes
to `HepPacket.parse`, which decides and names the error. Tests check that both paths agree.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from dataclasses import dataclass, field

from callscope.capture.dedup import DuplicateFilter
from callscope.core import Anomaly, Datagram, Endpoint, Timestamp, Transport
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
_CHUNK = struct.Struct("!HHH").unpack_from
_SIP = int(HepProtoType.SIP)
# vendor 0 chunk type -> the only size `HepPacket.parse` accepts (capture id: 4; 2 goes the
# slow way); types not listed are free-size text or payload, except 16 (compressed), which
# also goes the slow way
_FIXED = {1: 1, 2: 1, 3: 4, 4: 4, 5: 16, 6: 16, 7: 2, 8: 2, 9: 4, 10: 4, 11: 1, 12: 4, 13: 2, 18: 2}
_SLOW = -1


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
        fields = self._fields(data, arrival_ns)
        if fields is None or not self._admitted(fields, arrival_ns):
            return None
        _type, ip_proto, src, dst, at, _agent, _key, vlan, payload = fields
        assert src is not None and dst is not None  # checked by _admitted
        self.counters.sip += 1
        skew = self.max_skew_ns
        if at is None:
            at = arrival_ns
        elif skew is not None and not -skew <= at - arrival_ns <= skew:
            self.counters.clock_skew += 1
            at = arrival_ns
        return Datagram(
            Timestamp(at),
            self._endpoint(src),
            self._endpoint(dst),
            _TRANSPORTS.get(17 if ip_proto is None else ip_proto, Transport.UNKNOWN),
            payload,
            self.source,
            vlan,
        )

    def _fields(self, data: bytes, arrival_ns: int) -> _Fields | None:
        """The packet's fields, or None for a duplicate or a malformed packet (counted)."""
        counters = self.counters
        counters.packets += 1
        counters.bytes += len(data)
        if self.dedup.window_ns and self.dedup.seen(data, arrival_ns):
            counters.duplicates += 1
            return None
        fields = _fast_v3(data) if data[:4] == HEP3_MAGIC else None
        if fields is None:
            try:
                fields = self._slow(data)
            except HepParseError as exc:
                self._malformed(str(exc), arrival_ns)
        return fields

    def _admitted(self, fields: _Fields, arrival_ns: int) -> bool:
        """Right key, allowed agent, counted by type; True for a SIP message to hand on."""
        counters = self.counters
        proto_type, _ip_proto, src, dst, _at, capture_id, key, _vlan, payload = fields
        if self._key is not None and key != self._key:
            counters.auth_failures += 1
            self._anomaly("hep.auth", "HEP auth key does not match", arrival_ns)
            return False
        if self.capture_ids is not None and capture_id not in self.capture_ids:
            agent = -1 if capture_id is None else capture_id
            counters.unknown_agents[agent] = counters.unknown_agents.get(agent, 0) + 1
            self._anomaly("hep.agent", "HEP capture id is not allowed", arrival_ns)
            return False
        kind = -1 if proto_type is None else proto_type
        counters.by_type[kind] = counters.by_type.get(kind, 0) + 1
        if kind != _SIP:
            return False
        if src is None or dst is None:
            self._malformed(MALFORMED_NO_ADDRESS, arrival_ns)
            return False
        if not looks_like_sip(payload):
            self._malformed(MALFORMED_NOT_SIP, arrival_ns)
            return False
        return True

    def _slow(self, data: bytes) -> _Fields:
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
        endpoint = self._endpoints.get(raw)
        if endpoint is None:
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


# (proto type, ip proto, src, dst, at, capture id, auth key, vlan, payload); src and dst
# are endpoint keys: the address octets followed by the port (2 octets)
_Fields = tuple[
    int | None,
    int | None,
    bytes | None,
    bytes | None,
    int | None,
    int | None,
    bytes | None,
    int | None,
    bytes,
]


def _fast_v3(data: bytes) -> _Fields | None:
    """The fields of a plain HEPv3 packet, or None when `HepPacket.parse` must decide."""
    total = len(data)
    if total < 6 or (data[4] << 8 | data[5]) != total:
        return None
    values: dict[int, bytes] = {}
    fixed = _FIXED
    offset = 6
    while offset < total:
        if offset + 6 > total:
            return None
        vendor, kind, length = _CHUNK(data, offset)
        end = offset + length
        if length < 6 or end > total:
            return None
        if vendor == 0:
            size = fixed.get(kind, _SLOW if kind == 16 else 0)
            if size and size != length - 6:
                return None
            values[kind] = data[offset + 6 : end]
        offset = end
    get = values.get
    src = dst = None
    if 3 in values or 5 in values or 4 in values or 6 in values:
        # the last address chunk of either family wins, as in HepPacket.parse
        src_ip, dst_ip = _last_address(data, values)
        if src_ip is None or dst_ip is None:
            return None  # only one side: rare, let the reference decide
        src = src_ip + get(7, b"\0\0")
        dst = dst_ip + get(8, b"\0\0")
    at = None
    sec = get(9)
    if sec is not None:
        usec = get(10)
        micros = int.from_bytes(usec, "big") if usec is not None else 0
        at = int.from_bytes(sec, "big") * 1_000_000_000 + micros * 1000
    proto_type = get(11)
    ip_proto = get(2)
    capture_id = get(12)
    key = get(14)
    vlan = get(18)
    return (
        None if proto_type is None else proto_type[0],
        None if ip_proto is None else ip_proto[0],
        src,
        dst,
        at,
        None if capture_id is None else int.from_bytes(capture_id, "big"),
        None if key is None else _key_bytes(key),
        None if vlan is None else int.from_bytes(vlan, "big"),
        get(15, b""),
    )


def _last_address(data: bytes, values: dict[int, bytes]) -> tuple[bytes | None, bytes | None]:
    """Source and destination address octets; with both families present (odd, but legal)
    the order of the chunks decides, so the packet is left to the reference decoder."""
    if (3 in values or 4 in values) and (5 in values or 6 in values):
        return None, None
    if 3 in values or 4 in values:
        return values.get(3), values.get(4)
    return values.get(5), values.get(6)


def _key_bytes(raw: bytes) -> bytes:
    # as `HepPacket` reads text chunks: without the C string's NUL, invalid UTF-8 replaced
    return raw.rstrip(b"\0").decode("utf-8", "replace").encode()


def _endpoint_key(endpoint: Endpoint) -> bytes:
    return ipaddress.ip_address(endpoint.ip).packed + endpoint.port.to_bytes(2, "big")


def _endpoint_of(raw: bytes) -> Endpoint:
    address, port = raw[:-2], int.from_bytes(raw[-2:], "big")
    if len(address) == 4:
        return Endpoint(f"{address[0]}.{address[1]}.{address[2]}.{address[3]}", port)
    return Endpoint(str(ipaddress.IPv6Address(address)), port)
