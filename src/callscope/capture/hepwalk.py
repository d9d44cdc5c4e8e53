"""The HEP collector's hot path: the fields of a plain HEPv3 packet, in a few struct calls.

`hep_fields` returns what the collector needs from a packet - proto type, IP protocol,
source and destination (address octets followed by the 2-octet port), time in ns, capture
id, auth key, VLAN, payload - or None when `HepPacket.parse` must decide: HEPv1/v2, a
compressed payload, a chunk whose size is not the spec's for its type, lengths that do not
add up, or addresses of both families. The reference parser then decodes the packet or
names its error; tests check that both agree on every packet the fast path accepts.

Agents send the same chunks in the same order and sizes every time (family, protocol,
addresses, ports, time, type, capture id, auth key, then the payload): only the payload's
length changes. A packet walked chunk by chunk teaches its `Layout` (at most `MAX_LAYOUTS`,
the oldest forgotten first); the next packet of that agent is read with one
``unpack_from`` whose chunk headers are compared as a whole, and its fields are taken by
position. Nothing here raises for any input.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["MAX_LAYOUTS", "Fields", "Layout", "hep_fields"]

#: (proto type, ip proto, src, dst, at, capture id, auth key, vlan, payload); src and dst
#: are the address octets followed by the 2-octet port
Fields = tuple[
    int | None,
    int | None,
    bytes | None,
    bytes | None,
    int | None,
    int | None,
    bytes | None,
    int | None,
    bytes,
]
#: agents whose layout is remembered (a few agents send to one collector)
MAX_LAYOUTS = 8

_CHUNK = struct.Struct("!HHH").unpack_from
# vendor 0 chunk type -> the only value size `HepPacket.parse` accepts (capture id: 4 here;
# 2, which the reference also accepts, goes the slow way); 16 (compressed) always does
_FIXED = {1: 1, 2: 1, 3: 4, 4: 4, 5: 16, 6: 16, 7: 2, 8: 2, 9: 4, 10: 4, 11: 1, 12: 4, 13: 2, 18: 2}
_SLOW = -1
_COMPRESSED = 16
_PAYLOAD = 15
_PAYLOAD_HEADER = b"\x00\x00\x00\x0f"  # vendor 0, type 15
# struct codes of the values read as integers by a layout; addresses, ports, text: octets
_INT_CODES = {1: "B", 2: "B", 9: "I", 10: "I", 11: "B", 12: "I", 13: "H", 18: "H"}
# field -> the chunk types that give it (IPv4 or IPv6 for addresses)
_FIELD_TYPES = ((11,), (2,), (3, 5), (4, 6), (7,), (8,), (9,), (10,), (12,), (14,), (18,))


def hep_fields(data: bytes) -> Fields | None:
    """The collector's fields of a HEPv3 packet, or None: see the module docstring."""
    total = len(data)
    if total < 6 or (data[4] << 8 | data[5]) != total:
        return None
    for layout in _LAYOUTS.values():
        end = layout.size
        if end + 6 <= total:
            read = layout.unpack(data, 6)
            if (
                read[0::2] == layout.headers
                and data[end : end + 4] == _PAYLOAD_HEADER
                and (data[end + 4] << 8 | data[end + 5]) == total - end
            ):
                return layout.fields(read, data[end + 6 :])
    return _walk(data, total)


