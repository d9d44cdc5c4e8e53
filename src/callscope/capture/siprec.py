"""The SIPREC recording server's sockets: a packet source for the live recorder.

`SiprecSource` listens for recording clients on one address - SIP over UDP and TCP, and
over TLS on the next port when certificate files are given - and runs the sans-IO
`RecordingServer` (`callscope.protocol.siprec_uas`) on what arrives. Its answers give
each labelled stream an RTP port of the configured range (`RtpPorts`), whose sockets join
the same selector. One `read_batch` waits for any socket (epoll: a few hundred sessions
hold a thousand sockets, past ``select``'s limit), reads what is ready, sends what the
server says and returns `Datagram`s (``source="siprec"``) of what a mirror port at the
server would have seen: every SIP message received and sent, and every RTP packet, with
the arrival time. `callscope.assembly.siprec` turns those into call records.

Ports are released when a session ends (BYE either way, CANCEL, no ACK) and when a
session has had no SIP and no RTP for ``idle_timeout_s``: the server then ends it with a
BYE. `close` ends every session the same way. Nothing a client sends raises here; what
goes wrong is counted in `SiprecCounters`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callscope.capture.siprec_sockets import (
    RtpPorts,
    SipConnection,
    TlsFiles,
    accept,
    bind_socket,
    enlarge_buffer,
    tls_context,
)
from callscope.core import Datagram, Endpoint, Timestamp, Transport
from callscope.protocol.siprec_session import (
    Action,
    Outgoing,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
    SrsConfig,
)
from callscope.protocol.siprec_uas import RecordingServer

__all__ = ["SiprecCounters", "SiprecSource"]

SOURCE = "siprec"
_SECOND = 1_000_000_000
_RTP_BURST = 64  # datagrams read from one RTP socket per wake-up when catching up
_CATCH_UP_NS = 10_000_000
_SIP_BURST = 256
_MAX_CLIENTS = 256
_SIP_BUFFER = 8 << 20  # about 2000 SIPREC INVITEs
_MAX_PEERS = 65_536  # RTP source addresses remembered
_WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - addresses compared, not bound


@dataclass
class SiprecCounters:
    """What the listener saw and did."""

    packets: int = 0
    bytes: int = 0
    sip_received: int = 0
    sip_sent: int = 0
    rtp: int = 0
    sessions_started: int = 0
    sessions_ended: int = 0
    idle_ended: int = 0
    tcp_accepted: int = 0
    tcp_refused: int = 0
    send_failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Live:
    """A running session: its ports and when anything last happened."""

    ports: tuple[int, ...]
    last: int


class _Listener:
    """Marks a listening socket in the selector."""

    def __init__(self, transport: Transport, wrap: Callable[[socket.socket], socket.socket] | None):
        self.transport = transport
        self.wrap = wrap


class SiprecSource:
    """A SIPREC recording server on ``address`` (see the module docs)."""

    def __init__(
        self,
        address: Endpoint,
        *,
        rtp_ports: range,
        tls: TlsFiles | None = None,
        tcp: bool = True,
        config: SrsConfig | None = None,
        idle_timeout_s: int = 3600,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.clock = clock
        self.idle_timeout_ns = idle_timeout_s * _SECOND
        self.counters = SiprecCounters()
        self._closed = False
        self._connections: dict[Endpoint, SipConnection] = {}
        self._selector = selectors.DefaultSelector()
        self._udp = bind_socket(address, socket.SOCK_DGRAM)
        enlarge_buffer(self._udp, _SIP_BUFFER)
        ip, port = self._udp.getsockname()[:2]
        #: the address actually bound (the real port when 0 was asked)
        self.address = Endpoint(ip, port)
        self.tls_address: Endpoint | None = None
        self._sockets = [self._udp]
        self._selector.register(self._udp, selectors.EVENT_READ, None)
        try:
            if tcp:
                self._listen(Endpoint(ip, port), Transport.TCP, None)
            if tls is not None:
                context = tls_context(tls)
                self.tls_address = Endpoint(ip, port + 1)
                self._listen(self.tls_address, Transport.TLS, _wrapper(context))
            self.ports = RtpPorts(ip, rtp_ports, self._selector)
        except (OSError, ValueError):
            self.close()
            raise
        instance = config.instance if config is not None else os.urandom(3).hex()
        base = config or SrsConfig()
        self.server = RecordingServer(
            self.ports,
            SrsConfig(
                media_address=base.media_address, contact_host=base.contact_host,
                user_agent=base.user_agent, codecs=base.codecs,
                answer_delay_ns=base.answer_delay_ns, max_sessions=base.max_sessions,
                instance=instance,
            ),
        )  # fmt: skip
        self._live: dict[int, _Live] = {}
        self._port_dst: dict[int, Endpoint] = {}
        self._port_seen: dict[int, int] = {}
        self._local_ips: dict[str, str] = {}
        self._peers: dict[tuple[str, int], Endpoint] = {}
        self._next_idle_check = 0
        self._polled_at = 0

    def _listen(
        self, address: Endpoint, transport: Transport, wrap: Callable[..., socket.socket] | None
    ) -> None:
        sock = bind_socket(address, socket.SOCK_STREAM)
        self._sockets.append(sock)
        self._selector.register(sock, selectors.EVENT_READ, _Listener(transport, wrap))

    @property
    def sessions(self) -> int:
        """Recording sessions up now."""
        return self.server.sessions

    # -- the loop step -------------------------------------------------------------------------

    def read_batch(self, timeout_s: float) -> list[Datagram]:
        """Wait up to ``timeout_s``; handle what is ready; return what was seen."""
        out: list[Datagram] = []
        now = self.clock()
        self._timers(now, out)
        deadline = self.server.next_deadline()
        wait = timeout_s if deadline is None else min(timeout_s, max(0, deadline - now) / 1e9)
        ready = self._selector.select(0 if out else wait)
        at = self.clock()
        # RFC 3550 at 50 packets/s: a port polled again within 10 ms holds one packet, read
        # without the failing extra read (an exception each) that finds it empty; a slower
        # round drains what piled up (epoll is level-triggered: nothing is left behind)
        burst = 1 if at - self._polled_at < _CATCH_UP_NS else _RTP_BURST
        self._polled_at = at
        for key, mask in ready:
            data, sock = key.data, key.fileobj
            if isinstance(data, int) and isinstance(sock, socket.socket):
                self._read_rtp(sock, data, at, out, burst)
            elif data is None:
                self._read_udp(at, out)
            elif isinstance(data, _Listener) and isinstance(sock, socket.socket):
                self._accept(sock, data)
            elif isinstance(data, SipConnection):
                self._read_connection(data, mask, at, out)
        return out

    def _timers(self, now: int, out: list[Datagram]) -> None:
        deadline = self.server.next_deadline()
        if deadline is not None and deadline <= now:
            self._dispatch(self.server.expire(now), None, now, out)
        if now >= self._next_idle_check:
            self._next_idle_check = now + _SECOND
            for session, live in list(self._live.items()):
                last = max([live.last, *(self._port_seen.get(p, 0) for p in live.ports)])
                if now - last >= self.idle_timeout_ns:
                    self.counters.idle_ended += 1
                    self._dispatch(self.server.terminate(session, now), None, now, out)

    # -- reading -----------------------------------------------------------------------------

    def _read_rtp(
        self, sock: socket.socket, port: int, at: int, out: list[Datagram], burst: int
    ) -> None:
        """Drain one RTP port. The hot path of the listener: a `Datagram` is built through
        its slots (half the cost of the frozen dataclass's ``__init__``, as in
        `callscope.capture.source`) and the client's address is looked up, not rebuilt."""
        dst = self._port_dst.get(port) or Endpoint(self.address.ip, port)
        peers = self._peers
        append = out.append
        recvfrom = sock.recvfrom
        count = size = 0
        for _ in range(burst):
            try:
                data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._error("rtp.recv")
                break
            src = peers.get(addr)
            if src is None:
                src = self._peer(addr)
            append(_datagram(at, src, dst, Transport.UDP, data, SOURCE, None))
            count += 1
            size += len(data)
        self.counters.packets += count
        self.counters.rtp += count
        self.counters.bytes += size
        self._port_seen[port] = at

    def _peer(self, addr: tuple[str, int]) -> Endpoint:
        if len(self._peers) >= _MAX_PEERS:
            self._peers.clear()
        found = self._peers[addr] = Endpoint(addr[0], addr[1])
        return found

    def _read_udp(self, at: int, out: list[Datagram]) -> None:
        for _ in range(_SIP_BURST):
            try:
                data, addr = self._udp.recvfrom(65_535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._error("sip.recv")
                return
            src = Endpoint(addr[0], addr[1])
            self._sip(data, src, Transport.UDP, self._local_for(src), at=at, out=out)

    def _accept(self, listener: socket.socket, marker: _Listener) -> None:
        connection = accept(listener, marker.transport, self._selector, marker.wrap)
        if connection is None:
            return
        if len(self._connections) >= _MAX_CLIENTS:
            self.counters.tcp_refused += 1
            connection.close()
            return
        self.counters.tcp_accepted += 1
        old = self._connections.pop(connection.peer, None)
        if old is not None:
            old.close()
        self._connections[connection.peer] = connection

    def _read_connection(
        self, connection: SipConnection, mask: int, at: int, out: list[Datagram]
    ) -> None:
        if mask & selectors.EVENT_WRITE:
            connection.flush()
        if not mask & selectors.EVENT_READ:
            return
        messages = connection.receive()
        if messages is None:
            self._drop_connection(connection)
            return
        for message in messages:
            self._sip(
                message, connection.peer, connection.transport, connection.local, at=at, out=out
            )
        if connection.closed:
            self._drop_connection(connection)

    def _drop_connection(self, connection: SipConnection) -> None:
        connection.close()
        if self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]

    def _sip(
        self,
        data: bytes,
        src: Endpoint,
        transport: Transport,
        local: Endpoint,
        *,
        at: int,
        out: list[Datagram],
    ) -> None:
        self.counters.packets += 1
        self.counters.bytes += len(data)
        self.counters.sip_received += 1
        out.append(Datagram(Timestamp(at), src, local, transport, data, SOURCE))
        self._dispatch(self.server.receive(data, src, transport, local, at), local, at, out)

    # -- acting ------------------------------------------------------------------------------

    def _dispatch(
        self, actions: list[Action], local: Endpoint | None, at: int, out: list[Datagram]
    ) -> None:
        for action in actions:
            if isinstance(action, Outgoing):
                sender = local or self._local_for(action.dst)
                if self._send(action):
                    out.append(
                        Datagram(Timestamp(at), sender, action.dst, action.transport,
                                 action.data, SOURCE)
                    )  # fmt: skip
            elif isinstance(action, SessionStarted | SessionUpdated):
                self._session_media(action, local, at)
            elif isinstance(action, SessionEnded):
                live = self._live.pop(action.session, None)
                self.counters.sessions_ended += 1
                for port in live.ports if live is not None else ():
                    self._port_dst.pop(port, None)
                    self._port_seen.pop(port, None)

    def _session_media(
        self, event: SessionStarted | SessionUpdated, local: Endpoint | None, at: int
    ) -> None:
        if isinstance(event, SessionStarted):
            self.counters.sessions_started += 1
        ports = tuple(leg.port for leg in event.media if leg.port)
        ip = self.server.config.media_address or (local.ip if local is not None else None)
        for port in ports:
            self._port_dst[port] = Endpoint(ip or self.address.ip, port)
        live = self._live.get(event.session)
        all_ports = tuple(sorted({*ports, *(live.ports if live is not None else ())}))
        self._live[event.session] = _Live(all_ports, at)

    def _send(self, action: Outgoing) -> bool:
        if action.transport is Transport.UDP:
            try:
                self._udp.sendto(action.data, (action.dst.ip, action.dst.port))
            except OSError:
                self.counters.send_failures += 1
                return False
        else:
            connection = self._connections.get(action.dst)
            if connection is None or connection.closed:
                self.counters.send_failures += 1
                return False
            connection.send(action.data)
        self.counters.sip_sent += 1
        return True

    def _local_for(self, peer: Endpoint) -> Endpoint:
        """The address a peer reaches us on: the bound one, or for a wildcard bind the
        source address the routing table picks towards the peer."""
        if self.address.ip not in _WILDCARDS:
            return self.address
        ip = self._local_ips.get(peer.ip)
        if ip is None:
            family = socket.AF_INET6 if ":" in peer.ip else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((peer.ip, 9))
                    ip = probe.getsockname()[0]
                except OSError:
                    ip = self.address.ip
            if len(self._local_ips) < 4096:
                self._local_ips[peer.ip] = ip
        return Endpoint(ip, self.address.port)

    def _error(self, kind: str) -> None:
        self.counters.errors[kind] = self.counters.errors.get(kind, 0) + 1

    # -- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """End every session with a BYE, then close every socket."""
        if self._closed:
            return
        self._closed = True
        server = getattr(self, "server", None)
        if server is not None:
            self._dispatch(server.close(self.clock()), None, self.clock(), [])
        for connection in list(self._connections.values()):
            connection.flush()
            connection.close()
        ports = getattr(self, "ports", None)
        if ports is not None:
            ports.close()
        for sock in self._sockets:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._selector.close()


def _slot_datagram() -> Callable[..., Datagram]:
    """``Datagram(...)`` through ``object.__new__`` and the slot descriptors (see
    `callscope.capture.source`); plain ``Datagram`` if its slots are not as expected."""
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


def _wrapper(context: ssl.SSLContext) -> Callable[[socket.socket], socket.socket]:
    def wrap(sock: socket.socket) -> socket.socket:
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    return wrap
