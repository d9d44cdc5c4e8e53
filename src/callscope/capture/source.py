"""From captured frames to `Datagram`s: decode, defragment, reassemble TCP, drop duplicates.

`read_file` is the whole path for a capture file; `PacketPipeline` is the same path for
any source of records (the live interface uses it too). One pipeline keeps the state of one
capture: pending fragments, TCP streams, the duplicate window and the endpoint cache.

Hot path: most frames on a recorder's port are IPv4 / UDP (RTP) behind an Ethernet header
(untagged or with one 802.1Q tag) or a Linux cooked header. Those are decoded inline in
`PacketPipeline.datagrams` with one struct read and two slices; everything else (QinQ,
other link types, IP options, IPv6, fragments, TCP, bad frames) goes through
`PacketPipeline.push`, which uses the reference decoders of `callscope.capture.decode`.
Both paths build the same duplicate key and the same `Datagram` (a property test holds
them to it). Addresses are formatted once per (addresses, ports) and cached.

Media routes: a pipeline given the consumer's `MediaRoutes` (the call tracker's) hands a
fast-path packet of a routed flow straight to the flow's receiver, with no `Datagram`, when
the consumer's own hot path would take it (no timer due, RTP version 2): see
`callscope.core.routes`. It is counted as a datagram all the same. Only a consumer that
takes each datagram before the next is decoded (`read_file` into a loop) may pass routes.

Compiled scanner: for a pcap or pcapng file read with routes, the file reader hands whole
buffers to `callscope.capture._pcapscan.PcapScanner` where it is built; it takes the
records this loop would end without a Datagram (routed RTP, mirror duplicates of it) and
leaves every other record to this loop, which stays the reference (a test compares both).

Nothing here raises for a bad frame: it is counted in `CaptureCounters.errors` by kind.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from callscope.capture.decode import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_FIN,
    TCP_RST,
    IpPacket,
    MalformedFrameError,
    format_ip,
    ip_packet,
    ipv6_extensions,
    link_layer,
    tcp_segment,
    udp_payload,
)
from callscope.capture.dedup import DuplicateFilter
from callscope.capture.errors import CaptureParseError, CaptureTruncatedError
from callscope.capture.ipfrag import FragmentReassembler
from callscope.capture.pcapfile import CaptureFile, open_capture
from callscope.capture.records import Record
from callscope.capture.tcp import Framer, TcpReassembler
from callscope.core import Anomaly, Datagram, Endpoint, MediaRoutes, Timestamp, Transport
from callscope.core.compiled import compiled_module

_pcapscan = compiled_module("callscope.capture._pcapscan")

#: endpoint pairs cached before the cache is cleared (a scan must not grow it forever)
ENDPOINT_CACHE = 65_536
#: packet time between two timeout checks of fragments and TCP streams
HOUSEKEEPING_NS = 1_000_000_000


@dataclass(slots=True)
class CaptureConfig:
    """Tunables of one pipeline; times are nanoseconds of packet time."""

    dedup_window_ns: int = 5_000_000  # 0 turns duplicate suppression off
    dedup_max_entries: int = 16_384
    frag_timeout_ns: int = 30_000_000_000
    frag_max_datagrams: int = 4096
    frag_max_bytes: int = 16 << 20
    tcp_max_streams: int = 4096
    tcp_idle_timeout_ns: int = 900_000_000_000
    tcp_max_message: int = 262_144
    tcp_max_out_of_order: int = 131_072


@dataclass(slots=True)
class CaptureCounters:
    """What a capture contained, updated while it is read.

    ``errors`` counts undecodable frames and dropped pieces by kind (`FRAME_ERRORS` keys,
    ``frag.*`` and ``tcp.*``); ``anomalies`` holds file-level problems (a truncated file).
    """

    packets: int = 0  # records read
    bytes: int = 0  # captured bytes of those records
    datagrams: int = 0  # Datagrams produced
    non_ip: int = 0  # frames without IPv4/IPv6 (ARP, LLDP, STP, ...)
    non_udp_tcp: int = 0  # IP packets of other protocols (ICMP, ESP, ...)
    fragments: int = 0  # IP fragments fed to reassembly
    reassembled: int = 0  # datagrams completed from fragments
    duplicates: int = 0  # mirror duplicates suppressed
    tcp_segments: int = 0
    tcp_messages: int = 0  # SIP messages framed out of TCP streams
    truncated: bool = False  # the file ended inside a record
    errors: dict[str, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)

    def count_error(self, kind: str) -> None:
        """Add one to ``errors[kind]``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _slot_setters() -> list[Callable[[Datagram, Any], None]] | None:
    """Setters of `Datagram`'s slots, in field order, or None if they are not as expected.

    ``Datagram(...)`` costs 1.4 us on the reference machine - a frozen dataclass
    ``__init__`` assigns every field through ``object.__setattr__`` - as much as decoding
    the frame. ``object.__new__`` plus the slot descriptors' ``__set__`` costs 0.7 us and
    builds an equal object (tests compare both ways of building).
    """
    names = ("at", "src", "dst", "transport", "payload", "source", "vlan")
    if getattr(Datagram, "__slots__", ()) != names:
        return None
    return [getattr(Datagram, name).__set__ for name in names]


