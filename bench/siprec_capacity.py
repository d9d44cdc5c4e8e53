"""SIPREC recording server capacity: concurrent sessions sustained with complete recordings.

Usage (root: a network namespace is made for the run):
    .venv/bin/python bench/siprec_capacity.py [--concurrent 100,250,500] [--hold 30]
                                              [--receivers listener,capture] [--nice -10]
    (SIPP_PIN="taskset -c 0" pins SIPp to the other core; by default it runs where it can)

Traffic: SIPp as the recording client (tests/ingest/_siprec_sipp.py): SIPREC INVITEs with
two labelled PCMA streams and RFC 7865 metadata, then ``play_pcap_audio`` of two streams
(g711a.pcap's speech and A-law silence, 50 packets/s each, looped to fill the call) to the
two answered ports, BYE after ``--hold`` seconds. To hold N sessions at once, calls start
at N / (hold + 1) per second, 2N calls in all (SIPp ``-l`` caps the sessions up at N + 5%):
500 sessions are 50,000 RTP packets/s. Calls of 30 s keep the call rate (and the database
rows per second) at what a few hundred real calls of minutes each would be 20 times over.
The server listens on 127.0.0.2: SIPp 3.6.1 binds a raw socket per audio play to its own
address (127.0.0.1), and each such socket would get a copy of every packet sent there.

Receivers, each pinned to one core (``taskset``), fed the same traffic:
  * ``listener``: `SiprecSource.read_batch` in a bare loop - the SIP UAS, the sockets and
    the RTP ports, nothing recorded: the ceiling the product is compared with;
  * ``capture``: ``callscope capture --siprec ADDR --json --encoders 0``, the product:
    listener, SIPREC assembler, spools and a database row per ended session (SQLite in a
    fresh data directory). Encoding is left out: it runs after hang-up in other processes
    (``--encoders``), on other cores, and never holds capture up.
A session counts as complete when its call record has the metadata's caller and callee, both
streams, no packet lost between the first and the last that arrived, and its spool holds
every packet on the right channel; ``full`` counts those whose streams are as long as the
audio SIPp was to play (a SIPp that falls behind ends a play at the BYE). The UDP counters
of the namespace (/proc/net/snmp) give what reached the loopback ("on wire", less SIP),
receive-buffer errors (of any socket, SIPp's included) and packets to closed ports.
``us/pkt`` is the receiver's CPU time per RTP packet received. A level passes when every
call SIPp placed succeeded, no socket overflowed and (capture) every session is complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.ingest._siprec_sipp import CALLEE, CALLER, scenario, two_stream_pcap  # noqa: E402

from callscope.audio.packets import Direction  # noqa: E402
from callscope.audio.spool import read_spool_file  # noqa: E402

CALLSCOPE = Path(sys.executable).with_name("callscope")
SRS = "127.0.0.2:5080"  # not SIPp's address: its raw sockets would get a copy of every packet
RTP_PORTS = "40000-43999"
RECEIVER_CORE = 1
SIPP_PIN = os.environ.get("SIPP_PIN", "").split()  # e.g. "taskset -c 0"
NICE: list[str] = []  # ["nice", "-n", "-10"] with --nice: a shared machine's other work waits
LISTENER = """
import json, signal, sys
from callscope.capture.siprec import SiprecSource
from callscope.core import Endpoint
source = SiprecSource(Endpoint("127.0.0.2", 5080), rtp_ports=range(40000, 44000))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("ready", flush=True)
seen = 0
while not stop:
    seen += len(source.read_batch(0.2))
source.close()
print(json.dumps({"datagrams": seen, "rtp": source.counters.rtp,
                  "sessions": source.counters.sessions_started}), flush=True)
