"""Microsoft Network Monitor 2.x capture files (read-only), as Wireshark's ``netmon.c`` reads
them: a 128-byte header with the capture start time, frames anywhere in the file, and a
frame table (one 32-bit offset per frame) usually at the end. Some public SIP test captures
(the PROTOS suite) exist only in this format.

The frame table is read in pieces, so memory stays constant; the file must be seekable. A
file cut before its frame table yields nothing and raises `CaptureTruncatedError`.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from callscope.capture.errors import CaptureParseError, CaptureTruncatedError
from callscope.capture.records import MAX_RECORD, MESSAGES, Record

# after the "GMBU" magic: minor, major, network, SYSTEMTIME (8 x u16), frame table offset
# and length in bytes
_HEADER = struct.Struct("<BBH8HII")
_FRAME = struct.Struct("<QII")  # 2.x: microseconds since start, original and captured length
_TABLE_PIECE = 4096  # frame table entries read at a time

#: NetMon network (media) type -> LINKTYPE_; unmapped types become -1 (not decoded)
NETMON_LINKTYPES = {1: 1, 2: 6, 3: 10}


def netmon_records(
    stream: BinaryIO, magic: bytes, advance: Callable[[int, int], None]
) -> Iterator[Record]:
    """Yield the records of a NetMon 2.x file whose 4 magic bytes were already read.

    ``advance(records, offset)`` is called after each record (progress for the caller).
    """
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise CaptureTruncatedError(MESSAGES["truncated"])
    minor, major, network, *when, table_at, table_len = _HEADER.unpack(header)
    if major != 2:
        raise CaptureParseError(MESSAGES["version"])
    size = stream.seek(0, 2)
    if table_at + table_len > size or table_len % 4:
        raise CaptureTruncatedError(MESSAGES["netmon_table"])
    start_ns = _start_ns(when)
    # 2.1 and later: a trailer after each frame's data starts with its own network type
    trailer = minor >= 1 and network == 0
    linktype = NETMON_LINKTYPES.get(network, -1)
    count = 0
    for done in range(0, table_len, 4 * _TABLE_PIECE):
        stream.seek(table_at + done)
        piece = stream.read(min(4 * _TABLE_PIECE, table_len - done))
        for (frame_at,) in struct.iter_unpack("<I", piece):
            record, end = _frame(stream, frame_at, linktype, start_ns, trailer=trailer)
            count += 1
            advance(count, end)
            yield record


def _frame(
    stream: BinaryIO, at: int, linktype: int, start: int, *, trailer: bool
) -> tuple[Record, int]:
    stream.seek(at)
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise CaptureParseError(MESSAGES["netmon_frame"])
    delta_us, orig, incl = _FRAME.unpack(head)
    if incl > MAX_RECORD:
        raise CaptureParseError(MESSAGES["record_length"])
    data = stream.read(incl)
    if len(data) < incl:
        raise CaptureParseError(MESSAGES["netmon_frame"])
    if trailer:
        network = stream.read(2)
        if len(network) == 2:
            linktype = NETMON_LINKTYPES.get(int.from_bytes(network, "little"), -1)
    return (start + delta_us * 1000, linktype, data, orig), at + _FRAME.size + incl


def _start_ns(when: list[int]) -> int:
    """SYSTEMTIME (year, month, weekday, day, hour, minute, second, ms) -> ns.

    NetMon writes the capturing host's local time; like Wireshark on a UTC host, it is
    taken as UTC here.
    """
    year, month, _weekday, day, hour, minute, second, millis = when
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        seconds = 0
    return seconds * 1_000_000_000 + millis * 1_000_000
