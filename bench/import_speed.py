"""Offline import speed: `callscope import --no-audio` against tshark on the same capture.

Generates a large capture of SIP + G.711 RTP calls (default 2,000 calls of ~26 s, over 5
million packets) with callscope's own call generator, then times, in the same run:

  tshark -q -z sip,stat -z rtp,streams -r FILE
  callscope import --no-audio --json FILE

and prints packets per second for both, the ratio, and the call and stream counts of both
(which must agree). Usage:

  .venv/bin/python bench/import_speed.py [--calls 2000] [--talk 26] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from callscope.core import Endpoint
from callscope.ingest.callgen import SECOND, PlannedCall, write_capture

REPO = Path(__file__).resolve().parent.parent
CALLSCOPE = Path(sys.executable).with_name("callscope")


def generate(path: Path, calls: int, talk_s: int) -> int:
    start = 1_775_000_000 * SECOND
    spread = max(1, calls // 3)  # ~3 new calls per second: a few hundred concurrent
    plan = (
        PlannedCall(
            f"bench-{n}@callscope", f"0780{n:06d}", f"0783{n % 500:06d}",
            Endpoint(f"10.1.{n // 250}.{n % 250 + 1}", 5060),
            Endpoint(f"10.2.{n // 250}.{n % 250 + 1}", 5060),
            20000 + 2 * (n % 10000), 30000 + 2 * (n % 10000),
            start + n * spread * SECOND // calls, ring=2 * SECOND, talk=talk_s * SECOND,
            seed=n + 1, audio=False,
        )
        for n in range(calls)
    )  # fmt: skip
    return write_capture(path, plan)


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, str]:
    """Wall-clock and CPU time (user + system, from /usr/bin/time) of ``command``, its
    standard output and error. CPU time is the steadier figure on a shared machine."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "cpu %U %S", *command],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    wall = time.perf_counter() - started
    user, system = re.findall(r"^cpu (\S+) (\S+)$", result.stderr, re.M)[-1]
    return wall, float(user) + float(system), result.stdout, result.stderr


def tshark_counts(output: str) -> tuple[int, int]:
    invites = re.search(r"^\s*INVITE\s+:\s+(\d+) Packets", output, re.M)
    streams = len(re.findall(r"^\s+\d+\.\d+\s+\d+\.\d+\s+\S+\s+\d+", output, re.M))
    return (int(invites.group(1)) if invites else 0), streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--talk", type=int, default=26)
    parser.add_argument("--keep", action="store_true", help="keep the capture and data dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="callscope-bench-"))
    capture = work / "calls.pcap"
    started = time.perf_counter()
    packets = generate(capture, args.calls, args.talk)
    size = capture.stat().st_size / 1e9
    took = time.perf_counter() - started
    print(f"generated {packets:,} packets, {args.calls} calls, {size:.2f} GB in {took:.0f} s")

    t_wall, t_cpu, t_out, _ = timed(
        ["tshark", "-q", "-z", "sip,stat", "-z", "rtp,streams", "-r", str(capture)]
    )
    t_invites, t_streams = tshark_counts(t_out)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    env["CALLSCOPE_DATA_DIR"] = str(work / "data")
    subprocess.run([str(CALLSCOPE), "migrate", "-v", "0"], env=env, check=True)
    c_wall, c_cpu, c_out, c_err = timed(
        ["/usr/bin/time", "-v", str(CALLSCOPE), "import", "--no-audio", "--json", str(capture)],
        env=env,
    )
    records = [json.loads(line) for line in c_out.splitlines()]
    c_streams = sum(len(r["streams"]) for r in records)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", c_err)
    load = os.getloadavg()[0]
    print(f"tshark    : {t_wall:7.1f} s  {packets / t_wall:>10,.0f} packets/s  "
          f"(CPU {t_cpu:.1f} s)  calls(INVITEs) {t_invites}  RTP streams {t_streams}")  # fmt: skip
    print(f"callscope : {c_wall:7.1f} s  {packets / c_wall:>10,.0f} packets/s  "
          f"(CPU {c_cpu:.1f} s)  calls {len(records)}  streams {c_streams}  "
          f"max RSS {int(rss.group(1)) // 1024 if rss else 0} MB")  # fmt: skip
    print(f"ratio     : callscope is {t_wall / c_wall:.2f}x tshark's packets per second "
          f"({t_cpu / c_cpu:.2f}x in CPU time; load average {load:.1f})")  # fmt: skip
    if not args.keep:
        capture.unlink()
    else:
        print(f"kept: {work}")


if __name__ == "__main__":
    main()
