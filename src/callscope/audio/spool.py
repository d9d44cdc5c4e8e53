"""The per-call spool: an append-only file of raw RTP payloads, written during the call.

Capture never waits for codecs: it appends each packet of a recorded call here, and a worker
decodes and encodes after hangup. The format is small and self-checking (big-endian)::

    header   "CSSP" | version u8 (=1) | flags u8 (=0) | call ref length u16
             | call start ns i64 | call ref (UTF-8; the ingest layer's name for the call)
    record   body length u16 | crc32(body) u32 | body
    body     direction u8 | flags u8 (bit 0 = RTP marker) | payload type u8 | seq u16
             | RTP timestamp u32 | SSRC u32 | arrival ns i64 | payload

Durability (`FlushPolicy`): records are buffered in memory and handed to the OS every
``every_records`` records (optionally fsynced then); `SpoolWriter.finish` flushes, fsyncs,
and renames ``X`` to ``X.done``, then fsyncs the directory. So a crash loses at most the
unflushed tail of a call still in progress, never a finished call: a ``.done`` file is
complete by construction. The reader accepts a torn last record (the write a crash cut off)
and reports how many bytes it dropped.

The writer reads no clock: arrival times come with the packets. Paths are the caller's.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple, Self

from callscope.audio.errors import AudioParseError, AudioRangeError
from callscope.audio.packets import Direction, MediaPacket

MAGIC: Final = b"CSSP"
VERSION: Final = 1
DONE_SUFFIX: Final = ".done"
_HEADER: Final = struct.Struct(">4sBBHq")
_PREFIX: Final = struct.Struct(">HI")
_BODY: Final = struct.Struct(">BBBHIIq")
_RECORD: Final = struct.Struct(">HI" + _BODY.format[1:])  # prefix and body fields together
_DIRECTIONS: Final = (Direction.CALLER_TO_CALLEE, Direction.CALLEE_TO_CALLER)
#: builds a NamedTuple from its fields without its Python-level ``__new__`` (the reader
#: makes one per packet); the fields are already in order and complete
_new_tuple: Final = tuple.__new__
MAX_PAYLOAD: Final = 0xFFFF - _BODY.size


@dataclass(frozen=True, slots=True)
class SpoolHeader:
    """The spool's header; ``bytes(h)`` and `parse` are exact inverses."""

    call_ref: str
    started_ns: int

    @classmethod
    def parse(cls, data: bytes) -> SpoolHeader:
        """Parse the header at the start of ``data``; `AudioParseError` when it is not one."""
        if len(data) < _HEADER.size:
            raise AudioParseError("spool header truncated")
        magic, version, flags, ref_len, started = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise AudioParseError("not a spool file")
        if version != VERSION or flags != 0:
            raise AudioParseError("unsupported spool version")
        raw = data[_HEADER.size : _HEADER.size + ref_len]
        if len(raw) != ref_len:
            raise AudioParseError("spool header truncated")
        try:
            return cls(raw.decode("utf-8"), started)
        except UnicodeDecodeError:
            raise AudioParseError("spool call ref is not UTF-8") from None

    def __bytes__(self) -> bytes:
        raw = self.call_ref.encode("utf-8")
        return _HEADER.pack(MAGIC, VERSION, 0, len(raw), self.started_ns) + raw


class SpoolRecord(NamedTuple):
    """One spooled packet: its direction and the `MediaPacket` fields."""

    direction: Direction
    arrival_ns: int
    ssrc: int
    seq: int
    timestamp: int
    payload_type: int
    marker: bool
    payload: bytes

    @property
    def packet(self) -> MediaPacket:
        """The record without its direction, as the timeline takes it."""
        return MediaPacket(*self[1:])