def _no_slot(_datagram: Datagram, _value: Any) -> None:
    raise AssertionError("unused when Datagram has no slots")  # pragma: no cover


_SLOT_SETTERS = _slot_setters()
_PORTS = struct.Struct("!HH").unpack_from
# IPv4 + UDP fields of the fast path: version/IHL, total length, identification,
# flags/fragment offset, protocol, UDP length (RFC 791 3.1, RFC 768)
_IPV4_UDP = struct.Struct("!BxHHHxB14xH").unpack_from


class PacketPipeline:
    """Decodes frames of one capture into `Datagram`s, keeping the cross-packet state."""

    def __init__(
        self,
        config: CaptureConfig | None = None,
        *,
        source: str = "pcap",
        counters: CaptureCounters | None = None,
        framer_factory: Callable[[], Framer] | None = None,
        looks_like_sip: Callable[[bytes], bool] | None = None,
        media_routes: MediaRoutes | None = None,
    ) -> None:
        self.config = config = config or CaptureConfig()
        #: the consumer's known media flows (see the module docs), or None
        self.media_routes = media_routes
        self.source = source
        self.counters = counters if counters is not None else CaptureCounters()
        self.dedup = DuplicateFilter(config.dedup_window_ns, config.dedup_max_entries)
        self.fragments = FragmentReassembler(
            timeout_ns=config.frag_timeout_ns,
            max_datagrams=config.frag_max_datagrams,
            max_bytes=config.frag_max_bytes,
        )
        self.tcp = TcpReassembler(
            max_streams=config.tcp_max_streams,
            idle_timeout_ns=config.tcp_idle_timeout_ns,
            max_message=config.tcp_max_message,
            max_out_of_order=config.tcp_max_out_of_order,
            framer_factory=framer_factory,
            looks_like_sip=looks_like_sip,
        )
        self._endpoints: dict[bytes, tuple[Endpoint, Endpoint]] = {}
        self._ips: dict[bytes, str] = {}
        #: packet time of the last record decoded (None before the first)
        self.last_at: Timestamp | None = None
        self._housekeeping_at = -(1 << 63)

    def datagrams(  # noqa: PLR0912, PLR0915
        self,
        records: Iterable[Record],
        *,
        final: bool = True,
        media_routes: MediaRoutes | None = None,
    ) -> Iterator[Datagram]:
        """Decode ``records`` ``(at_ns, linktype, frame, orig_len)`` lazily, in order.

        A `CaptureParseError` raised by ``records`` (a truncated or damaged file) ends the
        iteration and is recorded in the counters (``truncated``, ``errors``, ``anomalies``).
        ``final``: these are the last records of the capture (a file); at their end the
        fragments and TCP bytes still waiting are counted as lost (`finish`). A live source
        passes False for each batch. ``media_routes``: for this iteration, instead of the
        pipeline's own (see the module docs).
        """
        # the hot loop: duplicate check and Datagram construction are inlined on purpose
        counters = self.counters
        endpoints = self._endpoints
        pair = self._endpoint_pair
        push = self.push
        udp = Transport.UDP
        source = self.source
        dedup = self.dedup
        window = dedup.window_ns
        table = dedup.table
        lookup = table.get
        sweep_size = dedup.sweep_size
        new = object.__new__
        slots = _SLOT_SETTERS
        s_at, s_src, s_dst, s_transport, s_payload, s_source, s_vlan = slots or [_no_slot] * 7
        housekeeping_at = self._housekeeping_at
        routes = media_routes if media_routes is not None else self.media_routes
        route_of = routes.flows.get if routes is not None else None
        scanner = self._scanner(records, routes, housekeeping_at)
        at: int | None = None
        try:
            for at, linktype, frame, _orig in records:
                counters.packets += 1
                counters.bytes += len(frame)
                if scanner is not None:
                    scanner.last_at = at
                if at >= housekeeping_at:
                    housekeeping_at = self.expire(at)
                    if scanner is not None:
                        scanner.housekeeping_at = housekeeping_at
                # fast path: IPv4 without options (0x45), not a fragment (MF and offset
                # clear), UDP (17), whole packet captured, behind Ethernet (LINKTYPE 1, with
                # at most one 802.1Q tag) or Linux cooked (113, 276) headers
                if linktype == 1:
                    kind = frame[12:14]
                    if kind == b"\x08\x00":
                        l3, vlan = 14, None
                    elif kind == b"\x81\x00" and frame[16:18] == b"\x08\x00":
                        l3, vlan = 18, (frame[14] << 8 | frame[15]) & 0x0FFF
                    else:
                        l3 = 0
                elif linktype == 113 and frame[14:16] == b"\x08\x00":
                    l3, vlan = 16, None
                elif linktype == 276 and frame[:2] == b"\x08\x00":
                    l3, vlan = 20, None
                else:
                    l3 = 0
                if l3 and len(frame) >= l3 + 28:
                    vihl, total, ident, flags, proto, udp_length = _IPV4_UDP(frame, l3)
                    start = l3 + 28
                    end = l3 + total
                    udp_end = l3 + 20 + udp_length
                    if (
                        vihl == 0x45
                        and proto == 17
                        and not flags & 0x3FFF
                        and end <= len(frame)
                        and start <= udp_end <= end
                    ):
                        payload = frame[start:udp_end]
                        flow = frame[l3 + 12 : start - 4]
                        if window:  # DuplicateFilter.seen, inlined; key as in _transport
                            digest = hash((ident, flow, payload))
                            last = lookup(digest)
                            if last is not None and -window <= at - last <= window:
                                counters.duplicates += 1
                                continue
                            table[digest] = at
                            if len(table) > sweep_size:
                                sweep_size = dedup.sweep(at)
                        if route_of is not None:  # a known media flow: see the module docs
                            route = route_of(flow)
                            if (
                                route is not None
                                and at < routes.deadline  # type: ignore[union-attr]
                                and udp_end - start >= 12
                                and frame[start] & 0xC0 == 0x80
                            ):
                                counters.datagrams += 1
                                route(at, payload)
                                continue
                        src, dst = endpoints.get(flow) or pair(flow)
                        if slots:  # Datagram(...) through its slots: see _slot_setters
                            d = new(Datagram)
                            s_at(d, at)
                            s_src(d, src)
                            s_dst(d, dst)
                            s_transport(d, udp)
                            s_payload(d, payload)
                            s_source(d, source)
                            s_vlan(d, vlan)
                        else:
                            d = Datagram(Timestamp(at), src, dst, udp, payload, source, vlan)
                        counters.datagrams += 1
                        yield d
                        continue
                yield from push(at, linktype, frame, counted=True)
                sweep_size = dedup.sweep_size
        except CaptureParseError as exc:
            if scanner is not None:  # it knows the last record, taken by it or by this loop
                at = scanner.last_at
            if isinstance(exc, CaptureTruncatedError):
                counters.truncated = True
            counters.count_error(exc.kind)
            counters.anomalies.append(Anomaly(exc.kind, str(exc), _stamp(at)))
        finally:
            self._housekeeping_at = housekeeping_at
            if scanner is not None:
                records.scanner = None  # type: ignore[attr-defined]
                at = scanner.last_at
            if at is not None:
                self.last_at = Timestamp(at)
        if final:
            self.finish()

    def _scanner(
        self, records: Iterable[Record], routes: MediaRoutes | None, housekeeping_at: int
    ) -> Any:
        """A `PcapScanner` handed to ``records`` if it is a pcap or pcapng file read with
        media routes and the scanner is built (see `callscope.capture._pcapscan`)."""
        if _pcapscan is None or routes is None or not isinstance(records, CaptureFile):
            return None
        if records.format not in ("pcap", "pcapng"):
            return None
        scanner = _pcapscan.PcapScanner(routes, self.dedup, self.counters, housekeeping_at)
        records.scanner = scanner
        return scanner

    def expire(self, now: int) -> int:
        """Drop fragments and TCP streams timed out at packet time ``now``; return when the
        next check is due. `datagrams` calls it once per `HOUSEKEEPING_NS` of packet time."""
        frags = self.fragments
        before = _frag_losses(frags)
        frags.expire(now)
        self._count_frag_losses(_frag_losses(frags) - before)
        self.tcp.expire(now)
        return now + HOUSEKEEPING_NS

    def finish(self) -> None:
        """End of the capture: count what is still incomplete (``frag.incomplete`` datagrams,
        ``tcp.incomplete`` streams holding part of a message) and forget it."""
        errors = self.counters.errors
        pending = self.fragments.clear()
        if pending:
            errors["frag.incomplete"] = errors.get("frag.incomplete", 0) + pending
        incomplete = self.tcp.incomplete()
        if incomplete:
            errors["tcp.incomplete"] = errors.get("tcp.incomplete", 0) + incomplete

    def push(
        self, at: int, linktype: int, frame: bytes, *, counted: bool = False
    ) -> list[Datagram]:
        """Decode one frame (any link type); return the Datagrams it completes (0, 1 or more
        for a TCP segment). ``counted``: the caller already counted the frame."""
        counters = self.counters
        if not counted:
            counters.packets += 1
            counters.bytes += len(frame)
        try:
            ethertype, offset, vlan = link_layer(linktype, frame)
            ip = ip_packet(frame, ethertype, offset)
            if ip is None:
                counters.non_ip += 1
                return []
            if ip.fragment:
                return self._fragment(at, ip, vlan)
            return self._transport(at, ip, ip.proto, ip.payload, vlan, dedup=True)
        except MalformedFrameError as exc:
            counters.count_error(exc.kind)
        except (IndexError, struct.error):
            # a frame the explicit length checks let through: count it, never stop
            counters.count_error("frame.malformed")
        return []

    def _fragment(self, at: int, ip: IpPacket, vlan: int | None) -> list[Datagram]:
        counters = self.counters
        seen = self.dedup.seen if self.config.dedup_window_ns > 0 else None
        flow = ip.src + ip.dst
        key = (ip.tag, flow, ip.proto, ip.ident, ip.frag_offset, ip.more, ip.payload)
        if seen is not None and seen(key, at):
            counters.duplicates += 1
            return []
        counters.fragments += 1
        frags = self.fragments
        before = _frag_losses(frags)
        data = frags.push(
            at, (ip.version, flow, ip.proto, ip.ident, vlan), ip.frag_offset, ip.more, ip.payload
        )
        self._count_frag_losses(_frag_losses(frags) - before)
        if data is None:
            return []
        counters.reassembled += 1
        proto = ip.proto
        if ip.version == 6:  # RFC 8200 4.5: extension headers may follow in the payload
            proto, start = ipv6_extensions(proto, data, 0, len(data))
            data = data[start:]
        return self._transport(at, ip, proto, data, vlan, dedup=False)

    def _transport(
        self, at: int, ip: IpPacket, proto: int, l4: bytes, vlan: int | None, *, dedup: bool
    ) -> list[Datagram]:
        counters = self.counters
        seen = self.dedup.seen if dedup and self.config.dedup_window_ns > 0 else None
        if proto == IPPROTO_UDP:
            _sport, _dport, payload = udp_payload(l4)
            flow = ip.src + ip.dst + l4[:4]
            if seen is not None and seen((ip.tag, flow, payload), at):
                counters.duplicates += 1
                return []
            counters.datagrams += 1
            return [self._datagram(at, flow, Transport.UDP, payload, vlan)]
        if proto == IPPROTO_TCP:
            return self._tcp(at, ip, l4, vlan, seen)
        counters.non_udp_tcp += 1
        return []

    def _tcp(
        self, at: int, ip: IpPacket, l4: bytes, vlan: int | None, seen: Callable[..., bool] | None
    ) -> list[Datagram]:
        counters = self.counters
        segment = tcp_segment(l4)
        flow = ip.src + ip.dst + l4[:4]
        key = (flow, vlan)
        if not segment.flags & (TCP_FIN | TCP_RST) and self.tcp.rejected(key, at, segment.payload):
            counters.tcp_segments += 1  # a stream already judged not SIP: no more work
            return []
        if seen is not None and seen((ip.tag, flow, IPPROTO_TCP, l4), at):
            counters.duplicates += 1
            return []
        counters.tcp_segments += 1
        messages = self.tcp.push(at, key, segment.seq, segment.flags, segment.payload)
        if not messages:
            return []
        counters.tcp_messages += len(messages)
        counters.datagrams += len(messages)
        return [self._datagram(at, flow, Transport.TCP, message, vlan) for message in messages]

    def _datagram(
        self, at: int, flow: bytes, transport: Transport, payload: bytes, vlan: int | None
    ) -> Datagram:
        src, dst = self._endpoints.get(flow) or self._endpoint_pair(flow)
        if _SLOT_SETTERS is None:
            return Datagram(Timestamp(at), src, dst, transport, payload, self.source, vlan)
        datagram = object.__new__(Datagram)
        values = (at, src, dst, transport, payload, self.source, vlan)
        for setter, value in zip(_SLOT_SETTERS, values, strict=True):
            setter(datagram, value)
        return datagram

    def _count_frag_losses(self, lost: int) -> None:
        if lost:
            errors = self.counters.errors
            errors["frag.dropped"] = errors.get("frag.dropped", 0) + lost

    def _endpoint_pair(self, flow: bytes) -> tuple[Endpoint, Endpoint]:
        """Endpoints for ``src + dst + ports`` raw bytes (12 for IPv4, 36 for IPv6)."""
        size = (len(flow) - 4) // 2
        sport, dport = _PORTS(flow, 2 * size)
        pair = (
            Endpoint(self._ip(flow[:size]), sport),
            Endpoint(self._ip(flow[size : 2 * size]), dport),
        )
        if len(self._endpoints) >= ENDPOINT_CACHE:
            self._endpoints.clear()
            self._ips.clear()
        self._endpoints[flow] = pair
        return pair

    def _ip(self, raw: bytes) -> str:
        text = self._ips.get(raw)
        if text is None:
            text = self._ips[raw] = format_ip(raw)
        return text


