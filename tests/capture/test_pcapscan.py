"""The compiled pcap scanner (`callscope.capture._pcapscan`) against the Python path.

Each variant of a real capture (byte order, time resolution, link header, 802.1Q tag,
mirror duplicates, records the scanner must leave to Python) is read with the tracker's
media routes twice: with the scanner (as `callscope import` reads a pcap file) and with
the scanner turned off. Call records, anomalies, sink writes and capture counters must be
equal, and the scanner must have taken most records.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.capture import source
from callscope.capture.pcapfile import open_capture
from tests.assembly._assemble import Run, run_capture
from tests.conftest import TESTDATA

pytestmark = pytest.mark.skipif(source._pcapscan is None, reason="the scanner is not built")

CAPTURE = TESTDATA / "generated/sipp_20calls_g711a_dtmf.pcap"
Record = tuple[int, int, bytes, int]


def _records(path: Path) -> list[Record]:
    return list(open_capture(path))


def _write(
    path: Path,
    records: list[Record],
    *,
    linktype: int = 1,
    big_endian: bool = False,
    nano: bool = False,
) -> Path:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262_144, linktype)]
    for at, _linktype, frame, orig in records:
        sec, rest = divmod(at, 1_000_000_000)
        frac = rest if nano else rest // 1000
        out.append(struct.pack(order + "IIII", sec, frac, len(frame), orig) + frame)
    path.write_bytes(b"".join(out))
    return path


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(order: str, kind: int, body: bytes) -> bytes:
    length = 12 + len(_pad(body))
    return struct.pack(order + "II", kind, length) + _pad(body) + struct.pack(order + "I", length)


def _write_pcapng(path: Path, records: list[Record], *, big_endian: bool, nano: bool) -> Path:
    # section header, two interfaces (the packets alternate between them; the second in ns
    # when ``nano``: if_tsresol 9), then an Enhanced Packet Block per record
    order = ">" if big_endian else "<"
    out = [_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    resolution = struct.pack(order + "HH", 9, 1) + b"\x09\0\0\0" + b"\0" * 4
    out.append(_block(order, 1, struct.pack(order + "HHI", 1, 0, 262_144)))
    out.append(_block(order, 1, struct.pack(order + "HHI", 1, 0, 262_144) + resolution))
    for n, (at, _linktype, frame, orig) in enumerate(records):
        iface = n % 2 if nano else 0
        ticks = at if iface else at // 1000
        head = struct.pack(
            order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), orig
        )
        out.append(_block(order, 6, head + frame))
    path.write_bytes(b"".join(out))
    return path


def _vlan(frame: bytes) -> bytes:
    return frame[:12] + b"\x81\x00\x00\x64" + frame[12:]


def _cooked(frame: bytes) -> bytes:
    # Linux cooked capture (LINKTYPE 113): packet type, ARPHRD, address length, address,
    # protocol, in place of the Ethernet header
    return struct.pack("!HHH8sH", 0, 1, 6, frame[6:12], 0x0800) + frame[14:]


def _duplicated(records: list[Record]) -> Iterator[Record]:
    # a mirror port that sees every third packet twice, 2 us later, behind another tag
    for n, (at, linktype, frame, orig) in enumerate(records):
        yield at, linktype, frame, orig
        if n % 3 == 0:
            yield at + 2_000, linktype, _vlan(frame), orig + 4


class _Counting:
    """`source._pcapscan` with a scanner that counts the records it takes."""

    def __init__(self) -> None:
        self.taken = 0
        counting = self

        class PcapScanner(source._pcapscan.PcapScanner):  # type: ignore[name-defined,misc]
            def scan(self, buf: bytes, pos: int, end: int, *layout: object) -> int:
                pos = super().scan(buf, pos, end, *layout)
                counting.taken += self.taken
                return pos

            def scan_pcapng(self, buf: bytes, pos: int, end: int, *layout: object) -> int:
                pos = super().scan_pcapng(buf, pos, end, *layout)
                counting.taken += self.taken
                return pos

        self.PcapScanner = PcapScanner


def _run(
    path: Path, *, scanner: bool, monkeypatch: pytest.MonkeyPatch, taken: list[int] | None = None
) -> Run:
    counting = _Counting()
    with monkeypatch.context() as patch:
        patch.setattr(source, "_pcapscan", counting if scanner else None)
        run = run_capture(path, routed=True)
    if taken is not None:
        taken.append(counting.taken)
    return run


Variant = Callable[[list[Record], Path], Path]
VARIANTS: dict[str, Variant] = {
    "as is": lambda records, path: _write(path, records),
    "big-endian, ns": lambda records, path: _write(path, records, big_endian=True, nano=True),
    "802.1Q": lambda records, path: _write(
        path, [(at, lt, _vlan(f), o + 4) for at, lt, f, o in records]
    ),
    "cooked": lambda records, path: _write(
        path, [(at, 113, _cooked(f), o + 2) for at, lt, f, o in records], linktype=113
    ),
    "mirror duplicates": lambda records, path: _write(path, list(_duplicated(records))),
    "pcapng": lambda records, path: _write_pcapng(path, records, big_endian=False, nano=False),
    "pcapng big-endian, two interfaces, ns": lambda records, path: _write_pcapng(
        path, records, big_endian=True, nano=True
    ),
    "IP options and fragments left to Python": lambda records, path: _write(
        path,
        [
            (at, lt, f[:14] + b"\x46" + f[15:] if n % 7 == 0 else f, o)  # IHL 6: options
            for n, (at, lt, f, o) in enumerate(records)
        ],
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_scanner_gives_what_the_python_path_gives(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = VARIANTS[variant](_records(CAPTURE), tmp_path / "variant.pcap")
    taken: list[int] = []
    scanned = _run(path, scanner=True, monkeypatch=monkeypatch, taken=taken)
    plain = _run(path, scanner=False, monkeypatch=monkeypatch)
    assert scanned == plain
    counters = scanned.counters
    assert scanned.events
    if variant == "mirror duplicates":
        assert counters.duplicates > 1000
    # the scanner took most records (the rest: SIP, the first packets of each flow, and
    # the records it leaves to Python)
    share = 0.6 if variant.startswith("IP options") else 0.8
    assert taken[0] > share * counters.packets


def test_truncated_file_keeps_every_complete_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "cut.pcap", _records(CAPTURE))
    path.write_bytes(path.read_bytes()[:-37])
    scanned = _run(path, scanner=True, monkeypatch=monkeypatch)
    plain = _run(path, scanner=False, monkeypatch=monkeypatch)
    assert scanned == plain
    assert scanned.counters.truncated


_HEAD = _records(CAPTURE)[:80]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(24, 10**9), st.integers(0, 255)), min_size=1, max_size=12),
    st.integers(0, 400),
    st.sampled_from(["pcap", "pcapng", "pcapng big-endian"]),
)
def test_fuzz_damaged_files_read_alike(flips: list[tuple[int, int]], cut: int, kind: str) -> None:
    # random octets changed anywhere after the file header (record headers or blocks,
    # lengths, interfaces, link, IP and UDP headers, RTP), and the file cut: both paths
    # read it alike, no crash
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz"
        if kind == "pcap":
            _write(path, _HEAD)
        else:
            _write_pcapng(path, _HEAD, big_endian=kind.endswith("big-endian"), nano=True)
        data = bytearray(path.read_bytes())
        for position, value in flips:
            data[24 + (position - 24) % (len(data) - 24)] = value
        path.write_bytes(bytes(data[: len(data) - cut]))
        with pytest.MonkeyPatch.context() as monkeypatch:
            scanned = _run(path, scanner=True, monkeypatch=monkeypatch)
            plain = _run(path, scanner=False, monkeypatch=monkeypatch)
    assert scanned == plain


def test_compiled_sweep_drops_what_the_python_loop_drops() -> None:
    from callscope.capture import dedup

    assert dedup._drop_stale is not None
    table = dict(enumerate([5, 1, 9, 2**70, 3, -(2**70)]))
    python = dict(table)
    dedup._drop_stale(table, 6)
    for digest, at in list(python.items()):  # the Python loop of DuplicateFilter.sweep
        if at >= 6:
            break
        del python[digest]
    assert table == python == {2: 9, 3: 2**70, 4: 3, 5: -(2**70)}


@settings(max_examples=300)
@given(st.integers(0, 0xFFFF), st.binary(min_size=0, max_size=36), st.binary(max_size=400))
def test_duplicate_key_hash_is_the_tuples_hash(ident: int, flow: bytes, payload: bytes) -> None:
    # the scanner hashes the key without building it; the Python path hashes the tuple
    assert source._pcapscan.key_hash(ident, flow, payload) == hash((ident, flow, payload))


@given(st.lists(st.integers(-50, 50), max_size=40), st.integers(-60, 60))
def test_compiled_sweep_keeps_order_and_stragglers(times: list[int], limit: int) -> None:
    from callscope.capture import dedup

    table = {n * 7919: at for n, at in enumerate(times)}
    python = dict(table)
    dedup._drop_stale(table, limit)
    for digest, at in list(python.items()):
        if at >= limit:
            break
        del python[digest]
    assert list(table.items()) == list(python.items())
