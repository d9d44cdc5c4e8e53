"""The call tracker's cost per SIP message on the HEP benchmark's traffic (one process).

Usage: .venv/bin/python bench/hep_tracker.py [--calls 300] [--runs 3] [--profile] [--feed pbx]

The calls of `hep_capacity` (7 SIP messages each: INVITE with SDP, 100, 180, 200 with SDP,
ACK, BYE, 200; a Call-ID, tags and media ports of their own) are built and HEP-decoded
first, three sets of new calls (one per run, so that no run meets an earlier run's texts in
the parsers' tables of recent texts); then each run feeds its set to a fresh `CallTracker`
and lets its timers fire (the calls end, their records are made), as ``--stages`` does.
Prints the CPU time per SIP message of each run.

Instructions per message: run it under callgrind twice, with ``--runs 1`` and ``--runs 3``,
and divide the difference of the totals by 2 x 7 x calls (building and decoding the
traffic, imports and the first run's warm-up cancel out):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/hep_tracker.py --calls 300 --runs 1

``--feed pbx``: the calls through a tracing proxy, each message twice (14 per call; see
`hep_capacity.Feed`; divide by 2 x 14 x calls then).

``--profile``: one more run under cProfile, its top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import hep_capacity  # noqa: E402
from callscope.assembly.tracker import CallTracker  # noqa: E402
from callscope.capture.hepdecode import HepDecoder  # noqa: E402
from callscope.core import Datagram  # noqa: E402

START_NS = 1_800_000_000 * 10**9  # a fixed start: the same bytes in every process


def datagrams(
    calls: int, feed: hep_capacity.Feed = hep_capacity.SIPP, step: str = "s-", first_call: int = 0
) -> list[Datagram]:
    """The HEP benchmark's traffic for ``calls`` calls, decoded."""
    per_call = feed.per_call
    rate = 100 * per_call  # packets/s: 100 calls/s, as ``--stages``
    _times, raw = hep_capacity.prepare(
        rate, calls * per_call / rate, step, START_NS, feed, first_call
    )
    decoder = HepDecoder()
    found = [decoder.decode(data, START_NS) for data in raw]
    return [d for d in found if d is not None]


def run(dgrams: list[Datagram]) -> int:
    """One tracker through every datagram, then its timers; returns the events."""
    tracker = CallTracker()
    ended = 0
    for dgram in dgrams:
        ended += len(tracker.receive(dgram))
    ended += len(tracker.expire(START_NS + 10**12))
    return ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--feed", choices=("sipp", "pbx"), default="sipp")
    args = parser.parse_args()
    feed = hep_capacity.SIPP
    if args.feed == "pbx":
        feed = hep_capacity.Feed("pbx", proxy=True, rtcp_per_call=0)
    sets = [
        datagrams(args.calls, feed, f"s{n}-", first_call=n * args.calls)
        for n in range(max(3, args.runs))
    ]
    for dgrams in sets[: args.runs]:
        start = time.process_time()
        events = run(dgrams)
        cpu = time.process_time() - start
        print(f"{len(dgrams):,} SIP messages, {events:,} events: "
              f"{cpu / len(dgrams) * 1e6:.1f} us CPU per message")  # fmt: skip
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run, sets[-1])
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
