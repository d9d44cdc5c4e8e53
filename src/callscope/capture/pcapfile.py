"""Streaming readers for capture files: classic pcap, pcapng and (read-only) NetMon 2.x.

Every reader yields records as plain tuples ``(at_ns, linktype, data, orig_len)``
(`callscope.capture.records`).

Memory is constant: the file is read in `CHUNK`-sized pieces and no record is kept after it
was yielded. A compressed file (gzip magic) is decompressed on the fly.

Errors (all fixed messages, see `records.MESSAGES`):

- a file that is not a capture file raises `CaptureParseError` when it is opened;
- a file cut inside a record (a copy of a capture still being written, a disk full) yields
  every complete record and then raises `CaptureTruncatedError` once, at the end of the
  iteration. ``CaptureFile.records`` and ``CaptureFile.offset`` then tell how far it got;
- a damaged record in the middle of a file raises `CaptureParseError` at that record,
  after every record before it was yielded.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from callscope.capture.errors import CaptureTruncatedError
from callscope.capture.netmon import netmon_records
from callscope.capture.pcapng import EPB, PcapngSection, section_at
from callscope.capture.records import CHUNK, MAX_RECORD, MESSAGES, Record, parse_error

_PCAP_MAGICS = {
    # magic as read little-endian -> (byte order, nanosecond, record header length)
    0xA1B2C3D4: ("<", False, 16),
    0xD4C3B2A1: (">", False, 16),
    0xA1B23C4D: ("<", True, 16),
    0x4D3CB2A1: (">", True, 16),
    # Alexey Kuznetzov's modified pcap: 8 more bytes per record header
    0xA1B2CD34: ("<", False, 24),
    0x34CDB2A1: (">", False, 24),
}
_PCAPNG_SHB = 0x0A0D0D0A
_NETMON2 = b"GMBU"
_GZIP = b"\x1f\x8b"


class CaptureFile:
    """An open capture file; iterate it once to get its records.

    ``format`` is ``pcap``, ``pcapng`` or ``netmon``. ``records`` counts the records yielded
    and ``offset`` is the (uncompressed) byte offset after the last one: exact once the
    iteration ended (or raised), updated every `CHUNK` during it. The file is closed when
    the iteration ends.
    """

    def __init__(self, stream: BinaryIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self.records = 0
        self.offset = 0
        #: a `callscope.capture._pcapscan.PcapScanner` that takes the records it can finish
        #: by itself before the next one is yielded (classic pcap and pcapng; set by the
        #: pipeline before the iteration starts)
        self.scanner: Any = None
        head = _read_exact(stream, 4)
        if head[:2] == _GZIP:
            self._stream = _Gunzip(head, stream)  # type: ignore[assignment]
            head = _read_exact(self._stream, 4)
            if len(head) < 4 and _cut(self._stream):
                raise CaptureTruncatedError(MESSAGES["truncated"])
        if not head:
            raise parse_error("empty")
        magic = int.from_bytes(head.ljust(4, b"\0"), "little")
        self._iterator: Iterator[Record]
        if magic in _PCAP_MAGICS:
            self.format = "pcap"
            self._iterator = self._pcap(head)
        elif magic == _PCAPNG_SHB:
            self.format = "pcapng"
            self._iterator = self._pcapng(head)
        elif head == _NETMON2:
            self.format = "netmon"
            self._iterator = self._netmon(head)
        else:
            raise parse_error("unknown")

    def __iter__(self) -> Iterator[Record]:
        return self._iterator

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file if this object opened it."""
        if self._owned:
            self._stream.close()

    def _more(self, want: int, pos: int, n: int) -> bytes:
        """Read at least a chunk; at the end of the stream, end or report the cut."""
        try:
            more = self._stream.read(max(CHUNK, want))
        except (zlib.error, gzip.BadGzipFile):
            raise parse_error("compressed") from None
        if not more and (pos != n or _cut(self._stream)):
            raise CaptureTruncatedError(MESSAGES["truncated"])
        return more

    # -- classic pcap ------------------------------------------------------------------

    def _pcap(self, head: bytes) -> Iterator[Record]:
        """https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html"""
        buf = head + _read_exact(self._stream, 20)
        if len(buf) < 24:
            raise CaptureTruncatedError(MESSAGES["truncated"])
        order, nano, hdr_len = _PCAP_MAGICS[int.from_bytes(buf[:4], "little")]
        major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(
            order + "HHiIII", buf, 4
        )
        if major != 2:
            raise parse_error("version")
        # draft-ietf-opsawg-pcap 4: LinkType is the low 16 bits; FCS bits above it
        linktype = network & 0xFFFF
        self.offset = 24
        return self._pcap_loop(order, 1 if nano else 1000, hdr_len, linktype)

    def _pcap_loop(self, order: str, mult: int, hdr_len: int, linktype: int) -> Iterator[Record]:
        # ``records`` and ``offset`` are synchronised at each refill and at the end only:
        # an attribute store per record is a measurable share of the hot loop
        unpack = struct.Struct(order + "IIII").unpack_from
        buf = b""
        pos = n = records = 0
        base = self.offset  # file offset of buf[0]
        scanner = self.scanner
        try:
            while True:
                if scanner is not None and n - pos >= hdr_len:
                    # the records it finishes by itself
                    pos = scanner.scan(buf, pos, n, linktype, order == ">", mult, hdr_len)
                    records += scanner.taken
                if n - pos >= hdr_len:
                    sec, frac, incl, orig = unpack(buf, pos)
                    start = pos + hdr_len
                    end = start + incl
                    if end <= n:
                        records += 1
                        pos = end
                        yield (sec * 1_000_000_000 + frac * mult, linktype, buf[start:end], orig)
                        continue
                    if incl > MAX_RECORD:
                        raise parse_error("record_length")
                    want = end - n
                else:
                    want = hdr_len - (n - pos)
                self.records, self.offset = records, base + pos
                more = self._more(want, pos, n)
                if not more:
                    return
                base += pos
                buf = buf[pos:] + more
                n = len(buf)
                pos = 0
        finally:
            self.records, self.offset = records, base + pos
            self.close()

    # -- pcapng ------------------------------------------------------------------------

    def _pcapng(self, head: bytes) -> Iterator[Record]:  # noqa: PLR0915 - one inlined loop
        # the Enhanced Packet Block (4.3) is decoded inline: it is nearly every block
        buf = head
        pos = records = base = last_at = 0
        n = len(buf)
        section: PcapngSection | None = None
        unset = PcapngSection("<")  # until the first section header: nothing matches
        header_epb, u32, interfaces = unset.header_epb, unset.u32, unset.interfaces
        scanner = self.scanner
        try:
            while True:
                if scanner is not None and section is not None and n - pos >= 32:
                    # the packet blocks it finishes by itself
                    pos = scanner.scan_pcapng(buf, pos, n, section.big_endian, interfaces)
                    if scanner.taken:
                        records += scanner.taken
                        last_at = scanner.last_at
                if n - pos >= 28 and section is not None:
                    # type, length, interface, timestamp (upper, lower), captured and
                    # original length
                    btype, blen, iface, high, low, cap, orig = header_epb(buf, pos)
                    if (
                        btype == EPB
                        and 32 <= blen <= n - pos
                        and not blen & 3
                        and cap <= blen - 32
                        and iface < len(interfaces)
                        and u32(buf, pos + blen - 4)[0] == blen
                    ):
                        linktype, mult, div, offset, _snap = interfaces[iface]
                        start = pos + 28
                        last_at = ((high << 32 | low) * mult) // div + offset
                        records += 1
                        pos += blen
                        yield (last_at, linktype, buf[start : start + cap], orig)
                        continue
                if n - pos >= 12:
                    section = section_at(buf, pos, section)
                    header_epb, u32 = section.header_epb, section.u32
                    interfaces = section.interfaces
                    blen = section.block_length(buf, pos)
                    if n - pos >= blen:
                        record = section.block(buf, pos, blen, last_at)
                        pos += blen
                        if record is not None:
                            last_at = record[0]
                            records += 1
                            yield record
                        continue
                    want = blen - (n - pos)
                else:
                    want = 12 - (n - pos)
                self.records, self.offset = records, base + pos
                more = self._more(want, pos, n)
                if not more:
                    return
                base += pos
                buf = buf[pos:] + more
                n = len(buf)
                pos = 0
        finally:
            self.records, self.offset = records, base + pos
            self.close()

    # -- NetMon 2.x --------------------------------------------------------------------

    def _netmon(self, head: bytes) -> Iterator[Record]:
        def advance(count: int, offset: int) -> None:
            self.records = count
            self.offset = offset

        try:
            yield from netmon_records(self._stream, head, advance)
        except (zlib.error, gzip.BadGzipFile):
            raise parse_error("compressed") from None
        finally:
            self.close()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream."""
    data = stream.read(size)
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


class _Gunzip:
    """A gzip stream that hands out every byte it could decompress before a cut.

    ``GzipFile.read`` raises EOFError for a cut stream and loses what it had decompressed
    in that call; this reads with ``read1`` and turns the cut into an early end of stream
    with ``truncated`` set.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=_Prefixed(prefix, stream), mode="rb")
        self.truncated = False

    def read(self, size: int) -> bytes:
        parts = []
        want = size
        while want > 0 and not self.truncated:
            try:
                part = self._gzip.read1(want)
            except EOFError:
                self.truncated = True
                break
            if not part:
                break
            parts.append(part)
            want -= len(part)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._gzip.seek(offset, whence)

    def close(self) -> None:
        self._gzip.close()


def _cut(stream: object) -> bool:
    return isinstance(stream, _Gunzip) and stream.truncated


class _Prefixed(io.RawIOBase):
    """A raw stream that first returns ``prefix`` (bytes already read) then ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_capture(source: str | os.PathLike[str] | BinaryIO) -> CaptureFile:
    """Open a capture file (path or binary file object) and check its header.

    Raises `CaptureParseError` if it is not a pcap, pcapng or NetMon 2.x file (possibly
    gzip-compressed), and lets `OSError` through for files that cannot be opened.
    """
    if isinstance(source, str | os.PathLike):
        stream: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed by CaptureFile.close
        try:
            return CaptureFile(stream, owned=True)
        except BaseException:
            stream.close()
            raise
    return CaptureFile(source)