def encode_record(
    direction: Direction | int, packet: MediaPacket | tuple[int, int, int, int, int, bool, bytes]
) -> bytes:
    """The bytes of one spool record (length, checksum, body)."""
    arrival_ns, ssrc, seq, timestamp, payload_type, marker, payload = packet
    if len(payload) > MAX_PAYLOAD:
        raise AudioRangeError("payload too large for the spool")
    body = (
        _BODY.pack(
            int(direction), 1 if marker else 0, payload_type, seq, timestamp, ssrc, arrival_ns
        )
        + payload
    )
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When buffered records reach the OS. A process crash loses at most
    ``every_records - 1`` records of an unfinished call; with ``fsync_on_flush`` a power
    loss loses no more either (at the price of one fsync per flush). Finishing a call
    always fsyncs."""

    every_records: int = 50  # ~0.5 s of a two-way 20 ms call
    fsync_on_flush: bool = False


def done_path(path: Path) -> Path:
    """Where a finished spool lives: ``path`` with ``.done`` appended."""
    return path.with_name(path.name + DONE_SUFFIX)


class SpoolWriter:
    """Append-only writer of one call's spool file (created exclusively at ``path``)."""

    def __init__(self, path: Path, header: SpoolHeader, policy: FlushPolicy | None = None):
        self.path = path
        self.policy = policy or FlushPolicy()
        self.records = 0
        self._pending: list[bytes] = []
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._write(bytes(header))

    @classmethod
    def create(
        cls, path: Path, call_ref: str, started_ns: int, policy: FlushPolicy | None = None
    ) -> SpoolWriter:
        """Create the spool file for a call that started (INVITE) at ``started_ns``."""
        return cls(path, SpoolHeader(call_ref, started_ns), policy)

    def append(
        self,
        direction: Direction | int,
        packet: MediaPacket | tuple[int, int, int, int, int, bool, bytes],
    ) -> None:
        """Buffer one packet; flushes when the policy says so."""
        self._pending.append(encode_record(direction, packet))
        self.records += 1
        if len(self._pending) >= self.policy.every_records:
            self.flush()

    def flush(self) -> None:
        """Hand buffered records to the OS (and fsync them if the policy says so)."""
        if self._pending:
            self._write(b"".join(self._pending))
            self._pending.clear()
        if self.policy.fsync_on_flush:
            os.fsync(self._descriptor())

    def finish(self) -> Path:
        """End of call: flush, fsync, close and rename to ``.done``; returns the new path."""
        self.flush()
        fd = self._descriptor()
        os.fsync(fd)
        os.close(fd)
        self._fd = None
        final = done_path(self.path)
        os.replace(self.path, final)
        _fsync_directory(final.parent)
        return final

    def close(self) -> None:
        """Stop without finishing (the file stays as an unfinished spool); idempotent."""
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _descriptor(self) -> int:
        if self._fd is None:
            raise AudioRangeError("spool writer is closed")
        return self._fd

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._descriptor(), view) :]


def _fsync_directory(directory: Path) -> None:
    # the rename is durable only once the directory entry is on disk
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class SpoolContents:
    """What a spool file holds; ``torn_bytes`` > 0 when a crash cut off the last write."""

    header: SpoolHeader
    records: list[SpoolRecord]
    torn_bytes: int = 0

    @property
    def torn(self) -> bool:
        """True when bytes after the last good record were dropped."""
        return self.torn_bytes > 0

    def packets(self, direction: Direction) -> list[MediaPacket]:
        """The packets of one direction in spool (arrival) order."""
        return [_new_tuple(MediaPacket, r[1:]) for r in self.records if r[0] is direction]


def read_spool(data: bytes) -> SpoolContents:
    """Parse a spool file's bytes. A damaged tail (incomplete or failing its checksum at the
    end of the file, or zero-filled) is reported in ``torn_bytes``; damage followed by more
    data raises `AudioParseError`, as does anything that is not a spool."""
    header = SpoolHeader.parse(data)
    data = bytes(data)
    view = memoryview(data)
    records: list[SpoolRecord] = []
    append, unpack, crc32 = records.append, _RECORD.unpack_from, zlib.crc32
    off, size = len(bytes(header)), len(data)
    # the encoder reads every record of every call: one unpack of prefix and body, one
    # checksum and one slice per record, no call per record
    while size - off >= _RECORD.size:
        length, crc, direction, flags, pt, seq, ts, ssrc, arrival = unpack(data, off)
        start, end = off + _PREFIX.size, off + _PREFIX.size + length
        if length < _BODY.size or end > size or crc32(view[start:end]) != crc:
            break
        if direction > 1 or flags & 0xFE or pt > 127:
            raise AudioParseError("spool record malformed")
        payload = data[start + _BODY.size : end]
        fields = (_DIRECTIONS[direction], arrival, ssrc, seq, ts, pt, flags == 1, payload)
        append(_new_tuple(SpoolRecord, fields))
        off = end
    if off == size:
        return SpoolContents(header, records)
    if _is_tail(view, off):
        return SpoolContents(header, records, size - off)
    raise AudioParseError("spool record damaged")


def _is_tail(view: memoryview, off: int) -> bool:
    # a torn write: the damaged record runs to the end of the file, or the rest is zeros
    if len(view) - off < _PREFIX.size:
        return True
    length = _PREFIX.unpack_from(view, off)[0]
    if off + _PREFIX.size + length >= len(view):
        return True
    return not any(view[off:])


def read_spool_file(path: Path) -> SpoolContents:
    """Read and parse a spool file (finished or not)."""
    return read_spool(path.read_bytes())
