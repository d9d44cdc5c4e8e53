"""Call tracker benchmark: datagrams per second per core, read_file + CallTracker.

Usage: .venv/bin/python bench/assembly_tracker.py [--repeat N] [FILE...]

Default files (../shared/testdata): pcap/sipp-branch-scenario.pcapng (8989 SIP messages,
1334 calls: the SIP path) and generated/sipp_20calls_g711a_dtmf.pcap (20 calls, 98% RTP:
the media path), plus a synthetic run of 200,000 RTP packets of one paired call that
isolates the per-packet RTP path.

For each file:
  * `read_file` alone (the capture layer, for reference);
  * `read_file` + `CallTracker.receive` for every datagram + `finish()`;
  * the same with the tracker's media routes given to `read_file` (as `callscope import`
    does: RTP of known flows goes to its stream without a `Datagram`);
  * `CallTracker` alone on datagrams read beforehand;
and for the synthetic RTP: `parse_rtp_header` + `StreamStats.receive` alone (the protocol
layer's share) against the whole `CallTracker.receive`.
One process, one thread, CPU time (time.process_time), best of N: the figures are per core.
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

from callscope.assembly.tracker import CallTracker  # noqa: E402
from callscope.capture.source import CaptureCounters, read_file  # noqa: E402
from callscope.core import Datagram, Endpoint, Timestamp, Transport  # noqa: E402
from callscope.protocol.rtp import parse_rtp_header  # noqa: E402
from callscope.protocol.rtp_stats import StreamStats  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
DEFAULT = [
    TESTDATA / "pcap" / "sipp-branch-scenario.pcapng",
    TESTDATA / "generated" / "sipp_20calls_g711a_dtmf.pcap",
]


def best(repeat: int, run: Callable[[], int]) -> tuple[int, float]:
    """(items, seconds) of the fastest of ``repeat`` runs, in CPU time."""
    fastest, items = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        items = run()
        fastest = min(fastest, time.process_time() - start)
    return items, fastest


def track(datagrams: object) -> int:
    tracker = CallTracker()
    count = 0
    for dgram in datagrams:  # type: ignore[attr-defined]
        count += 1
        tracker.receive(dgram)
    tracker.finish()
    return count


def track_routed(path: Path) -> int:
    """As `track`, with the tracker's media routes given to the pipeline (as the import
    does): RTP of known flows goes to its stream without a Datagram (counted as one)."""
    tracker = CallTracker()
    counters = CaptureCounters()
    for dgram in read_file(path, counters=counters, media_routes=tracker.media_routes):
        tracker.receive(dgram)
    tracker.finish()
    return counters.datagrams


def bench_file(path: Path, repeat: int) -> None:
    loaded = list(read_file(path))
    rows = [
        ("read_file", best(repeat, lambda: sum(1 for _ in read_file(path)))),
        ("read_file + tracker", best(repeat, lambda: track(read_file(path)))),
        ("read_file + tracker, routes", best(repeat, lambda: track_routed(path))),
        ("tracker alone", best(repeat, lambda: track(loaded))),
    ]
    print(f"{path.name}: {len(loaded)} datagrams")
    for label, (items, seconds) in rows:
        print(f"  {label:28s} {items / seconds:>10,.0f} datagrams/s")


def synthetic_rtp(count: int) -> list[Datagram]:
    """One call (INVITE/200 with SDP) and ``count`` RTP packets, both directions."""
    a, b = Endpoint("10.0.0.1", 5060), Endpoint("10.0.0.2", 5060)
    ma, mb = Endpoint("10.0.0.1", 4000), Endpoint("10.0.0.2", 6000)

    def sip(first: str, media: Endpoint, tag: str) -> bytes:
        body = (
            f"v=0\r\no=- 1 1 IN IP4 {media.ip}\r\ns=-\r\nc=IN IP4 {media.ip}\r\nt=0 0\r\n"
            f"m=audio {media.port} RTP/AVP 0\r\n"
        )
        return (
            f"{first}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=f\r\n"
            f"To: <sip:b@x>{tag}\r\nCall-ID: bench\r\nCSeq: 1 INVITE\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    out = [
        Datagram(Timestamp(0), a, b, Transport.UDP, sip("INVITE sip:b@x SIP/2.0", ma, "")),
        Datagram(Timestamp(1000), b, a, Transport.UDP, sip("SIP/2.0 200 OK", mb, ";tag=t")),
    ]
    for i in range(count):
        seq, forward = i // 2, i % 2 == 0
        header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, 160 * seq, 0xA + forward)
        src, dst = (ma, mb) if forward else (mb, ma)
        at = Timestamp(10_000_000 + i * 10_000_000)
        out.append(Datagram(at, src, dst, Transport.UDP, header + b"\xff" * 160))
    return out


def bench_rtp(repeat: int, count: int = 200_000) -> None:
    packets = synthetic_rtp(count)
    rtp = packets[2:]

    def protocol_share() -> int:
        stats = (StreamStats(), StreamStats())
        for i, dgram in enumerate(rtp):
            header = parse_rtp_header(dgram.payload)
            stats[i & 1].receive(dgram.at, header[1], header[2], 8000, marker=header[4])
        return len(rtp)

    rows = [
        ("parse + StreamStats", best(repeat, protocol_share)),
        ("CallTracker.receive", best(repeat, lambda: track(packets))),
    ]
    print(f"synthetic RTP, one paired call: {count} packets")
    for label, (items, seconds) in rows:
        print(
            f"  {label:22s} {items / seconds:>10,.0f} packets/s"
            f"  {seconds / items * 1e9:,.0f} ns each"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    for path in args.files or DEFAULT:
        bench_file(path, args.repeat)
    bench_rtp(args.repeat)


if __name__ == "__main__":
    main()