def _stamp(at: int | None) -> Timestamp | None:
    return None if at is None else Timestamp(at)


def _frag_losses(frags: FragmentReassembler) -> int:
    c = frags.counters
    return c.invalid + c.overlaps + c.timeouts + c.evicted


def read_file(
    path: str | os.PathLike[str] | BinaryIO,
    *,
    source: str = "pcap",
    counters: CaptureCounters | None = None,
    config: CaptureConfig | None = None,
    **pipeline: Any,
) -> Iterator[Datagram]:
    """Read a pcap / pcapng / NetMon file (or a binary file object) as `Datagram`s.

    The file is opened and its header checked before this returns: a file that is not a
    capture raises `CaptureParseError` here (``OSError`` if it cannot be opened). During
    iteration nothing is raised for bad input: frames that cannot be decoded are counted in
    ``counters.errors``; a file cut inside a record ends the iteration after its last
    complete record with ``counters.truncated`` set and a ``capture.truncated`` `Anomaly`;
    a damaged record in the middle ends it the same way with a ``capture.parse`` Anomaly.
    Pass a `CaptureCounters` to read the counts during and after the iteration.
    ``pipeline`` keywords go to `PacketPipeline` (``framer_factory``, ``looks_like_sip``,
    ``media_routes``).
    """
    counters = counters if counters is not None else CaptureCounters()
    capture = open_capture(path)
    try:
        flow = PacketPipeline(config, source=source, counters=counters, **pipeline)
    except BaseException:
        capture.close()
        raise
    return flow.datagrams(capture)