class Layout:
    """The chunks an agent sends before its payload (see the module docstring).

    ``headers`` are the 6-octet chunk headers as sent; ``size`` is where the payload chunk
    starts; `fields` takes the values from an ``unpack_from`` result by position.
    """

    __slots__ = ("headers", "index", "size", "unpack")

    def __init__(self, headers: tuple[bytes, ...]) -> None:
        self.headers = headers
        codes, types = [], []
        for header in headers:
            vendor, kind, length = _CHUNK(header)
            known = vendor == 0
            types.append(kind if known else -1)  # another vendor's chunk: no field
            code = _INT_CODES.get(kind) if known else None
            codes.append("6s" + (code or f"{length - 6}s"))
        compiled = struct.Struct("!" + "".join(codes))
        self.unpack = compiled.unpack_from
        self.size = 6 + compiled.size
        # value position in the unpacked tuple of each field's chunk, -1 when absent
        position = {kind: 2 * n + 1 for n, kind in enumerate(types)}
        self.index = tuple(
            next((position[t] for t in field if t in position), -1) for field in _FIELD_TYPES
        )

    def fields(self, read: tuple[Any, ...], payload: bytes) -> Fields:
        """The fields of a packet laid out like this (``read``: its unpacked chunks)."""
        (
            i_type, i_proto, i_src, i_dst, i_sport, i_dport, i_sec, i_usec, i_id, i_key, i_vlan,
        ) = self.index  # fmt: skip
        src = dst = None
        if i_src >= 0 and i_dst >= 0:
            src = read[i_src] + (read[i_sport] if i_sport >= 0 else b"\0\0")
            dst = read[i_dst] + (read[i_dport] if i_dport >= 0 else b"\0\0")
        at = None
        if i_sec >= 0:
            at = read[i_sec] * 1_000_000_000 + (read[i_usec] * 1000 if i_usec >= 0 else 0)
        return (
            read[i_type] if i_type >= 0 else None,
            read[i_proto] if i_proto >= 0 else None,
            src,
            dst,
            at,
            read[i_id] if i_id >= 0 else None,
            _key_bytes(read[i_key]) if i_key >= 0 else None,
            read[i_vlan] if i_vlan >= 0 else None,
            payload,
        )


#: layouts learned from the packets seen, the newest last
_LAYOUTS: dict[tuple[bytes, ...], Layout] = {}


def _walk(data: bytes, total: int) -> Fields | None:
    """Chunk by chunk (and learn the layout of a packet that ends with its payload)."""
    values: dict[int, bytes] = {}
    headers: list[bytes] = []
    learnable = True
    offset = 6
    while offset < total:
        if offset + 6 > total:
            return None
        vendor, kind, length = _CHUNK(data, offset)
        end = offset + length
        if length < 6 or end > total:
            return None
        if vendor == 0:
            size = _FIXED.get(kind, _SLOW if kind == _COMPRESSED else 0)
            if size and size != length - 6:
                return None
            learnable = learnable and kind not in values
            values[kind] = data[offset + 6 : end]
        headers.append(data[offset : offset + 6])
        offset = end
    fields = _fields_of(values)
    if fields is not None and learnable and headers and headers[-1][:4] == _PAYLOAD_HEADER:
        _learn(tuple(headers[:-1]))
    return fields


def _fields_of(values: dict[int, bytes]) -> Fields | None:
    get = values.get
    src = dst = None
    v4 = 3 in values or 4 in values
    v6 = 5 in values or 6 in values
    if v4 and v6:
        return None  # both families: the order of the chunks decides, as the reference does
    if v4 or v6:
        src_ip, dst_ip = (get(3), get(4)) if v4 else (get(5), get(6))
        if src_ip is None or dst_ip is None:
            return None  # only one side: rare, let the reference decide
        src = src_ip + get(7, b"\0\0")
        dst = dst_ip + get(8, b"\0\0")
    at = None
    sec = get(9)
    if sec is not None:
        usec = get(10)
        micros = int.from_bytes(usec, "big") if usec is not None else 0
        at = int.from_bytes(sec, "big") * 1_000_000_000 + micros * 1000
    proto_type, ip_proto, capture_id = get(11), get(2), get(12)
    key, vlan = get(14), get(18)
    return (
        None if proto_type is None else proto_type[0],
        None if ip_proto is None else ip_proto[0],
        src,
        dst,
        at,
        None if capture_id is None else int.from_bytes(capture_id, "big"),
        None if key is None else _key_bytes(key),
        None if vlan is None else int.from_bytes(vlan, "big"),
        get(_PAYLOAD, b""),
    )


def _learn(headers: tuple[bytes, ...]) -> None:
    if headers in _LAYOUTS:
        return
    if len(_LAYOUTS) >= MAX_LAYOUTS:
        del _LAYOUTS[next(iter(_LAYOUTS))]  # the oldest agent layout makes room
    _LAYOUTS[headers] = Layout(headers)


def _key_bytes(raw: bytes) -> bytes:
    # as `HepPacket` reads text chunks: without the C string's NUL, invalid UTF-8 replaced
    if raw.isascii() and not raw.endswith(b"\0"):
        return raw
    return raw.rstrip(b"\0").decode("utf-8", "replace").encode()
