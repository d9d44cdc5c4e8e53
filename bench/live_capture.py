"""Live capture capacity: tcpreplay at increasing rates into `callscope capture`.

In a network namespace made for the run, a veth pair carries a generated capture of many
concurrent G.711 calls, replayed by tcpreplay at a fixed packet rate from one end while
`callscope capture --interface` records on the other. For each rate the script reports the
kernel drops, the application drops and the calls recorded against the calls sent, plus
the recorder's peak resident memory. The highest rate with zero drops and zero lost calls
is the result (goal: 200,000 packets/s, i.e. 2,000 concurrent calls, under 300 MB).

Needs root, iproute2 and tcpreplay. Usage:

  .venv/bin/python bench/live_capture.py [--calls 2000] [--talk 20] [--rates 50000,100000,...]
                                          [--pure-python]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from callscope.core import Endpoint
from callscope.ingest.callgen import SECOND, PlannedCall, write_capture

CALLSCOPE = Path(sys.executable).with_name("callscope")
#: tcpreplay busy-waits on its core: the recorder gets the other one to itself
TWO_CORES = (os.cpu_count() or 1) >= 2
PIN_REPLAY = ["taskset", "-c", "0"] if TWO_CORES else []
PIN_RECORDER = ["taskset", "-c", "1"] if TWO_CORES else []


def run(*command: str) -> None:
    subprocess.run(command, check=True)


def make_namespace() -> str:
    name = f"cs-bench-{uuid.uuid4().hex[:6]}"
    run("ip", "netns", "add", name)
    for command in (
        ["ip", "link", "add", "rep0", "type", "veth", "peer", "name", "cap0"],
        ["ip", "link", "set", "rep0", "up"],
        ["ip", "link", "set", "cap0", "up"],
        ["ip", "link", "set", "lo", "up"],
    ):
        run("ip", "netns", "exec", name, *command)
    return name


def generate(path: Path, calls: int, talk: int) -> int:
    start = 1_775_000_000 * SECOND
    plan = (
        PlannedCall(
            f"live-{n}@bench", f"0780{n:06d}", f"0783{n:06d}",
            Endpoint(f"10.1.{n // 250}.{n % 250 + 1}", 5060),
            Endpoint(f"10.2.{n // 250}.{n % 250 + 1}", 5060),
            20000 + 2 * (n % 10000), 30000 + 2 * (n % 10000),
            start + n * SECOND // 50, ring=SECOND, talk=talk * SECOND, seed=n + 1, audio=False,
        )
        for n in range(calls)
    )  # fmt: skip
    return write_capture(path, plan)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit_s: float = 120.0) -> None:
    """Wait until the recorder has worked off what it still held (idle for a second)."""
    deadline = time.monotonic() + limit_s
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(pid)
        if now - before < 0.05:
            return
        before = now


def measure(
    ns: str, capture: Path, packets: int, calls: int, rate: int, work: Path, *, pure: bool
) -> dict:
    data = work / f"data-{rate}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    env.update(CALLSCOPE_DATA_DIR=str(data), CALLSCOPE_LOG_FORMAT="json")
    if pure:  # the Python code instead of the compiled twins (callscope.core.compiled)
        env["CALLSCOPE_PURE_PYTHON"] = "1"
    subprocess.run([str(CALLSCOPE), "migrate", "-v", "0"], env=env, check=True)
    out_path, err_path = work / f"calls-{rate}.jsonl", work / f"log-{rate}.txt"
    # output to files, never pipes: a pipe nobody reads during the run would fill and stop
    # the recorder; `ip netns exec` execs the recorder, so the pid is the recorder's own
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        recorder = subprocess.Popen(
            ["ip", "netns", "exec", ns, *PIN_RECORDER, str(CALLSCOPE), "capture",
             "--interface", "cap0", "--no-audio", "--json", "--sample-seconds", "1"],
            env=env, stdout=out_file, stderr=err_file,
        )  # fmt: skip
        time.sleep(8)
        started = time.perf_counter()
        subprocess.run(
            ["ip", "netns", "exec", ns, *PIN_REPLAY, "tcpreplay", "--intf1=rep0", f"--pps={rate}",
             "--quiet", str(capture)],
            check=True, capture_output=True,
        )  # fmt: skip
        took = time.perf_counter() - started
        settle(recorder.pid)
        status = Path(f"/proc/{recorder.pid}/status").read_text()
        cpu = cpu_seconds(recorder.pid)
        recorder.send_signal(signal.SIGTERM)
        recorder.wait(timeout=600)
    out = out_path.read_text()
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    answered = sum(1 for r in records if r["result"] == "answered" and r["ended_at"])
    rss = re.search(r"VmHWM:\s+(\d+) kB", status)
    sql = "select sum(packets), sum(kernel_drops), sum(app_drops) from store_capturesample"
    with sqlite3.connect(data / "callscope.sqlite3") as db:
        seen, kernel, app = db.execute(sql).fetchone()
    return {
        "rate": rate,
        "achieved": round(packets / took),
        "packets_seen": seen,
        "kernel_drops": kernel,
        "app_drops": app,
        "calls_sent": calls,
        "calls_complete": answered,
        "max_rss_mb": int(rss.group(1)) // 1024 if rss else None,
        "cpu_seconds": round(cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--talk", type=int, default=20)
    parser.add_argument("--rates", default="25000,50000,100000,150000,200000")
    parser.add_argument(
        "--pure-python", action="store_true", help="record with the Python code, no twins"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="callscope-live-bench-"))
    capture = work / "calls.pcap"
    packets = generate(capture, args.calls, args.talk)
    print(f"{packets:,} packets, {args.calls} calls of {args.talk} s")
    ns = make_namespace()
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            result = measure(ns, capture, packets, args.calls, rate, work, pure=args.pure_python)
            print(json.dumps(result))
            clean = not result["kernel_drops"] and result["calls_complete"] == args.calls
            if not clean:
                break
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        capture.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
