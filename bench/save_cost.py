"""What saving ended calls costs the live recorder: CPU per call and fixed cost per read.

Usage: .venv/bin/python bench/save_cost.py [--calls 2000] [--reads 1,36] [--repeat 3]
       PYTHONHASHSEED=0 valgrind --tool=callgrind --toggle-collect=functools_reduce \\
           .venv/bin/python bench/save_cost.py --calls 300 --reads 36 --repeat 1 --callgrind

The calls are the HEP capacity benchmark's (`hep_capacity.prepare`: SIPp-like answered
calls of 7 messages), run through the call tracker first; only `Recorder.flush` is timed,
given the records of ``k`` calls at a time as a live read that ended ``k`` calls would give
it (``--reads``: the values of ``k``). A read of 256 packets of that traffic ends ~36 calls.
With two or more values of ``k`` the cost is split as ``fixed per read + k x per call``
(least squares over the values). Each pass uses new calls in the same database (SQLite in
a fresh data directory unless ``CALLSCOPE_DATABASE_URL`` is set: use an empty database);
CPU time of the process, best of ``--repeat`` passes.

``--city``: a directory (the callee number in a section) and a caller number per call
(one in five calling twice), so that calls are inbound, counted under a unit and checked
for repeat callers, as at a city hall; without it the calls are the HEP benchmark's as sent
(no directory, one caller number).

``--callgrind``: the timed passes run inside ``functools.reduce``, so that callgrind with
``--toggle-collect=functools_reduce`` counts their instructions only (a first pass, not
counted, warms the caches); instructions per call are then total / calls.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


CALLER = b"0312345678"


def records(step: str, calls: int, city: bool = False) -> list[object]:
    """The call records of ``calls`` answered calls, in the order they end (``city``: a
    caller number of the same length per call, one in five calls repeating an earlier one)."""
    import hep_capacity  # noqa: PLC0415
    from callscope.assembly.events import CallEnded  # noqa: PLC0415
    from callscope.assembly.tracker import CallTracker  # noqa: PLC0415
    from callscope.capture.hepdecode import HepDecoder  # noqa: PLC0415

    start = time.time_ns()
    rate = 700
    _times, raw = hep_capacity.prepare(rate, calls * 7 / rate + 0.01, step, start)
    decoder = HepDecoder()
    tracker = CallTracker()
    ended = []
    for sent in raw:
        data = sent
        if city:
            at = data.index(b"@bench")
            call = int(data[at - 16 + len(step) : at])
            number = call - 1 if call % 5 == 0 and call else call  # calls again after 1 call
            data = data.replace(CALLER, b"03%08d" % number)
        for event in tracker.receive(decoder.decode(data, start)):
            if isinstance(event, CallEnded):
                ended.append(event.record)
    ended += [e.record for e in tracker.expire(start + 10**12) if isinstance(e, CallEnded)]
    return ended[:calls]


def make_city() -> None:
    """A bureau and a section, the benchmark's callee number (2001) a staff phone there."""
    import datetime as dt  # noqa: PLC0415

    from callscope.analytics import orgindex  # noqa: PLC0415
    from callscope.store.models import DirectoryEntry, OrgUnit  # noqa: PLC0415

    since = dt.date(2000, 4, 1)
    bureau = OrgUnit.objects.create(code="B", name="bureau", level="bureau", valid_from=since)
    bureau.top = bureau
    bureau.save()
    section = OrgUnit.objects.create(
        code="S", name="section", level="section", parent=bureau, top=bureau, valid_from=since
    )
    DirectoryEntry.objects.create(number="2001", unit=section, kind="staff", valid_from=since)
    orgindex.invalidate()


def save_pass(recorder: object, recs: list[object], per_read: int) -> float:
    """CPU seconds to flush ``recs`` in reads of ``per_read`` calls."""
    clock = time.process_time
    t0 = clock()
    for i in range(0, len(recs), per_read):
        recorder.ended = recs[i : i + per_read]  # type: ignore[attr-defined]
        recorder.flush()  # type: ignore[attr-defined]
    return clock() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reads", default="1,36", help="calls per read (comma separated)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--city", action="store_true", help="a directory, callers per call")
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("CALLSCOPE_DATABASE_URL"):
        os.environ["CALLSCOPE_DATA_DIR"] = tempfile.mkdtemp(prefix="callscope-savecost-")
    os.environ.setdefault("CALLSCOPE_LOG_LEVEL", "warning")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callscope.settings")
    import django  # noqa: PLC0415

    django.setup()
    from django.core.management import call_command  # noqa: PLC0415

    from callscope.ingest.pipeline import Recorder  # noqa: PLC0415

    call_command("migrate", verbosity=0)
    if args.city:
        make_city()
    recorder = Recorder(run_id="savecost", record_audio=False, batch=10**9)
    sizes = [int(k) for k in args.reads.split(",")]
    save_pass(recorder, records("w-", min(args.calls, 200), args.city), max(sizes))  # warm-up
    results: dict[int, float] = {}
    for k in sizes:
        best = float("inf")
        for rep in range(args.repeat):
            recs = records(f"k{k}r{rep}-", args.calls, args.city)
            if args.callgrind:  # counted: what runs inside functools.reduce
                job = functools.partial(save_pass, recorder, recs, k)
                seconds = functools.reduce(lambda _acc, run: run(), [job], 0.0)
            else:
                seconds = save_pass(recorder, recs, k)
            best = min(best, seconds)
        results[k] = best
        reads = -(-args.calls // k)
        print(
            f"  {k:>4} calls per read: {best / args.calls * 1e3:6.3f} ms CPU per call, "
            f"{best / reads * 1e3:6.3f} ms per read ({args.calls:,} calls, {reads:,} reads)",
            flush=True,
        )
    if len(results) >= 2:
        # per read: t(k) = fixed + k * per_call, fitted over the measured k
        xs, ys = list(results), [results[k] / -(-args.calls // k) for k in results]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        fixed = mean_y - slope * mean_x
        print(f"  fit: {fixed * 1e3:.3f} ms fixed per read + {slope * 1e3:.3f} ms per call")
    print(f"  load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
