"""The SIPREC listener's sockets: RTP ports from a range, SIP stream connections, TLS.

`RtpPorts` is the `PortAllocator` the recording server's UAS asks for ports: each port is
an even number of the configured range (RFC 3550 11: RTP on even ports), bound to a
non-blocking UDP socket at once (so a port in use elsewhere is skipped) and registered
with the listener's selector; `release` closes it. The ports of one answer are a run of
consecutive even ports when one is free (some clients, SIPp among them, only add an offset
to the first port), handed out round robin, so a port just released is not reused at once
(late packets of an ended session go nowhere).

`SipConnection` is one TCP or TLS connection of a recording client: bytes in go through a
`SipFramer` (RFC 3261 18.3: Content-Length frames each message), bytes out wait in a
buffer until the socket takes them. TLS connections do their handshake without blocking
(`ssl` with ``do_handshake_on_connect=False``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callscope.core import Endpoint, Transport
from callscope.protocol.sipframing import SipFramer

__all__ = [
    "RtpPorts",
    "SipConnection",
    "TlsFiles",
    "bind_socket",
    "enlarge_buffer",
    "tls_context",
]

_RTP_BUFFER = 256 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_READ = 262_144
_MAX_READS = 16


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM certificate (chain) and private key files of the SIP-over-TLS listener."""

    certificate: Path
    key: Path


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer) with the certificate; raises OSError/SSLError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.certificate), str(files.key))
    return context


def bind_socket(address: Endpoint, kind: socket.SocketKind) -> socket.socket:
    """A non-blocking UDP or listening TCP socket on ``address``."""
    family = socket.AF_INET6 if ":" in address.ip else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.ip, address.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def enlarge_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a ``size`` receive buffer (beyond rmem_max when privileged): a burst of
    INVITEs is held while the recorder saves ended calls."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class RtpPorts:
    """Even UDP ports of ``ports`` bound on ``ip`` for RTP, registered with ``selector``."""

    def __init__(self, ip: str, ports: range, selector: selectors.BaseSelector) -> None:
        first = ports.start + ports.start % 2
        self.candidates = list(range(first, ports.stop, 2))
        if not self.candidates:
            raise ValueError("the RTP port range holds no even port")
        self.ip = ip
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.selector = selector
        self.sockets: dict[int, socket.socket] = {}
        self.failed_binds = 0
        self._next = 0

    def allocate(self, count: int) -> list[int] | None:
        """Bind ``count`` free even ports, consecutive when such a run is free (from the
        round-robin cursor on), else any; None when there are not that many."""
        size = len(self.candidates)
        for step in range(size):
            first = (self._next + step) % size
            if first + count > size:
                continue  # a run does not wrap around the end of the range
            run = self._bind_all(self.candidates[first : first + count])
            if run is not None:
                self._next = (first + count) % size
                return run
        scattered = [p for p in self.candidates if p not in self.sockets][:count]
        return self._bind_all(scattered) if len(scattered) == count else None

    def _bind_all(self, ports: list[int]) -> list[int] | None:
        """Bind every port of ``ports`` or none of them."""
        if any(port in self.sockets for port in ports):
            return None
        bound: list[int] = []
        for port in ports:
            if not self._bind(port):
                for done in bound:
                    self.release(done)
                return None
            bound.append(port)
        return bound

    def _bind(self, port: int) -> bool:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RTP_BUFFER)
            sock.bind((self.ip, port))
        except OSError:
            sock.close()
            self.failed_binds += 1  # in use by another program: skip it
            return False
        sock.setblocking(False)
        self.sockets[port] = sock
        self.selector.register(sock, selectors.EVENT_READ, port)
        return True

    def release(self, port: int) -> None:
        """Close the port's socket."""
        sock = self.sockets.pop(port, None)
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()

    def close(self) -> None:
        for port in list(self.sockets):
            self.release(port)


class SipConnection:
    """One TCP or TLS connection of a recording client (see the module docs)."""

    def __init__(
        self,
        sock: socket.socket,
        peer: Endpoint,
        local: Endpoint,
        transport: Transport,
        selector: selectors.BaseSelector,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.local = local
        self.transport = transport
        self.selector = selector
        self.framer = SipFramer()
        self.out = bytearray()
        self.handshaken = transport is not Transport.TLS
        self.closed = False
        selector.register(sock, selectors.EVENT_READ, self)

    def receive(self) -> list[bytes] | None:
        """The complete messages now readable; None when the peer closed or failed."""
        if not self.handshaken and not self._handshake():
            return [] if not self.closed else None
        messages: list[bytes] = []
        for _ in range(_MAX_READS):  # a busy peer must not hold the loop
            try:
                data = self.sock.recv(_READ)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                return None
            if not data:
                return None
            messages.extend(self.framer.feed(data))
        return messages

    def _handshake(self) -> bool:
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (ssl.SSLError, OSError):
            self.closed = True
            return False
        self.handshaken = True
        return True

    def send(self, data: bytes) -> None:
        """Queue ``data`` and write what the socket takes now."""
        self.out += data
        self.flush()

    def flush(self) -> None:
        """Write buffered bytes; watch for writability while some are left."""
        while self.out and self.handshaken and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                self.closed = True
                return
            del self.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.modify(self.sock, events, self)

    def close(self) -> None:
        if self.closed and self.sock.fileno() < 0:
            return
        self.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.sock)
        self.sock.close()


def accept(
    listener: socket.socket,
    transport: Transport,
    selector: selectors.BaseSelector,
    wrap: Callable[[socket.socket], socket.socket] | None,
) -> SipConnection | None:
    """Accept one connection (None when there was none or TLS wrapping failed)."""
    try:
        sock, addr = listener.accept()
    except (BlockingIOError, OSError):
        return None
    sock.setblocking(False)
    local_ip, local_port = sock.getsockname()[:2]
    if wrap is not None:
        try:
            sock = wrap(sock)
        except (ssl.SSLError, OSError):
            sock.close()
            return None
    peer = Endpoint(addr[0], addr[1])
    return SipConnection(sock, peer, Endpoint(local_ip, local_port), transport, selector)