"""


def netns(name: str, *command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, *command], check=True, text=True,
                          capture_output=True, **kwargs)  # type: ignore[call-overload]  # fmt: skip


def udp_counters(ns: str) -> dict[str, int]:
    lines = [line.split() for line in netns(ns, "cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = [row for row in lines if row[0] == "Udp:"][:2]
    return dict(zip(names[1:], map(int, values[1:]), strict=True))


class Receiver:
    """One receiver process in the namespace, pinned to the receiver core."""

    def __init__(self, kind: str, ns: str, data_dir: Path) -> None:
        self.kind = kind
        pin = ["ip", "netns", "exec", ns, *NICE, "taskset", "-c", str(RECEIVER_CORE)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
        env |= {"CALLSCOPE_DATA_DIR": str(data_dir), "CALLSCOPE_SIPREC_RTP_PORTS": RTP_PORTS,
                "CALLSCOPE_LOG_FORMAT": "json"}  # fmt: skip
        if kind == "capture":
            command = [str(CALLSCOPE), "capture", "--siprec", SRS, "--json", "--encoders", "0",
                       "--sample-seconds", "5"]  # fmt: skip
            ready = "recording SIPREC sessions on"
        else:
            command = [sys.executable, "-c", LISTENER]
            ready = "ready"
        self.process = subprocess.Popen(
            pin + command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        stream = self.process.stderr if kind == "capture" else self.process.stdout
        assert stream is not None
        for line in stream:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{kind} did not start: {self.process.stderr.read()}")  # type: ignore[union-attr]
        self.out: list[str] = []
        self.err: list[str] = []
        for source, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=source, k=sink: k.extend(s), daemon=True).start()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=600)
        time.sleep(0.5)


@dataclass
class Level:
    kind: str
    concurrent: int
    calls: int
    succeeded: int
    failed: int
    peak_sessions: int
    complete: int
    full_length: int
    rtp_sent: int
    rtp_wire: int
    rtp_received: int
    rcvbuf_errors: int
    no_ports: int
    cpu_share: float
    cpu_seconds: float

    @property
    def us_per_packet(self) -> float:
        """Receiver CPU per RTP packet received (SIP and saving included)."""
        return self.cpu_seconds / self.rtp_received * 1e6 if self.rtp_received else 0.0

    @property
    def passed(self) -> bool:
        sip_ok = self.failed == 0 and self.succeeded == self.calls
        kept_up = self.rcvbuf_errors == 0  # nothing dropped by a full socket (tail loss too)
        return sip_ok and kept_up and (self.kind != "capture" or self.complete == self.calls)


def run_sipp(ns: str, workdir: Path, calls: int, rate: float, limit: int) -> tuple[int, int]:
    """Place the calls; returns (succeeded, failed) from SIPp's statistics file."""
    stats = workdir / "stats.csv"
    stats.unlink(missing_ok=True)
    subprocess.run(
        ["ip", "netns", "exec", ns, *NICE, *SIPP_PIN, "sipp", "-sf", "srec.xml",
         SRS, "-i", "127.0.0.1", "-p", "5060", "-mi", "127.0.0.1", "-mp", "6000",
         "-m", str(calls), "-r", str(round(rate * 10)), "-rp", "10000", "-l", str(limit),
         "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1", "-trace_err"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600,
        check=False,
    )  # fmt: skip
    header, *rows = [line.split(";") for line in stats.read_text().splitlines() if line]
    last = dict(zip(header, rows[-1], strict=False))
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def peak(records: list[dict[str, object]]) -> int:
    edges: list[tuple[str, int]] = []
    for record in records:
        if record["answered_at"] and record["ended_at"]:
            edges += [(str(record["answered_at"]), 1), (str(record["ended_at"]), -1)]
    level = best = 0
    for _at, step in sorted(edges, key=lambda e: (e[0], e[1])):
        level += step
        best = max(best, level)
    return best


def spools(data_dir: Path) -> dict[str, Path]:
    """Call-ID -> finished spool, from the recorder's database."""
    with sqlite3.connect(data_dir / "callscope.sqlite3") as db:
        found = db.execute(
            "select c.call_id, r.spool_path from store_recording r "
            "join store_call c on c.id = r.call_id where r.spool_path != ''"
        ).fetchall()
    return {call_id: Path(path) for call_id, path in found}


def complete(record: dict[str, object], spool: Path | None) -> bool:
    """The parties of the metadata, both channels, no packet lost between the first and
    the last that arrived, and the spool holding every packet the record counts."""
    caller, callee = record["caller"], record["callee"]
    streams = record["streams"]
    assert isinstance(caller, dict) and isinstance(callee, dict) and isinstance(streams, list)
    if (caller["number"], callee["number"]) != (CALLER[0], CALLEE[0]) or len(streams) != 2:
        return False
    if any(s["lost"] for s in streams) or spool is None:
        return False
    counts = {s["direction"]: s["packets"] for s in streams}
    contents = read_spool_file(spool)
    return all(len(contents.packets(d)) == counts.get(d.name.lower()) for d in Direction)


def full(record: dict[str, object], packets: int) -> bool:
    """Both streams as long as the audio SIPp was to play (its lag can cut the end)."""
    streams = record["streams"]
    assert isinstance(streams, list)
    return len(streams) == 2 and all(s["packets"] == packets for s in streams)


def run_level(kind: str, ns: str, workdir: Path, concurrent: int, hold: int, packets: int) -> Level:
    data_dir = Path(tempfile.mkdtemp(prefix="siprec-bench-"))
    calls = 2 * concurrent
    rate = concurrent / (hold + 1)
    before = udp_counters(ns)
    receiver = Receiver(kind, ns, data_dir)
    cpu0, t0 = receiver.cpu_seconds(), time.monotonic()
    succeeded, failed = run_sipp(ns, workdir, calls, rate, int(concurrent * 1.05))
    cpu1, t1 = receiver.cpu_seconds(), time.monotonic()
    time.sleep(4)  # media tail, then the last records are written
    cpu2 = receiver.cpu_seconds()
    receiver.stop()
    after = udp_counters(ns)
    # every UDP datagram on the namespace's loopback, less the ~6 SIP messages per call
    arrived = ("InDatagrams", "NoPorts", "InErrors")
    wire = sum(after[k] - before[k] for k in arrived) - 6 * succeeded
    lines = [json.loads(line) for line in receiver.out if line.startswith("{")]
    done = whole = rtp = 0
    records = lines if kind == "capture" else []
    if kind == "capture":
        finished = spools(data_dir)
        done = sum(complete(r, finished.get(str(r["call_id"]))) for r in records)
        whole = sum(full(r, packets) for r in records)
        rtp = sum(int(s["packets"]) for r in records for s in r["streams"])
    elif lines:
        rtp = int(lines[-1]["rtp"])
    shutil.rmtree(data_dir, ignore_errors=True)
    return Level(
        kind, concurrent, calls, succeeded, failed, peak(records), done, whole,
        calls * 2 * packets, wire, rtp, after["RcvbufErrors"] - before["RcvbufErrors"],
        after["NoPorts"] - before["NoPorts"], (cpu1 - cpu0) / (t1 - t0), cpu2 - cpu0,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrent", default="100,250,500")
    parser.add_argument("--hold", type=int, default=30, help="seconds from ACK to BYE (>= 8)")
    parser.add_argument("--receivers", default="listener,capture")
    parser.add_argument("--nice", type=int, default=0, help="niceness of SIPp and receivers")
    args = parser.parse_args()
    if args.nice:
        NICE.extend(["nice", "-n", str(args.nice)])
    if os.geteuid() != 0 or shutil.which("sipp") is None:
        sys.exit("needs root (network namespace) and sipp")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average at start: {' '.join(load)} ({os.cpu_count()} cores)")
    ns = f"cs-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        netns(ns, "ip", "link", "set", "lo", "mtu", "1500")
        netns(ns, "ip", "link", "set", "lo", "up")
        workdir = Path(tempfile.mkdtemp(prefix="siprec-sipp-"))
        (workdir / "srec.xml").write_text(scenario(args.hold * 1000), encoding="utf-8")
        # the audio (7.07 s a loop) must end before the BYE
        packets = two_stream_pcap(
            workdir / "two_streams.pcap", loops=max(1, (args.hold - 1) * 100 // 707)
        )
        print(f"{'receiver':9} {'N':>4} {'calls':>5} {'ok':>5} {'fail':>4} {'peak':>4} "
              f"{'complete':>8} {'full':>5} {'rtp sent':>9} {'on wire':>9} {'rtp recv':>9} "
              f"{'rcvbuf':>6} {'noport':>6} {'cpu':>5} {'us/pkt':>6}  pass")  # fmt: skip
        for concurrent in (int(n) for n in args.concurrent.split(",")):
            for kind in args.receivers.split(","):
                level = run_level(kind, ns, workdir, concurrent, args.hold, packets)
                print(f"{level.kind:9} {level.concurrent:>4} {level.calls:>5} "
                      f"{level.succeeded:>5} {level.failed:>4} {level.peak_sessions:>4} "
                      f"{level.complete:>8} {level.full_length:>5} {level.rtp_sent:>9} "
                      f"{level.rtp_wire:>9} "
                      f"{level.rtp_received:>9} {level.rcvbuf_errors:>6} {level.no_ports:>6} "
                      f"{level.cpu_share:>5.0%} {level.us_per_packet:>6.1f}  "
                      f"{'yes' if level.passed else 'NO'}", flush=True)  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
