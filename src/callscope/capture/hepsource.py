"""The HEP collector's sockets: HEPv3 (and v1/v2) over UDP and TCP on one port.

PBXs and proxies (Kamailio siptrace, OpenSIPS, Asterisk res_hep, FreeSWITCH, heplify) send
each SIP message they handle as one HEP message, usually to port 9060, over UDP or TCP.
`HepListener` binds both on the same address and is a packet source for the live recorder:
`HepListener.read_batch` waits with ``select`` on every socket (all non-blocking), then
drains what is ready - up to ``batch`` UDP datagrams and whatever the TCP peers sent - and
returns the SIP `Datagram`s `HepDecoder` made of it. Nothing a peer sends can raise here:
bad packets and refused peers are counted (`HepCounters`), never fatal.

- UDP: one datagram is one HEP message. The receive buffer is enlarged (``SO_RCVBUFFORCE``
  when allowed, else ``SO_RCVBUF`` up to the kernel's ``rmem_max``) so that a burst is held
  while Python works; the kernel's drop counter of the socket (``/proc/net/udp`` drops
  column) is read by `HepListener.stats`.
- TCP: each connection is cut into HEPv3 messages by `HepFramer` (HEPv1/v2 have no length
  field and are UDP only); bytes that cannot start a message are counted and skipped. At
  most ``max_clients`` connections are kept: more are accepted and closed at once.
- Time: the agent's timestamp (chunk 9/10) when it sent one, else - or when it is more
  than ``max_skew_ns`` away - the arrival time read once per batch from the wall clock.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from dataclasses import dataclass

from callscope.capture.hepdecode import HepCounters, HepDecoder
from callscope.core import Datagram, Endpoint
from callscope.protocol.hep import HepFramer

__all__ = ["DEFAULT_BUFFER", "HepListener", "HepListenerStats"]

#: receive buffer asked for the UDP socket
DEFAULT_BUFFER = 64 << 20
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_RECV = 65_535
_TCP_READ = 262_144


@dataclass(frozen=True, slots=True)
class HepListenerStats:
    """Socket-level figures: kernel drops of the UDP socket, TCP connections."""

    udp_drops: int  # datagrams the kernel dropped because the receive buffer was full
    tcp_open: int
    tcp_accepted: int
    tcp_refused: int  # closed at once: more than max_clients
    tcp_discarded: int  # stream octets that did not start a HEP message, or cut at close


class HepListener:
    """HEP over UDP and TCP on ``address`` (``port`` 0: any free port, the same for both)."""

    def __init__(
        self,
        address: Endpoint,
        *,
        auth_key: str | None = None,
        capture_ids: frozenset[int] | None = None,
        max_skew_ns: int | None = None,
        buffer_bytes: int = DEFAULT_BUFFER,
        batch: int = 4096,
        max_clients: int = 256,
        tcp: bool = True,
        counters: HepCounters | None = None,
        source: str = "hep",
    ) -> None:
        self.batch = batch
        self.max_clients = max_clients
        self.decoder = HepDecoder(
            auth_key=auth_key,
            capture_ids=capture_ids,
            max_skew_ns=max_skew_ns,
            counters=counters,
            source=source,
        )
        self._udp, self._tcp = _bind(address, tcp)
        self.buffer_bytes = _enlarge_buffer(self._udp, buffer_bytes)
        ip, port = self._udp.getsockname()[:2]
        #: the address actually bound (the real port when 0 was asked)
        self.address = Endpoint(ip, port)
        self._clients: dict[socket.socket, HepFramer] = {}
        self._accepted = 0
        self._refused = 0
        self._discarded_closed = 0
        self._inode = os.fstat(self._udp.fileno()).st_ino
        self._closed = False

    @property
    def counters(self) -> HepCounters:
        """What was received, by outcome (see `HepDecoder`)."""
        return self.decoder.counters

    def read_batch(self, timeout_s: float) -> list[Datagram]:
        """Wait up to ``timeout_s`` for HEP messages; return the SIP `Datagram`s in them.

        Returns an empty list on timeout or when nothing received was SIP.
        """
        out: list[Datagram] = []
        # what UDP already holds is read first; select then waits only when it held nothing
        busy = self._drain_udp(out)
        waiting = [self._udp, *self._clients]
        if self._tcp is not None:
            waiting.append(self._tcp)
        ready, _w, _x = select.select(waiting, [], [], 0 if busy else timeout_s)
        for sock in ready:
            if sock is self._udp:
                if busy < self.batch:
                    self._drain_udp(out)
            elif sock is self._tcp:
                self._accept()
            else:
                self._read_client(sock, out)
        return out

    def _drain_udp(self, out: list[Datagram]) -> int:
        """Receive up to ``batch`` datagrams without blocking; returns how many."""
        recv = self._udp.recv
        decode = self.decoder.decode
        append = out.append
        now = time.time_ns()
        for received in range(self.batch):
            try:
                data = recv(_RECV)
            except BlockingIOError:
                return received
            dgram = decode(data, now)
            if dgram is not None:
                append(dgram)
        return self.batch

    def _accept(self) -> None:
        assert self._tcp is not None
        try:
            conn, _peer = self._tcp.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        if len(self._clients) >= self.max_clients:
            self._refused += 1
            conn.close()
            return
        conn.setblocking(False)
        self._accepted += 1
        self._clients[conn] = HepFramer()

    def _read_client(self, conn: socket.socket, out: list[Datagram]) -> None:
        try:
            data = conn.recv(_TCP_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # reset by the peer: as a close
        framer = self._clients[conn]
        if not data:
            self._discarded_closed += framer.discarded + framer.pending
            del self._clients[conn]
            conn.close()
            return
        now = time.time_ns()
        decode = self.decoder.decode
        for message in framer.feed(data):
            dgram = decode(message, now)
            if dgram is not None:
                out.append(dgram)

    def stats(self) -> HepListenerStats:
        """Kernel drops of the UDP socket and the TCP connection counts."""
        discarded = self._discarded_closed + sum(f.discarded for f in self._clients.values())
        return HepListenerStats(
            udp_drops=udp_drops(self._inode),
            tcp_open=len(self._clients),
            tcp_accepted=self._accepted,
            tcp_refused=self._refused,
            tcp_discarded=discarded,
        )

    def close(self) -> None:
        """Close every socket; further reads are an error."""
        if self._closed:
            return
        self._closed = True
        for conn in self._clients:
            conn.close()
        self._clients.clear()
        self._udp.close()
        if self._tcp is not None:
            self._tcp.close()

    def __enter__(self) -> HepListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bind(address: Endpoint, tcp: bool) -> tuple[socket.socket, socket.socket | None]:
    """A UDP socket and a listening TCP socket on the same address and port."""
    family = socket.AF_INET6 if ":" in address.ip else socket.AF_INET
    for _attempt in range(20 if address.port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((address.ip, address.port))
            udp.setblocking(False)
            if not tcp:
                return udp, None
            port = udp.getsockname()[1]
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((address.ip, port))
                listener.listen(128)
                listener.setblocking(False)
            except OSError as exc:
                listener.close()
                if exc.errno != errno.EADDRINUSE or address.port != 0:
                    raise
                udp.close()
                continue  # the free UDP port is taken for TCP: try another
            return udp, listener
        except BaseException:
            udp.close()
            raise
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")


def _enlarge_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size`` receive buffer (beyond rmem_max when privileged); return the
    size granted (Linux reports twice the usable size, socket(7))."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def udp_drops(inode: int) -> int:
    """The kernel's drop count of the UDP socket with this inode (0 when not found):
    the last column of /proc/net/udp and /proc/net/udp6 (proc(5))."""
    wanted = str(inode)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == wanted:
                        return int(fields[-1])
        except OSError:
            continue
    return 0
