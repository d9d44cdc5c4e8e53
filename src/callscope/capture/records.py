"""What every capture file reader yields, its limits and its fixed error messages.

A record is a plain tuple ``(at_ns, linktype, data, orig_len)``:

- ``at_ns``: capture time, int nanoseconds since the Unix epoch (UTC);
- ``linktype``: the LINKTYPE_ number of the link header in ``data`` (tcpdump.org/linktypes);
- ``data``: the captured bytes, at most `MAX_RECORD` long;
- ``orig_len``: the length of the packet on the wire (larger than ``len(data)`` if snapped).

Tuples, not objects: the readers sit on the packet hot path (one tuple per packet).
"""

from __future__ import annotations

from callscope.capture.errors import CaptureParseError

Record = tuple[int, int, bytes, int]

#: bytes read from a file at a time
CHUNK = 1 << 20
#: largest record accepted (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD)
MAX_RECORD = 262_144
#: largest pcapng block accepted (a packet block, or an unknown block that is skipped)
MAX_BLOCK = 16 << 20

#: fixed messages of the errors readers raise, by a short key
MESSAGES = {
    "empty": "capture file is empty",
    "unknown": "capture file format not recognised",
    "truncated": "capture file ends inside a record",
    "record_length": "record length exceeds limit",
    "block_length": "pcapng block length invalid",
    "block_trailer": "pcapng block trailer does not match its length",
    "byte_order": "pcapng byte-order magic invalid",
    "version": "capture file version not supported",
    "interface": "pcapng packet refers to an unknown interface",
    "block_data": "pcapng packet data exceeds its block",
    "no_section": "pcapng block outside a section",
    "netmon_table": "netmon frame table outside the file",
    "netmon_frame": "netmon frame outside the file",
    "compressed": "compressed capture file is damaged",
}


def parse_error(key: str) -> CaptureParseError:
    """A `CaptureParseError` with the fixed message ``MESSAGES[key]``."""
    return CaptureParseError(MESSAGES[key])
