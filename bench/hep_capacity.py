"""HEP collector capacity: the highest rate of HEP packets received with zero loss on one core.

Usage: .venv/bin/python bench/hep_capacity.py [--rates 5000,10000,...] [--seconds 10]
                                              [--receivers plain,listener,capture] [--nice -10]
                                              [--feed sipp|pbx] [--rtcp-per-call 144] [--talk 1]
       .venv/bin/python bench/hep_capacity.py --stages [--feed pbx ...]
       .venv/bin/python bench/hep_capacity.py --replay --rates 50000 --seconds 100 [--feed pbx ...]

Two feeds (``--feed``), each message built once with `HepPacket.build` as a HEPv3 packet
(capture id, auth key), then given per call a new Call-ID, tags, branches and media ports,
stamped with the time it is due and sent over UDP on loopback on schedule. Calls start at
rate / (packets per call) per second over ``--seconds``. All datagrams are built before the
clock starts, so that the sender is not the bottleneck.

  * ``sipp`` (the default, the worst case for the recorder: every packet is SIP): SIPp-like
    calls (INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE, 200 - 7 SIP messages per call,
    ringing 0.5 s, talk 1 s), nothing else.
  * ``pbx``: what a PBX's HEP agents send for the same call: the call through a
    record-routing proxy that traces both sides (Kamailio's siptrace, ``trace_mode`` 1: 14
    SIP messages, one call record), and RTCP sender reports from the media relay (proto
    type 5; four streams: caller and callee, each way) - ``--rtcp-per-call`` of them,
    spread over the talk (144: every 5 s, RFC 3550's interval, for 3 minutes). With the
    default ``--talk 1`` the talk is compressed (reports closer than 5 s, few calls open at
    once); ``--talk 60 --rtcp-per-call 48`` is a real minute, and as many calls open at a
    time as a real feed of that rate holds (the rate is then reached after the talk, and
    held for ``--seconds`` minus the talk).

Receivers, each a separate process pinned to one core (the sender runs on the other), fed
the same traffic at each rate:
  * ``plain``: a bare Python ``recv`` loop on a socket with the same receive buffer - the
    ceiling of a Python UDP receiver on this core (the peer the others are compared with);
  * ``listener``: `HepListener.read_batch` (sockets + select + HEP decode + counters),
    without the recorder;
  * ``capture``: ``callscope capture --hep ADDR --json --no-audio``, the product: listener,
    call tracker and a database row per ended call (SQLite in a fresh data directory).
Loss at a rate is what the receiver's socket dropped (the kernel's drop counter,
/proc/net/udp) plus what it did not count (packets, and of them SIP messages decoded as
such); for ``capture`` also the calls: every call sent must come out as one answered call
record ended by the caller. A rate passes with zero
loss of packets and calls, and only if the receiver kept up: the backlog in its socket
when the last packet was sent is worked off within a second (or a tenth of the run) - the
64 MiB receive buffer holds tens of thousands of packets, which would otherwise hide a
receiver that is too slow. Each receiver's CPU time per packet is also printed: it is the
capacity of a whole core, whatever else the machine runs. ``--stages`` splits the product's
CPU time per packet into HEP decoding, the call tracker and saving the calls (in process).
``--replay`` runs the product's loop in process, without sockets, on the traffic of each
rate (reads of 1,024 packets, the calls each read ended saved together, timers every second
of traffic time, the daemon's collector settings): its CPU per packet is the receiver's at
saturation, with as many calls open as the feed holds, free of the socket's and the
machine's noise. A receiver that keeps up spends more CPU per packet than that: it wakes
for small reads, each with its fixed cost (a select, a transaction and its commit).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from callscope.capture.hepsource import udp_drops  # noqa: E402
from callscope.core import Endpoint  # noqa: E402
from callscope.protocol.hep import HepPacket, HepProtoType  # noqa: E402

CALLSCOPE = Path(sys.executable).with_name("callscope")
UAC, UAS = Endpoint("10.1.0.1", 5060), Endpoint("10.2.0.1", 5060)
PROXY = Endpoint("10.0.0.5", 5060)  # the ``pbx`` feed's SIP proxy (and media relay)
TOKEN = b"T" * 16  # replaced per call in Call-ID, tags and branches (same length)
# media ports of the offer and the answer, replaced per call (as phones pick a free port)
CALLER_PORT, CALLEE_PORT = b"11111", b"22222"
REPORT = b"NNNNNNNN"  # an RTCP report's number in its stream (in the SR's NTP time field)
# offsets from the call's INVITE, in ms: INVITE, 100, 180, 200, ACK, BYE, 200
SCHEDULE_MS = (0, 1, 2, 500, 501, 1500, 1501)
ANSWER_MS = 501  # the ACK: the talk starts, and with it the ``pbx`` feed's RTCP reports
SENDER_CORE, RECEIVER_CORE = 0, 1
SDP = (
    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def sip_flow(proxy: bool = False) -> list[tuple[Endpoint, Endpoint, bytes]]:
    """One call as SIPp's uac and uas scenarios exchange it (TOKEN marks the per-call part).

    ``proxy``: the call through a record-routing proxy that traces both sides, as Kamailio's
    siptrace does (``trace_mode`` 1: every message received and every message sent), so 14
    messages: requests as the caller sent them (to the proxy), then as the proxy forwarded
    them (its Via on top, Record-Route on the INVITE, Route removed, Max-Forwards less one);
    responses as the callee sent them (both Vias), then as the proxy forwarded them.
    """
    t = TOKEN.decode()
    via = f"Via: SIP/2.0/UDP {UAC.ip}:{UAC.port};branch=z9hG4bK-{t}-1"
    bye_via = f"Via: SIP/2.0/UDP {UAC.ip}:{UAC.port};branch=z9hG4bK-{t}-2"
    from_ = f"From: sipp <sip:0312345678@{UAC.ip}>;tag={t}"
    to = "To: <sip:2001@10.2.0.1>"
    to_tag = f"{to};tag=uas-{t}"
    call_id = f"Call-ID: {t}@bench"
    offer = SDP.format(ip=UAC.ip, port=CALLER_PORT.decode())
    answer = SDP.format(ip=UAS.ip, port=CALLEE_PORT.decode())
    rr = [f"Record-Route: <sip:{PROXY.ip};lr>"] if proxy else []
    route = [f"Route: <sip:{PROXY.ip};lr>"] if proxy else []

    def msg(first: str, *headers: str, body: str = "") -> bytes:
        kind = ["Content-Type: application/sdp"] if body else []
        lines = [first, *headers, *kind, f"Content-Length: {len(body)}", "", body]
        return "\r\n".join(lines).encode()

    def forwarded(request: bytes, branch: str) -> bytes:
        """A request as the proxy sends it on: its Via on top, Route gone, one hop less."""
        top = f"Via: SIP/2.0/UDP {PROXY.ip}:{PROXY.port};branch=z9hG4bK-{t}-{branch}\r\n"
        first, rest = request.split(b"\r\n", 1)
        rest = rest.replace("".join(f"{r}\r\n" for r in route).encode(), b"")
        rest = rest.replace(b"Max-Forwards: 70", b"Max-Forwards: 69")
        return first + b"\r\n" + top.encode() + rest

    def via_of(response: bytes, branch: str) -> bytes:
        """A response as the callee sends it back through the proxy (both Vias)."""
        top = f"Via: SIP/2.0/UDP {PROXY.ip}:{PROXY.port};branch=z9hG4bK-{t}-{branch}\r\n"
        first, rest = response.split(b"\r\n", 1)
        return first + b"\r\n" + top.encode() + rest

    invite = ("CSeq: 1 INVITE", f"Contact: <sip:sipp@{UAC.ip}:{UAC.port}>", "Max-Forwards: 70")
    requests = {
        "invite": msg("INVITE sip:2001@10.2.0.1 SIP/2.0", via, from_, to, call_id, *invite,
                      body=offer),
        "ack": msg("ACK sip:uas@10.2.0.1:5060 SIP/2.0", *route, via, from_, to_tag, call_id,
                   "CSeq: 1 ACK", "Max-Forwards: 70"),
        "bye": msg("BYE sip:uas@10.2.0.1:5060 SIP/2.0", *route, bye_via, from_, to_tag, call_id,
                   "CSeq: 2 BYE", "Max-Forwards: 70"),
    }  # fmt: skip
    responses = {
        "100": msg("SIP/2.0 100 Trying", via, from_, to, call_id, "CSeq: 1 INVITE"),
        "180": msg("SIP/2.0 180 Ringing", via, *rr, from_, to_tag, call_id, "CSeq: 1 INVITE"),
        "200": msg("SIP/2.0 200 OK", via, *rr, from_, to_tag, call_id, "CSeq: 1 INVITE",
                   f"Contact: <sip:uas@{UAS.ip}:{UAS.port}>", body=answer),
        "bye200": msg("SIP/2.0 200 OK", bye_via, from_, to_tag, call_id, "CSeq: 2 BYE"),
    }  # fmt: skip
    if not proxy:
        return [
            (UAC, UAS, requests["invite"]),
            (UAS, UAC, responses["100"]),
            (UAS, UAC, responses["180"]),
            (UAS, UAC, responses["200"]),
            (UAC, UAS, requests["ack"]),
            (UAC, UAS, requests["bye"]),
            (UAS, UAC, responses["bye200"]),
        ]
    invite_in = requests["invite"]
    invite_out = forwarded(invite_in, "p1").replace(
        b"Max-Forwards: 69", b"Max-Forwards: 69\r\n" + rr[0].encode()
    )
    out = [(UAC, PROXY, invite_in), (PROXY, UAS, invite_out)]
    for name, branch in (("100", "p1"), ("180", "p1"), ("200", "p1")):
        out += [(UAS, PROXY, via_of(responses[name], branch)), (PROXY, UAC, responses[name])]
    out += [(UAC, PROXY, requests["ack"]), (PROXY, UAS, forwarded(requests["ack"], "p3"))]
    out += [(UAC, PROXY, requests["bye"]), (PROXY, UAS, forwarded(requests["bye"], "p2"))]
    out += [(UAS, PROXY, via_of(responses["bye200"], "p2")), (PROXY, UAC, responses["bye200"])]
    return out


def rtcp_report() -> bytes:
    """An RTCP sender report with one report block and the sender's CNAME (RFC 3550 6.4.1,
    6.5), as a media relay sends it to HEP (proto type 5): TOKEN is the CNAME and REPORT
    stands in the NTP time, so that every report of every call is a packet of its own."""
    ssrc = b"\x11\x22\x33\x44"
    sender_info = REPORT + struct.pack("!III", 160_000, 1_000, 160_000)
    block = b"\x55\x66\x77\x88" + struct.pack("!IIIII", 0, 5_000, 12, 0, 0)
    sr = struct.pack("!BBH", 0x81, 200, (8 + 20 + 24) // 4 - 1) + ssrc + sender_info + block
    cname = bytes((1, len(TOKEN))) + TOKEN + b"\x00\x00"  # item, end of items, padding
    sdes = struct.pack("!BBH", 0x81, 202, (4 + len(cname)) // 4) + ssrc + cname
    return sr + sdes


@dataclass(frozen=True)
class Feed:
    """What one call sends: its SIP messages (each once, in `sip_flow` order) and its RTCP
    reports (the four streams' in turn), each at its time from the INVITE (`schedule`)."""

    name: str
    proxy: bool  # the call through a tracing proxy: 14 SIP messages instead of 7
    rtcp_per_call: int  # RTCP reports in the talk, spread evenly over the four streams
    talk_ms: int = 1000  # from the 200 to the BYE

    @property
    def sip_schedule_ms(self) -> tuple[int, ...]:
        talk = self.talk_ms - 1000
        schedule = tuple(ms if ms < 1000 else ms + talk for ms in SCHEDULE_MS)
        if not self.proxy:
            return schedule
        return tuple(ms for ms in schedule for _copy in (0, 1))

    @property
    def per_call(self) -> int:
        return len(self.sip_schedule_ms) + self.rtcp_per_call

    def schedule(self) -> list[tuple[int, int, int]]:
        """(ms from the INVITE, template index, report number) of one call's messages."""
        sip = [(ms, index, 0) for index, ms in enumerate(self.sip_schedule_ms)]
        first_rtcp = len(sip)
        step = (500 + self.talk_ms - ANSWER_MS) / max(1, self.rtcp_per_call)
        rtcp = [
            (int(ANSWER_MS + (k + 0.5) * step), first_rtcp + k % RTCP_STREAMS, k)
            for k in range(self.rtcp_per_call)
        ]
        return sip + rtcp


#: the media streams a relay reports on: caller -> relay, relay -> caller, callee and back
RTCP_STREAMS = 4
SIPP = Feed("sipp", proxy=False, rtcp_per_call=0)


@dataclass
class Template:
    """A HEP datagram with the places of its timestamp and of the per-call parts."""

    data: bytes
    ts_at: int
    token_at: list[int]
    ports_at: list[tuple[int, int]]  # (offset, 0 for the caller's port or 1 the callee's)
    report_at: list[int]  # RTCP: where the report's number goes
    sip: bool


def templates(feed: Feed = SIPP) -> list[Template]:
    """The feed's SIP messages in `Feed.schedule` order, then one RTCP report per stream."""
    hep = {"capture_id": 2001, "auth_key": "bench", "at": 1}
    packets = [
        (HepPacket.build(payload=payload, src=src, dst=dst, **hep), True)
        for src, dst, payload in sip_flow(proxy=feed.proxy)
    ]
    if feed.rtcp_per_call:
        relay = Endpoint(PROXY.ip, 30_001)
        caller, callee = Endpoint(UAC.ip, 11_113), Endpoint(UAS.ip, 22_223)
        for src, dst in ((caller, relay), (relay, caller), (callee, relay), (relay, callee)):
            report = HepPacket.build(
                payload=rtcp_report(), src=src, dst=dst, proto_type=HepProtoType.RTCP_JSON, **hep
            )
            packets.append((report, False))
    out = []
    for packet, sip in packets:
        data = bytes(packet)
        ts_at = data.index(b"\x00\x00\x00\x09\x00\x0a") + 6  # chunk 9, 4 octets (+ chunk 10)
        token_at = _places(data, TOKEN)
        ports_at = [(at, 0) for at in _places(data, CALLER_PORT)]
        ports_at += [(at, 1) for at in _places(data, CALLEE_PORT)]
        out.append(Template(data, ts_at, token_at, ports_at, _places(data, REPORT), sip))
    return out


def _places(data: bytes, marker: bytes) -> list[int]:
    found, start = [], 0
    while (at := data.find(marker, start)) >= 0:
        found.append(at)
        start = at + len(marker)
    return found


def events(
    rate: int, seconds: float, feed: Feed = SIPP, first_call: int = 0
) -> list[tuple[int, int, int, int]]:
    """(ms from start, call number, template index, report number), in send order:
    ``rate`` packets/s; the calls numbered from ``first_call``."""
    per_call, schedule = feed.per_call, feed.schedule()
    calls = int(rate * seconds) // per_call
    out: list[tuple[int, int, int, int]] = []
    for call in range(calls):
        start = call * 1000 * per_call / rate  # ms
        number = first_call + call
        out.extend((int(start + ms), number, index, report) for ms, index, report in schedule)
    out.sort()
    return out


def prepare(
    rate: int, seconds: float, step: str, start_ns: int, feed: Feed = SIPP, first_call: int = 0
) -> tuple[list[float], list[bytes]]:
    """The datagrams of one rate, built before sending and stamped with the time each is
    due (``start_ns`` + its offset): send times (s from the start) and datagrams. Calls
    numbered from ``first_call`` have media ports of their own (up to 5,000 calls)."""
    tpls = templates(feed)
    (ts_at,) = {tpl.ts_at for tpl in tpls}  # the same place in every message
    pack_u32 = struct.Struct("!I").pack_into
    times, datagrams = [], []
    for ms, call, index, report in events(rate, seconds, feed, first_call):
        tpl = tpls[index]
        data = bytearray(tpl.data)
        token = f"{step}{call:0{16 - len(step)}d}".encode()
        for offset in tpl.token_at:
            data[offset : offset + 16] = token
        for offset, side in tpl.ports_at:
            port = (10_000 if side == 0 else 50_000) + 2 * call % (40_000 if side == 0 else 10_000)
            data[offset : offset + 5] = b"%05d" % port
        for offset in tpl.report_at:
            data[offset : offset + 8] = b"%08d" % report
        at = start_ns + ms * 1_000_000
        pack_u32(data, ts_at, at // 1_000_000_000)  # chunk 9: seconds
        pack_u32(data, ts_at + 10, at % 1_000_000_000 // 1000)  # chunk 10, after its header
        times.append(ms / 1000)
        datagrams.append(bytes(data))
    return times, datagrams


def send(address: Endpoint, times: list[float], datagrams: list[bytes], start: float) -> float:
    """Send on schedule from ``start`` (monotonic clock); returns how late the last one was."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.connect((address.ip, address.port))
    transmit = sock.send
    clock = time.monotonic
    time.sleep(max(0.0, start - clock()))
    count, i = len(datagrams), 0
    while i < count:
        due = bisect.bisect_right(times, clock() - start, i)
        collections.deque(map(transmit, datagrams[i:due]), maxlen=0)  # the fastest loop
        i = due
        if i < count:
            delay = times[i] - (clock() - start)
            if delay > 0.0005:
                time.sleep(delay)
    sock.close()
    return clock() - start - times[-1]


# -- receivers ---------------------------------------------------------------------------------

PLAIN = """
import signal, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
count = 0
signal.signal(signal.SIGTERM, lambda *a: (print(count, flush=True), sys.exit(0)))
recv = sock.recv
while True:
    recv(65535)
    count += 1
"""

LISTENER = """
import signal, sys
from callscope.capture.hepsource import HepListener
from callscope.core import Endpoint
listener = HepListener(Endpoint("127.0.0.1", 0), auth_key="bench", capture_ids=frozenset({2001}))
print(listener.address.port, flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
while not stop:
    listener.read_batch(0.2)
print(listener.counters.packets, listener.counters.sip, flush=True)
"""


class Receiver:
    """One receiver process pinned to the receiver core."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        # pinned to its core, and killed if the benchmark dies (prctl PR_SET_PDEATHSIG)
        pin = ["setpriv", "--pdeathsig", "KILL", "taskset", "-c", str(RECEIVER_CORE)]
        if kind == "capture":
            env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
            env.update(
                CALLSCOPE_DATA_DIR=str(data_dir),
                CALLSCOPE_HEP_AUTH_KEY="bench",
                CALLSCOPE_HEP_CAPTURE_IDS="2001",
                CALLSCOPE_LOG_LEVEL="warning",
            )
            command = [str(CALLSCOPE), "capture", "--hep", "127.0.0.1:0", "--json",
                       "--no-audio", "--sample-seconds", "3600"]  # fmt: skip
            self.process = subprocess.Popen(
                pin + command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            assert self.process.stderr is not None
            for line in self.process.stderr:
                if line.startswith("recording calls from HEP on "):
                    self.port = Endpoint.parse(line.split()[5]).port
                    break
            else:
                raise RuntimeError("callscope capture did not start")
            self.records: list[dict[str, object]] = []
            self._stderr: list[str] = []
            threading.Thread(target=self._read_records, daemon=True).start()
            threading.Thread(target=self._read_stderr, daemon=True).start()
        else:
            script = PLAIN if kind == "plain" else LISTENER
            self.process = subprocess.Popen(
                [*pin, sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            )  # fmt: skip
            assert self.process.stdout is not None
            self.port = int(self.process.stdout.readline())
        self.inode = _socket_inode(self.port)

    def _read_records(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.records.append(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def drops(self) -> int:
        return udp_drops(self.inode)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout_s: float = 120.0) -> None:
        """Until the socket's queue is empty and the process stops using CPU."""
        deadline = time.monotonic() + timeout_s
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.cpu_seconds()
            if _rx_queue(self.port) == 0 and now - last < 0.02:
                return
            last = now

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def drain_seconds(self, timeout_s: float = 300.0) -> float:
        """How long the socket's queue takes to empty from now (the backlog left behind)."""
        start = time.monotonic()
        while _rx_queue(self.port) and time.monotonic() - start < timeout_s:
            time.sleep(0.02)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> tuple[int, int]:
        """Stop; returns what the receiver counted: datagrams, and of them the SIP messages
        decoded (plain: datagrams twice), so that a SIP packet that did not decode is lost."""
        self.process.send_signal(signal.SIGTERM)
        if self.kind == "capture":
            self.process.wait(timeout=300)
            time.sleep(0.2)
            summary = next(line for line in self._stderr if line.startswith("HEP "))
            # "HEP ADDR: N packets, M SIP messages, by type {...}, D duplicates, ..."
            words = summary.split(": ", 1)[1].split()
            duplicates = int(summary.split("}, ", 1)[1].split()[0])
            return int(words[0]) - duplicates, int(words[2])
        out, _err = self.process.communicate(timeout=60)
        counts = [int(word) for word in out.split()[-2:]]
        return (counts[-1], counts[-1]) if self.kind == "plain" else (counts[0], counts[1])


def _socket_inode(port: int) -> int:
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[9])
    raise RuntimeError("receiver socket not found")


def _rx_queue(port: int) -> int:
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    return 0


@dataclass
class Step:
    kind: str
    rate: int
    sent: int
    received: int
    sip_sent: int
    sip_received: int
    drops: int
    calls: int
    calls_ok: int | None
    cpu: float
    late: float  # seconds the sender ended behind its schedule
    drain: float  # seconds the receiver took to empty its socket after the last packet
    peak_rss_mb: float

    @property
    def rate_reached(self) -> bool:
        return self.late < 0.5

    @property
    def cpu_per_packet_us(self) -> float:
        return self.cpu / max(1, self.received) * 1e6

    @property
    def kept_up(self) -> bool:
        """Sustainable: the backlog left at the end is worked off within a second (or a
        tenth of the run); a receiver that only survived thanks to its buffer fails."""
        return self.drain <= max(1.0, self.sent / self.rate / 10)

    @property
    def lossless(self) -> bool:
        calls_ok = self.calls_ok is None or self.calls_ok == self.calls
        sip = self.sip_received == self.sip_sent or self.kind == "plain"
        return self.received == self.sent and sip and self.drops == 0 and calls_ok


def run_rate(kind: str, rate: int, seconds: float, feed: Feed = SIPP) -> Step:
    data_dir = Path(tempfile.mkdtemp(prefix="callscope-hepbench-"))
    receiver = Receiver(kind, data_dir)
    try:
        lead = 2.0 + rate * seconds * 8e-6  # time to build the datagrams first (~5 us each)
        start, start_ns = time.monotonic() + lead, time.time_ns() + int(lead * 1e9)
        times, datagrams = prepare(rate, seconds, f"r{rate}-", start_ns, feed)
        cpu_before = receiver.cpu_seconds()
        late = send(Endpoint("127.0.0.1", receiver.port), times, datagrams, start)
        drain = receiver.drain_seconds()
        receiver.wait_idle()
        if kind == "capture":
            time.sleep(3.0)  # the tracker's linger after the last BYE, on the wall clock
            receiver.wait_idle()
        cpu = receiver.cpu_seconds() - cpu_before
        drops = receiver.drops()
        peak_rss_mb = receiver.peak_rss_mb()
        received, sip_received = receiver.stop()
        calls_ok = None
        if kind == "capture":
            calls_ok = sum(
                1 for r in receiver.records
                if r["result"] == "answered" and r["ended_by"] == "caller"
            )  # fmt: skip
        calls = len(datagrams) // feed.per_call
        sip_sent = calls * len(feed.sip_schedule_ms)
        return Step(
            kind, rate, len(datagrams), received, sip_sent, sip_received, drops, calls, calls_ok,
            cpu, late, drain, peak_rss_mb,
        )  # fmt: skip
    finally:
        receiver.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


#: what the in-process scripts start with: Django and a migrated database, this folder's
#: module as ``bench``, the feed from their first argument after this folder
PRELUDE = """
import gc, json, os, sys, time
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
sys.path.insert(0, sys.argv[1])
import hep_capacity as bench
from callscope.capture.hepdecode import HepDecoder
from callscope.ingest.pipeline import Recorder
feed = bench.Feed(**json.loads(sys.argv[2]))
"""

STAGES = """
from callscope.assembly.tracker import CallTracker
start = time.time_ns()
rate = 100 * feed.per_call  # packets/s: 100 calls/s, 2,000 calls
_times, raw = bench.prepare(rate, 2000 * feed.per_call / rate, "s-", start, feed)
end = start + feed.talk_ms * 1_000_000 + 10**11
clock = time.process_time
decoder = HepDecoder(auth_key="bench", capture_ids=frozenset({2001}))
t0 = clock(); decoded = [decoder.decode(data, start) for data in raw]; t1 = clock()
datagrams = [d for d in decoded if d is not None]
tracker = CallTracker()
for d in datagrams:
    tracker.receive(d)
tracker.expire(end); t2 = clock()
recorder = Recorder(run_id="stages", record_audio=False, batch=1000)
for i in range(0, len(datagrams), 256):  # as the live daemon: a read, then its calls saved
    recorder.feed(datagrams[i:i + 256]); recorder.flush()
recorder.expire(end); t3 = clock()
n, sip, calls = len(raw), len(datagrams), recorder.stats.calls
print(f"  feed {feed.name}: {n:,} HEP packets ({sip:,} SIP), {calls:,} calls; "
      "CPU time per stage, one process:")
print(f"  HEP decode                 {(t1 - t0) / n * 1e6:9.1f} us/packet")
print(f"  call tracker (SIP, SDP)    {(t2 - t1) / n * 1e6:9.1f} us/packet "
      f"({(t2 - t1) / sip * 1e6:.1f} us/SIP message)")
print(f"  saving ended calls         {((t3 - t2) - (t2 - t1)) / calls * 1e3:9.2f} ms/call")
print(f"  recorder (tracker + saves) {(t3 - t2) / n * 1e6:9.1f} us/packet")
print(f"  all three                  {(t3 - t2 + t1 - t0) / n * 1e6:9.1f} us/packet "
      f"(= {n / (t3 - t2 + t1 - t0):,.0f} packets per CPU-second)")
"""


REPLAY = """
rate, seconds = int(sys.argv[3]), float(sys.argv[4])
start = 1_800_000_000 * 10**9
times, raw = bench.prepare(rate, seconds, "r-", start, feed)
decoder = HepDecoder(auth_key="bench", capture_ids=frozenset({2001}))
recorder = Recorder(run_id="replay", record_audio=False, batch=1000)
ok = 0
def count(call, contract):
    global ok
    ok += contract["result"] == "answered" and contract["ended_by"] == "caller"
recorder.on_call = count
gc.collect(); gc.freeze(); gc.set_threshold(20_000, 20, 20)  # as the capture daemon
READ, n, next_expire, now = 1024, len(raw), start, start
decode = decoder.decode
t0 = time.process_time()
for i in range(0, n, READ):  # as the daemon: a read, its calls saved, timers each second
    now = start + int(times[min(i + READ, n) - 1] * 1e9)
    recorder.feed([d for d in (decode(data, now) for data in raw[i:i + READ]) if d is not None])
    recorder.flush()
    if now >= next_expire:
        recorder.expire(now)
        next_expire = now + 10**9
recorder.expire(now + 10**12)
cpu = time.process_time() - t0
calls = n // feed.per_call
print(f"  feed {feed.name}: {n:,} HEP packets, {ok:,}/{calls:,} calls recorded; CPU "
      f"{cpu / n * 1e6:.2f} us/packet (= {n / cpu:,.0f} packets per CPU-second), "
      f"{cpu / calls * 1e3:.3f} ms/call")
"""


def replay(feed: Feed, rate: int, seconds: float) -> None:
    """The product's loop in process, on the feed of ``rate`` for ``seconds``, without sockets."""
    _in_process(REPLAY, json.dumps(dataclasses.asdict(feed)), str(rate), str(seconds))


def stages(feed: Feed) -> None:
    """Where the product's time goes, stage by stage, in CPU time (a fresh database)."""
    _in_process(STAGES, json.dumps(dataclasses.asdict(feed)))


def _in_process(script: str, *args: str) -> None:
    """Run `PRELUDE` and ``script`` with the product's settings on a fresh data directory
    (and database); their arguments: this folder, then ``args`` (the feed first)."""
    with tempfile.TemporaryDirectory(prefix="callscope-hepbench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
        env.update(
            CALLSCOPE_DATA_DIR=data_dir,
            CALLSCOPE_LOG_LEVEL="warning",
            DJANGO_SETTINGS_MODULE="callscope.settings",
            PYTHONPATH=str(REPO / "src"),
        )
        command = [sys.executable, "-c", PRELUDE + script, str(REPO / "bench"), *args]
        subprocess.run(command, env=env, check=True, timeout=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        default="250,500,1000,2000,5000,10000,20000,30000,40000,50000,60000,80000,100000",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--receivers", default="plain,listener,capture")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of the sender and receivers (root: <0)"
    )
    parser.add_argument(
        "--stages", action="store_true", help="only the CPU time per stage of the product"
    )
    parser.add_argument(
        "--replay", action="store_true",
        help="only the product's loop in process (no sockets): CPU per packet of each rate's "
        "traffic, with as many calls open as the feed holds",
    )  # fmt: skip
    parser.add_argument(
        "--feed", choices=("sipp", "pbx"), default="sipp",
        help="sipp: 7 SIP messages per call, nothing else (the default); pbx: each call "
        "through a tracing proxy (14 SIP messages) and RTCP reports from its media relay",
    )  # fmt: skip
    parser.add_argument(
        "--rtcp-per-call", type=int, default=144,
        help="pbx feed: RTCP reports per call (144: four streams reported every 5 s for "
        "3 minutes)",
    )  # fmt: skip
    parser.add_argument(
        "--talk", type=float, default=1.0,
        help="seconds from a call's answer to its BYE (1 s: the talk is compressed, the "
        "pbx feed's RTCP reports come closer than every 5 s; a real length holds as many "
        "calls open as a real feed of that rate would)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    os.sched_setaffinity(0, {SENDER_CORE})
    rates = [int(r) for r in args.rates.split(",")]
    feed = SIPP
    if args.feed == "pbx":
        feed = Feed("pbx", proxy=True, rtcp_per_call=args.rtcp_per_call)
    feed = dataclasses.replace(feed, talk_ms=round(args.talk * 1000))
    if args.stages:
        stages(feed)
        return
    if args.replay:
        for rate in rates:
            replay(feed, rate, args.seconds)
        return
    print(f"feed {feed.name}: {feed.per_call} HEP packets per call, "
          f"{len(feed.sip_schedule_ms)} of them SIP")  # fmt: skip
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; "
          f"{args.seconds:.0f} s per rate; sender on core {SENDER_CORE}, "
          f"receiver on core {RECEIVER_CORE}; nice {args.nice}")  # fmt: skip
    best: dict[str, int] = {}
    cost: dict[str, list[float]] = {}
    for kind in args.receivers.split(","):
        print(f"{kind}:", flush=True)
        for rate in rates:
            step = run_rate(kind, rate, args.seconds, feed)
            calls = "" if step.calls_ok is None else f", calls {step.calls_ok}/{step.calls}"
            verdict = "zero loss" if step.lossless else "LOSS"
            if not step.kept_up:
                verdict += f", fell behind ({step.drain:.1f} s of backlog)"
            if not step.rate_reached:
                verdict += f" (sender {step.late:.1f} s behind: rate not reached)"
            print(
                f"  {rate:>7,} pkt/s: sent {step.sent:,}, received {step.received:,}, "
                f"kernel drops {step.drops:,}{calls}; receiver CPU "
                f"{step.cpu_per_packet_us:,.1f} us/packet (= {1e6 / step.cpu_per_packet_us:,.0f}"
                f" packets per CPU-second), peak RSS {step.peak_rss_mb:,.0f} MB -> {verdict}",
                flush=True,
            )
            cost.setdefault(kind, []).append(step.cpu_per_packet_us)
            if not (step.lossless and step.kept_up and step.rate_reached):
                break
            best[kind] = rate
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("highest rate with zero loss (packets/s, one core), and CPU per packet (best step):")
    plain = min(cost.get("plain", [0.0])) or None
    for kind, costs in cost.items():
        us = min(costs)
        ratio = f", {us / plain:.1f}x plain recv" if plain else ""
        print(f"  {kind:9s} {best.get(kind, 0):>8,}   {us:,.1f} us/packet{ratio}")


if __name__ == "__main__":
    main()
