"""A live network interface as a source of `Datagram`s (libpcap through pcapy-ng).

A thin reader: the loop around it (daemon, signals, storage) belongs to the ingest layer.

- The handle is made with ``pcapy.create`` so that the kernel buffer can be enlarged
  before activation (``set_buffer_size``; a burst of a few hundred calls must not be
  dropped while Python is busy), with a 65535-byte snap length and promiscuous mode.
- A BPF filter runs in the kernel (default ``udp or tcp``, or the operator's). It is
  widened by `capture_filter` so that it also passes non-first IP fragments (they carry no
  UDP header, so ``udp port 5060`` alone would lose every large INVITE) and the same
  traffic behind one or two VLAN tags (a trunk mirror port).
- The handle is non-blocking and `LiveSource.read_batch` waits with ``select`` on its file
  descriptor: ``next_batch`` on an idle blocking handle can block forever, so a loop could
  never stop (FIELD-NOTES). Packets come in batches (one C call for up to ``batch``
  packets) and go through the same `PacketPipeline` as files.
- Every read drains what libpcap has ready, as it comes (one bytes object of frames and one
  of metadata per batch: a few bytes more than the frames), into a backlog of at most
  ``backlog_bytes``, and hands over at most ``max_read`` packets of it, decoded one by one.
  A recorder that falls behind for a while (a busy core) therefore keeps the packets in
  user space at about a third of what frames and `Datagram`s take, and never holds more
  than ``max_read`` of those (a 64 MiB backlog decoded in one read took ~170 MB more at its
  peak). When the backlog is full, packets wait in the kernel buffer.
- `LiveSource.stats` exposes the kernel counters: received, dropped (buffer full) and
  dropped by the interface.

Timestamps are microseconds from libpcap, as int nanoseconds. Opening or filtering errors
raise `InterfaceError` (an ``OSError``, like a capture file that cannot be opened).
"""

from __future__ import annotations

import select
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pcapy

from callscope.capture.records import Record
from callscope.capture.source import CaptureConfig, CaptureCounters, PacketPipeline
from callscope.core import Datagram, MediaRoutes

#: BPF filter used when none is given: SIP and RTP travel over UDP, SIP also over TCP
DEFAULT_FILTER = "udp or tcp"
#: kernel buffer requested before activation
DEFAULT_BUFFER = 64 << 20
#: libpcap read timeout: how long the kernel may hold a partly filled block
READ_TIMEOUT_MS = 50
#: packets handed over per read at most (the rest of a backlog waits, compact)
DEFAULT_MAX_READ = 16_384
#: frames copied out of libpcap and not yet handed over, at most (bytes)
DEFAULT_BACKLOG = 64 << 20

_META = struct.Struct("=IIII")  # next_batch metadata: sec, usec, offset, caplen

MESSAGES = {
    "open": "interface cannot be opened",
    "filter": "BPF filter does not compile",
}


def capture_filter(expression: str = DEFAULT_FILTER) -> str:
    """The BPF filter installed for ``expression``: it, or any non-first IPv4 fragment or
    IPv6 fragment (RFC 8200 4.5, fragment header first), untagged or behind one or two
    802.1Q/802.1ad tags (pcap-filter(7): ``vlan`` moves the offsets of what follows)."""
    fragments = "(ip[6:2] & 0x1fff != 0) or (ip6[6] = 44)"
    inner = f"({expression}) or {fragments}"
    return f"{inner} or (vlan and ({inner})) or (vlan and vlan and ({inner}))"


class InterfaceError(OSError):
    """A live interface that cannot be opened or filtered; ``interface`` names it and
    ``status`` is libpcap's error code when activation failed (-5 no such device, -8
    permission denied; see pcap_activate(3PCAP))."""

    def __init__(self, key: str, interface: str, status: int | None = None) -> None:
        super().__init__(MESSAGES[key])
        self.interface = interface
        self.status = status


@dataclass(frozen=True, slots=True)
class LiveStats:
    """Kernel counters since the handle was opened (``pcap_stats``)."""

    received: int
    dropped: int  # no room in the kernel buffer: the reader was too slow
    ifdropped: int  # dropped by the interface or its driver


