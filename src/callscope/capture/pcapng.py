"""pcapng sections and blocks (draft-ietf-opsawg-pcapng): the block decoder behind
`CaptureFile` for pcapng files.

A file is a sequence of sections; each starts with a Section Header Block that fixes the
byte order of the blocks after it, and declares its own interfaces (Interface Description
Blocks) with their link type, snap length, timestamp resolution and offset. Packets come in
Enhanced Packet Blocks, Simple Packet Blocks or the obsolete Packet Block. Every other
block type (name resolution, statistics, decryption secrets, custom) is skipped.
"""

from __future__ import annotations

import struct

from callscope.capture.records import MAX_BLOCK, Record, parse_error

# draft-ietf-opsawg-pcapng 11.1 block type codes
SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block (appendix A)
SPB = 0x00000003
EPB = 0x00000006

# 4.2 interface options
_IF_TSRESOL = 9
_IF_TSOFFSET = 14
_OPT_END = 0

_SHB_BYTES = b"\n\r\r\n"  # palindromic: the same in both byte orders
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_NS = 1_000_000_000

# interface: (linktype, timestamp multiplier, divisor, offset ns, snaplen)
Interface = tuple[int, int, int, int, int]


class PcapngSection:
    """One section: its byte order and the interfaces declared so far."""

    def __init__(self, order: str) -> None:
        self.interfaces: list[Interface] = []
        #: the section's byte order is big-endian (``order`` ">")
        self.big_endian = order == ">"
        #: ``u32(buf, pos) -> (value,)`` in this section's byte order
        self.u32 = struct.Struct(order + "I").unpack_from
        self._u16x2 = struct.Struct(order + "HH").unpack_from
        #: Enhanced Packet Block fields after the block header (4.3)
        self.epb = struct.Struct(order + "IIIII").unpack_from
        #: block type and length, then the Enhanced Packet Block fields, in one read
        self.header_epb = struct.Struct(order + "IIIIIII").unpack_from
        self._pb = struct.Struct(order + "HHIIII").unpack_from
        self._idb = struct.Struct(order + "HHI").unpack_from
        self._q = struct.Struct(order + "q").unpack_from

    @classmethod
    def from_header(cls, buf: bytes, pos: int) -> PcapngSection:
        """Start a section at the Section Header Block at ``buf[pos]`` (4.1)."""
        order = _BOM.get(buf[pos + 8 : pos + 12])
        if order is None:
            raise parse_error("byte_order")
        return cls(order)

    def block_length(self, buf: bytes, pos: int) -> int:
        """Total length of the block at ``buf[pos]`` (header and trailer included)."""
        (blen,) = self.u32(buf, pos + 4)
        if blen < 12 or blen & 3 or blen > MAX_BLOCK:
            raise parse_error("block_length")
        return int(blen)

    def enhanced(self, buf: bytes, pos: int, blen: int) -> Record | None:
        """The record of a complete Enhanced Packet Block (4.3) at ``buf[pos]``, or None if
        the block is not well-formed (`block` then raises the precise error)."""
        # interface id, timestamp (upper, lower), captured length, original length
        iface, high, low, cap, orig = self.epb(buf, pos + 8)
        if cap > blen - 32 or iface >= len(self.interfaces):
            return None
        if self.u32(buf, pos + blen - 4)[0] != blen:
            return None
        linktype, mult, div, offset, _snap = self.interfaces[iface]
        start = pos + 28
        at = ((high << 32 | low) * mult) // div + offset
        return (at, linktype, buf[start : start + cap], orig)

    def block(self, buf: bytes, pos: int, blen: int, last_at: int) -> Record | None:
        """Decode the complete block at ``buf[pos:pos+blen]``; a record for packet blocks.

        ``last_at`` is the time of the previous record (a Simple Packet Block has none).
        """
        u32 = self.u32
        if u32(buf, pos + blen - 4)[0] != blen:
            raise parse_error("block_trailer")
        (btype,) = u32(buf, pos)
        if btype == EPB:
            if blen < 32:
                raise parse_error("block_length")
            record = self.enhanced(buf, pos, blen)
            if record is None:
                _iface, _high, _low, cap, _orig = self.epb(buf, pos + 8)
                raise parse_error("block_data" if cap > blen - 32 else "interface")
            return record
        if btype == SPB:
            return self._simple(buf, pos, blen, last_at)
        if btype == IDB:
            self._interface(buf, pos, blen)
        elif btype == PB:
            return self._packet(buf, pos, blen)
        elif btype == SHB:
            major, _minor = self._u16x2(buf, pos + 12)
            if major != 1:
                raise parse_error("version")
        return None

    def _simple(self, buf: bytes, pos: int, blen: int, last_at: int) -> Record:
        # 4.4: no interface id (always 0) and no timestamp; captured length is the
        # smallest of the original length, the interface snap length and the block size.
        # The record gets the time of the packet before it (0 if it is the first).
        if blen < 16:
            raise parse_error("block_length")
        if not self.interfaces:
            raise parse_error("interface")
        linktype, _mult, _div, _offset, snap = self.interfaces[0]
        (orig,) = self.u32(buf, pos + 8)
        cap = min(orig, blen - 16, snap or orig)
        return (last_at, linktype, buf[pos + 12 : pos + 12 + cap], orig)

    def _packet(self, buf: bytes, pos: int, blen: int) -> Record:
        # appendix A (obsolete Packet Block): 16-bit interface id and drops count
        if blen < 32:
            raise parse_error("block_length")
        iface, _drops, high, low, cap, orig = self._pb(buf, pos + 8)
        if cap > blen - 32:
            raise parse_error("block_data")
        if iface >= len(self.interfaces):
            raise parse_error("interface")
        linktype, mult, div, offset, _snap = self.interfaces[iface]
        at = ((high << 32 | low) * mult) // div + offset
        return (at, linktype, buf[pos + 28 : pos + 28 + cap], orig)

    def _interface(self, buf: bytes, pos: int, blen: int) -> None:
        # 4.2: link type, reserved, snap length, then options
        if blen < 20:
            raise parse_error("block_length")
        linktype, _reserved, snap = self._idb(buf, pos + 8)
        resol = 6
        offset_s = 0
        opt = pos + 16
        end = pos + blen - 4
        while opt + 4 <= end:
            code, size = self._u16x2(buf, opt)
            if code == _OPT_END:
                break
            value = opt + 4
            if value + size > end:
                raise parse_error("block_data")
            if code == _IF_TSRESOL and size >= 1:
                resol = buf[value]
            elif code == _IF_TSOFFSET and size >= 8:
                (offset_s,) = self._q(buf, value)
            opt = value + ((size + 3) & ~3)
        mult, div = _resolution(resol)
        self.interfaces.append((linktype, mult, div, offset_s * _NS, snap))


def _resolution(tsresol: int) -> tuple[int, int]:
    """4.2 if_tsresol: MSB clear -> 10^-n s units, set -> 2^-n; as ns = units*mult//div."""
    units = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10 ** (tsresol & 0x7F)
    if _NS % units == 0:
        return _NS // units, 1
    return _NS, units


def section_at(buf: bytes, pos: int, section: PcapngSection | None) -> PcapngSection:
    """The section the block at ``buf[pos]`` belongs to: a new one at a Section Header
    Block, else ``section`` (which must exist: a file starts with a section header)."""
    if buf[pos : pos + 4] == _SHB_BYTES:
        return PcapngSection.from_header(buf, pos)
    if section is None:
        raise parse_error("no_section")
    return section
