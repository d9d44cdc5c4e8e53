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
- One read hands over at most ``max_read`` packets, decoded one by one as they are copied
  out of libpcap's buffer: a backlog waits in the kernel buffer, which is resident memory
  already, instead of being copied into Python objects all at once (a 64 MiB backlog read in
  one go took another ~170 MB of frames and datagrams at its peak).
- `LiveSource.stats` exposes the kernel counters: received, dropped (buffer full) and
  dropped by the interface.

Timestamps are microseconds from libpcap, as int nanoseconds. Opening or filtering errors
raise `InterfaceError` (an ``OSError``, like a capture file that cannot be opened).
"""

from __future__ import annotations

import select
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pcapy

from callscope.capture.records import Record
from callscope.capture.source import CaptureConfig, CaptureCounters, PacketPipeline
from callscope.core import Datagram

#: BPF filter used when none is given: SIP and RTP travel over UDP, SIP also over TCP
DEFAULT_FILTER = "udp or tcp"
#: kernel buffer requested before activation
DEFAULT_BUFFER = 64 << 20
#: libpcap read timeout: how long the kernel may hold a partly filled block
READ_TIMEOUT_MS = 50
#: packets handed over per read at most (the rest of a backlog stays in the kernel buffer)
DEFAULT_MAX_READ = 16_384

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
        config: CaptureConfig | None = None,
        counters: CaptureCounters | None = None,
        source: str = "live",
    ) -> None:
        self.interface = interface
        self.batch = batch
        self.max_read = max(max_read, 1)
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
        want = min(self.batch, self.max_read)
        first = self._handle.next_batch(want)
        if not first[1]:
            ready, _w, _x = select.select([self._fd], [], [], timeout_s)
            if not ready:
                return []
            first = self._handle.next_batch(want)
        return list(self.pipeline.datagrams(self._records(first, want), final=False))

    def _records(self, first: tuple[bytes, bytes], want: int) -> Iterator[Record]:
        """The packets of ``first`` (a `next_batch` of up to ``want``), then of further
        batches while libpcap has more ready, up to ``max_read`` in all, without blocking.
        Each frame is copied out of the batch as it is decoded (no list of them all)."""
        linktype = self.linktype
        data, meta = first
        left = self.max_read
        while True:
            for sec, usec, offset, caplen in _META.iter_unpack(meta):
                yield (
                    sec * 1_000_000_000 + usec * 1000,
                    linktype,
                    data[offset : offset + caplen],
                    caplen,
                )
            got = len(meta) // _META.size
            left -= got
            if got < want or left <= 0:
                return
            want = min(self.batch, left)
            data, meta = self._handle.next_batch(want)

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