class LiveSource:
    """Reads `Datagram`s from a live interface in batches."""

    def __init__(
        self,
        interface: str,
        *,
        bpf_filter: str = DEFAULT_FILTER,
        snaplen: int = 65535,
        promiscuous: bool = True,
        buffer_bytes: int = DEFAULT_BUFFER,
        batch: int = 4096,
        max_read: int = DEFAULT_MAX_READ,
        backlog_bytes: int = DEFAULT_BACKLOG,
        config: CaptureConfig | None = None,
        counters: CaptureCounters | None = None,
        source: str = "live",
    ) -> None:
        self.interface = interface
        self.batch = batch
        self.max_read = max(max_read, 1)
        self.backlog_bytes = backlog_bytes
        #: batches ``(frames, metadata)`` copied out of libpcap, oldest first; ``_handed``
        #: packets of the first one were handed over already
        self._backlog: deque[tuple[bytes, bytes]] = deque()
        self._backlog_size = 0
        self._handed = 0
        self._handle = _open(interface, snaplen, promiscuous, buffer_bytes)
        #: the BPF program source actually installed
        self.bpf_filter = capture_filter(bpf_filter)
        try:
            self._handle.setfilter(self.bpf_filter)
        except pcapy.PcapError as exc:
            self._handle.close()
            raise InterfaceError("filter", interface) from exc
        self._handle.setnonblock(1)
        self._fd = self._handle.getfd()
        self.linktype: int = self._handle.datalink()
        self.pipeline = PacketPipeline(config, source=source, counters=counters)
        self._closed = False

    @property
    def counters(self) -> CaptureCounters:
        """What the pipeline decoded so far (packets, datagrams, duplicates, errors...)."""
        return self.pipeline.counters

    def read_batch(self, timeout_s: float) -> list[Datagram]:
        """Wait up to ``timeout_s`` for packets; return the Datagrams decoded from them (from
        ``max_read`` packets at most: the next read takes the rest without waiting).

        Returns an empty list on timeout (the caller's loop can then check for a stop).
        """
        return list(self.read_routed(timeout_s, None))

    def read_routed(self, timeout_s: float, media_routes: MediaRoutes | None) -> Iterator[Datagram]:
        """As `read_batch`, lazily: each packet is decoded when the consumer asks for the
        next datagram, and RTP of the flows in ``media_routes`` goes straight to their
        receivers (`callscope.core.routes`). The consumer must handle each datagram before
        asking for the next, and take them all before the next read."""
        self._drain()
        if not self._backlog:
            ready, _w, _x = select.select([self._fd], [], [], timeout_s)
            if not ready:
                return iter(())
            self._drain()
        return self.pipeline.datagrams(self._records(), final=False, media_routes=media_routes)

    @property
    def backlog(self) -> int:
        """Bytes of frames copied out of libpcap and still held (the batches not wholly
        handed over yet)."""
        return self._backlog_size

    def _drain(self) -> None:
        """Copy every packet libpcap has ready into the backlog (while it has room), without
        blocking."""
        batch = self.batch
        while self._backlog_size < self.backlog_bytes:
            data, meta = self._handle.next_batch(batch)
            if meta:
                self._backlog.append((data, meta))
                self._backlog_size += len(data)
            if len(meta) < _META.size * batch:
                return

    def _records(self) -> Iterator[Record]:
        """Up to ``max_read`` packets of the backlog, oldest first; each frame is copied out
        of its batch as it is decoded."""
        linktype = self.linktype
        backlog = self._backlog
        left = self.max_read
        while backlog and left > 0:
            data, meta = backlog[0]
            start = self._handed
            count = len(meta) // _META.size
            stop = min(count, start + left)
            left -= stop - start
            if stop == count:
                backlog.popleft()
                self._backlog_size -= len(data)
                self._handed = 0
            else:
                self._handed = stop
            for sec, usec, offset, caplen in _META.iter_unpack(
                meta[start * _META.size : stop * _META.size]
            ):
                yield (
                    sec * 1_000_000_000 + usec * 1000,
                    linktype,
                    data[offset : offset + caplen],
                    caplen,
                )

    def stats(self) -> LiveStats:
        """Kernel counters: received, dropped, dropped by the interface."""
        received, dropped, ifdropped = self._handle.stats()
        return LiveStats(received, dropped, ifdropped)

    def close(self) -> None:
        """Close the handle; further reads are an error."""
        if not self._closed:
            self._closed = True
            self._handle.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(interface: str, snaplen: int, promiscuous: bool, buffer_bytes: int) -> Any:
    try:
        handle = pcapy.create(interface)
        handle.set_snaplen(snaplen)
        handle.set_promisc(promiscuous)
        handle.set_buffer_size(buffer_bytes)
        handle.set_timeout(READ_TIMEOUT_MS)
        status = handle.activate()
    except pcapy.PcapError as exc:
        raise InterfaceError("open", interface) from exc
    # pcap_activate(3PCAP): negative is an error, positive a warning (e.g. no promiscuous
    # mode); pcapy-ng returns the status instead of raising
    if isinstance(status, int) and status < 0:
        handle.close()
        raise InterfaceError("open", interface, status)
    return handle
