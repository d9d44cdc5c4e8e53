"""Generated calls as real SIP and RTP packets, for the demo and the benchmarks.

A `PlannedCall` becomes the packets a mirror port would see: INVITE (with SDP offer),
100, 180, 200 (with SDP answer), ACK, G.711 RTP both ways (20 ms, with optional RFC 4733
digits), and BYE/200; or CANCEL/487, or 486 Busy. The packets go through the normal
capture/assembly/audio pipeline, so the demo shows what a real recording looks like.

Audio is synthetic "speech-like" sound made here (voiced syllables with a moving pitch and
formants, pauses between phrases): no third-party recordings are shipped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callscope.audio.g711 import alaw_encode, ulaw_encode
from callscope.capture.pcapwriter import PcapWriter
from callscope.core import Endpoint

MS = 1_000_000
SECOND = 1_000_000_000
PTIME_NS = 20 * MS
SAMPLES = 160
Packet = tuple[int, Endpoint, Endpoint, bytes]
ENCODERS = {"PCMU": (0, ulaw_encode), "PCMA": (8, alaw_encode)}


@dataclass(frozen=True)
class PlannedCall:
    """One call to generate; times in int ns, durations in ns."""

    call_id: str
    caller_number: str
    callee_number: str
    caller: Endpoint  # SIP endpoint of the caller (its RTP port is caller_rtp)
    callee: Endpoint
    caller_rtp: int
    callee_rtp: int
    start: int
    ring: int = 3 * SECOND
    talk: int = 30 * SECOND
    result: str = "answered"  # answered | cancelled | busy
    ended_by: str = "caller"
    codec: str = "PCMU"
    caller_name: str = ""
    digits: str = ""  # RFC 4733 digits the caller sends after answer
    seed: int = 0
    audio: bool = True  # False: constant payload (fast, for packet-rate benchmarks)
    extra_headers: tuple[str, ...] = field(default=())


def speech_like(seconds: float, seed: int, rate: int = 8000) -> np.ndarray:
    """Voiced syllables with varying pitch and two formants, grouped in phrases."""
    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    out = np.zeros(total, dtype=np.float64)
    pos = int(rng.uniform(0.2, 0.8) * rate)
    base_pitch = rng.uniform(100, 220)
    while pos < total:
        for _ in range(int(rng.integers(3, 9))):
            length = int(rng.uniform(0.12, 0.3) * rate)
            if pos + length >= total:
                break
            t = np.arange(length) / rate
            pitch = base_pitch * (1 + 0.15 * np.sin(2 * math.pi * rng.uniform(1, 3) * t))
            phase = 2 * math.pi * np.cumsum(pitch) / rate
            voice = sum(np.sin(k * phase) / k for k in range(1, 12))
            f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2500)
            shaped = (
                voice
                * (1 + 0.6 * np.sin(2 * math.pi * f1 * t))
                * (1 + 0.3 * np.sin(2 * math.pi * f2 * t))
            )
            envelope = np.sin(math.pi * np.arange(length) / length) ** 0.7
            out[pos : pos + length] += shaped * envelope
            pos += length + int(rng.uniform(0.01, 0.06) * rate)
        pos += int(rng.uniform(0.4, 1.5) * rate)
    peak = np.abs(out).max() or 1.0
    return (out / peak * 9000).astype(np.int16)


def _sdp(ip: str, port: int, codec: str, session: int) -> bytes:
    pt = ENCODERS[codec][0]
    return (
        f"v=0\r\no=- {session} {session} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {codec}/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    ).encode()


class _Dialog:
    """Builds the SIP messages of one call (RFC 3261 headers, byte Content-Length)."""

    def __init__(self, call: PlannedCall) -> None:
        self.call = call
        self.from_tag = f"f{call.seed:x}a"
        self.to_tag = f"t{call.seed:x}b"
        self.branch = f"z9hG4bK{call.seed:x}i"

    def request(self, method: str, cseq: int, *, to_tag: bool, body: bytes = b"",
                from_callee: bool = False, branch: str | None = None) -> bytes:  # fmt: skip
        c = self.call
        src = c.callee if from_callee else c.caller
        target = c.caller if from_callee else c.callee
        frm = f'"{c.caller_name}" <sip:{c.caller_number}@{c.caller.ip}>' if c.caller_name else (
            f"<sip:{c.caller_number}@{c.caller.ip}>")  # fmt: skip
        to = f"<sip:{c.callee_number}@{c.callee.ip}>"
        from_hdr, to_hdr = (
            f"{frm};tag={self.from_tag}",
            to + (f";tag={self.to_tag}" if to_tag else ""),
        )
        if from_callee:
            from_hdr, to_hdr = to_hdr, from_hdr
        uri = f"sip:{c.caller_number if from_callee else c.callee_number}@{target}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {src};branch={branch or self.branch}",
            "Max-Forwards: 70",
            f"From: {from_hdr}",
            f"To: {to_hdr}",
            f"Call-ID: {c.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{c.callee_number if from_callee else c.caller_number}@{src}>",
            "User-Agent: callscope-demo",
            *c.extra_headers,
        ]
        return self._finish(lines, body)

    def response(self, code: int, reason: str, method: str, cseq: int, *, to_tag: bool = True,
                 body: bytes = b"", branch: str | None = None) -> bytes:  # fmt: skip
        c = self.call
        frm = f"<sip:{c.caller_number}@{c.caller.ip}>;tag={self.from_tag}"
        to = f"<sip:{c.callee_number}@{c.callee.ip}>" + (f";tag={self.to_tag}" if to_tag else "")
        lines = [
            f"SIP/2.0 {code} {reason}",
            f"Via: SIP/2.0/UDP {c.caller};branch={branch or self.branch}",
            f"From: {frm}",
            f"To: {to}",
            f"Call-ID: {c.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{c.callee_number}@{c.callee}>",
        ]
        return self._finish(lines, body)

    @staticmethod
    def _finish(lines: list[str], body: bytes) -> bytes:
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sip_packets(call: PlannedCall) -> list[Packet]:
    """The SIP messages of the call with their times."""
    d, c = _Dialog(call), call
    up, down = (c.caller, c.callee), (c.callee, c.caller)
    offer = _sdp(c.caller.ip, c.caller_rtp, c.codec, c.seed)
    answer = _sdp(c.callee.ip, c.callee_rtp, c.codec, c.seed + 1)
    t = c.start
    out: list[Packet] = [
        (t, *up, d.request("INVITE", 1, to_tag=False, body=offer)),
        (t + 2 * MS, *down, d.response(100, "Trying", "INVITE", 1, to_tag=False)),
        (t + 40 * MS, *down, d.response(180, "Ringing", "INVITE", 1)),
    ]
    ring_end = t + 40 * MS + c.ring
    if c.result == "busy":
        out.append((ring_end, *down, d.response(486, "Busy Here", "INVITE", 1)))
        out.append((ring_end + MS, *up, d.request("ACK", 1, to_tag=True)))
    elif c.result == "cancelled":
        cancel = d.request("CANCEL", 1, to_tag=False)
        out.append((ring_end, *up, cancel))
        out.append((ring_end + 2 * MS, *down, d.response(200, "OK", "CANCEL", 1, to_tag=False)))
        out.append((ring_end + 3 * MS, *down, d.response(487, "Request Terminated", "INVITE", 1)))
        out.append((ring_end + 4 * MS, *up, d.request("ACK", 1, to_tag=True)))
    else:
        out.append((ring_end, *down, d.response(200, "OK", "INVITE", 1, body=answer)))
        out.append((ring_end + 2 * MS, *up, d.request("ACK", 1, to_tag=True, branch="z9hG4bKack")))
        end = ring_end + c.talk
        by_callee = c.ended_by == "callee"
        bye = d.request("BYE", 1 if by_callee else 2, to_tag=True, from_callee=by_callee,
                        branch="z9hG4bKbye")  # fmt: skip
        out.append((end, *(down if by_callee else up), bye))
        ok = d.response(200, "OK", "BYE", 1 if by_callee else 2, branch="z9hG4bKbye")
        out.append((end + 3 * MS, *(up if by_callee else down), ok))
    return out


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *, marker: bool = False) -> bytes:
    return (
        bytes((0x80, pt | (0x80 if marker else 0)))
        + (seq & 0xFFFF).to_bytes(2, "big")
        + (ts & 0xFFFFFFFF).to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
        + payload
    )


def rtp_packets(call: PlannedCall, *, caller_side: bool) -> Iterator[Packet]:
    """One direction of media from the answer to the end, 20 ms packets."""
    c = call
    if c.result != "answered":
        return
    start = c.start + 40 * MS + c.ring + 20 * MS
    count = int(c.talk // PTIME_NS) - 2
    src = (
        Endpoint(c.caller.ip, c.caller_rtp) if caller_side else Endpoint(c.callee.ip, c.callee_rtp)
    )
    dst = (
        Endpoint(c.callee.ip, c.callee_rtp) if caller_side else Endpoint(c.caller.ip, c.caller_rtp)
    )
    pt, encode = ENCODERS[c.codec]
    ssrc = (c.seed * 2 + (0 if caller_side else 1)) & 0xFFFFFFFF or 1
    if c.audio:
        pcm = speech_like(count * 0.02, c.seed * 2 + (0 if caller_side else 1))
        payload_all = encode(pcm)
    else:
        payload_all = b"\xff" * (SAMPLES * count)
    seq = (c.seed * 7919) & 0xFFFF
    digits = _digit_schedule(c.digits, count) if caller_side else {}
    for i in range(count):
        at = start + i * PTIME_NS + (c.seed + i) % 3 * 100_000  # a little network jitter
        ts = i * SAMPLES
        if i in digits:
            for packet in digits[i](seq, ts, ssrc):
                yield (at, src, dst, packet)
                seq += 1
            continue
        payload = payload_all[i * SAMPLES : (i + 1) * SAMPLES]
        yield (at, src, dst, _rtp(pt, seq, ts, ssrc, payload, marker=i == 0))
        seq += 1


#: RFC 4733 2.3: event code, End bit with volume 10, duration 800 (100 ms)
_END_EVENT = {code: bytes((code, 0x80 | 10)) + (800).to_bytes(2, "big") for code in range(16)}
DigitPackets = Callable[[int, int, int], list[bytes]]


def _digit_schedule(digits: str, count: int) -> dict[int, DigitPackets]:
    """RFC 4733 events replacing audio packets: one digit every 1.5 s from 2 s in."""
    events = {"*": 10, "#": 11, **{str(n): n for n in range(10)}}
    schedule: dict[int, DigitPackets] = {}
    for n, digit in enumerate(digits):
        slot = 100 + n * 75
        if slot >= count:
            break

        def event(seq: int, ts: int, ssrc: int, code: int = events[digit]) -> list[bytes]:
            # RFC 4733 2.5.1.3: one event, three End packets with the same timestamp
            return [_rtp(101, seq + k, ts, ssrc, _END_EVENT[code], marker=k == 0) for k in range(3)]

        schedule[slot] = event
    return schedule


def call_packets(call: PlannedCall) -> Iterator[Packet]:
    """Every packet of the call in time order."""
    return heapq.merge(
        sip_packets(call),
        rtp_packets(call, caller_side=True),
        rtp_packets(call, caller_side=False),
        key=lambda p: p[0],
    )


def write_capture(path: Path, calls: Iterable[PlannedCall]) -> int:
    """Write the calls' packets, merged in time order, as a pcap; returns the packet count."""
    streams = [call_packets(call) for call in calls]
    written = 0
    with open(path, "wb") as handle:
        writer = PcapWriter(handle)
        for at, src, dst, payload in heapq.merge(*streams, key=lambda p: p[0]):
            writer.udp(at, src, dst, payload)
            written += 1
    return written
