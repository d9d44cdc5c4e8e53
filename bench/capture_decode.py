"""Capture benchmark: packets per second per core, reading a capture file and decoding it to
`Datagram`s, against a minimal reader measured in the same run.

Usage: .venv/bin/python bench/capture_decode.py [--repeat N] [FILE...]

Default files: the SIP+RTP captures named by the design target (../shared/testdata):
pcap/sipp-branch-scenario.pcapng (SIP only, pcapng) and
generated/sipp_20calls_g711a_dtmf.pcap (SIP + RTP, classic pcap).

For each file:
  * peer "struct+slice": the plain loop the design target was measured with - read the
    records with struct, slice the UDP payload of Ethernet/IPv4 frames, build nothing;
  * callscope reader only (`open_capture`);
  * callscope `read_file` (reader + decode + duplicate check + Datagram), and without
    duplicate suppression;
One process, one thread, CPU time (time.process_time), best of N runs taken in turns: the
figures are per core.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from callscope.capture.pcapfile import open_capture  # noqa: E402
from callscope.capture.source import CaptureConfig, CaptureCounters, read_file  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
DEFAULT = [
    TESTDATA / "pcap/sipp-branch-scenario.pcapng",
    TESTDATA / "generated/sipp_20calls_g711a_dtmf.pcap",
]


def struct_slice(path: Path) -> int:
    """The peer: records by struct, UDP payload by slicing; pcap and pcapng (EPB only)."""
    data = path.read_bytes()
    count = 0
    if data[:4] == b"\n\r\r\n":
        pos, unpack = 0, struct.Struct("<II").unpack_from
        while pos < len(data):
            btype, size = unpack(data, pos)
            if btype == 6:
                cap = struct.unpack_from("<I", data, pos + 20)[0]
                frame = data[pos + 28 : pos + 28 + cap]
                if frame[12:14] == b"\x08\x00" and frame[23] == 17:
                    ihl = (frame[14] & 15) * 4
                    count += len(frame[14 + ihl + 8 :]) >= 0
            pos += size
        return count
    pos, unpack = 24, struct.Struct("<IIII").unpack_from
    while pos < len(data):
        _sec, _usec, cap, _orig = unpack(data, pos)
        frame = data[pos + 16 : pos + 16 + cap]
        if frame[12:14] == b"\x08\x00" and frame[23] == 17:
            ihl = (frame[14] & 15) * 4
            count += len(frame[14 + ihl + 8 :]) >= 0
        pos += 16 + cap
    return count


def reader_only(path: Path) -> int:
    return sum(1 for _record in open_capture(path))


def decode(path: Path, config: CaptureConfig | None = None) -> int:
    counters = CaptureCounters()
    for _datagram in read_file(path, counters=counters, config=config):
        pass
    return counters.packets


def interleaved(variants: dict[str, Callable[[], int]], repeat: int) -> dict[str, float]:
    """Best CPU time of each variant, the variants taking turns (load bursts from other
    processes then hit every variant alike)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT)
    args = parser.parse_args()
    for path in args.files:
        packets = reader_only(path)
        print(f"{path.name}: {packets} packets")
        results = interleaved(
            {
                "peer struct+slice (no objects)": lambda p=path: struct_slice(p),
                "callscope reader only": lambda p=path: reader_only(p),
                "callscope read+decode to Datagram": lambda p=path: decode(p),
                "  ... without duplicate check": lambda p=path: decode(
                    p, CaptureConfig(dedup_window_ns=0)
                ),
            },
            args.repeat,
        )
        peer = results["peer struct+slice (no objects)"]
        for name, seconds in results.items():
            print(
                f"  {name:38s} {packets / seconds:>10,.0f} pkt/s"
                f"  {seconds / packets * 1e6:6.2f} us/pkt  x{peer / seconds:5.2f} of peer"
            )


if __name__ == "__main__":
    main()
