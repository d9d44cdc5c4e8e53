"""Small builders of SIP and RTP datagrams for tracker tests (never used outside tests)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from callscope.core import Datagram, Endpoint, Timestamp, Transport

MS = 1_000_000
S = 1_000_000_000
ALICE = Endpoint("10.0.0.1", 5060)
BOB = Endpoint("10.0.0.2", 5060)
CAROL = Endpoint("10.0.0.3", 5060)


def sdp(ip: str, port: int, direction: str = "sendrecv", extra: str = "") -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n{extra}"
    )


def rtp(seq: int, ts: int, ssrc: int, pt: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def event(seq: int, ts: int, ssrc: int, digit: int, end: bool, duration: int) -> bytes:
    body = struct.pack("!BBH", digit, (0x80 if end else 0) | 10, duration)
    return rtp(seq, ts, ssrc, 101, body)


@dataclass
class Dialog:
    """Builds the SIP messages of one call between two user agents."""

    call_id: str = "c1@test"
    caller: Endpoint = ALICE
    callee: Endpoint = BOB
    caller_user: str = "0312345678"
    callee_user: str = "1001"
    from_tag: str = "ft1"
    to_tag: str = "tt1"
    cseq: int = 1
    callee_cseq: int = 100
    extra_headers: list[str] = field(default_factory=list)

    def _message(
        self, first: str, cseq: str, *, to_tag: bool, body: str = "", swap: bool = False,
        ctype: str = "application/sdp", headers: tuple[str, ...] = (),
    ) -> bytes:  # fmt: skip
        caller = f"<sip:{self.caller_user}@{self.caller.ip}>;tag={self.from_tag}"
        callee = f"<sip:{self.callee_user}@{self.callee.ip}>" + (
            f";tag={self.to_tag}" if to_tag else ""
        )
        from_, to = (callee, caller) if swap else (caller, callee)
        lines = [
            first,
            f"Via: SIP/2.0/UDP {self.caller.ip};branch=z9hG4bK{abs(hash((first, cseq)))}",
            f"From: {from_}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq}",
            *self.extra_headers,
            *headers,
        ]
        if body:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def invite(
        self, body: str = "", cseq: int | None = None, headers: tuple[str, ...] = ()
    ) -> bytes:
        number = self.cseq if cseq is None else cseq
        return self._message(
            f"INVITE sip:{self.callee_user}@{self.callee.ip} SIP/2.0", f"{number} INVITE",
            to_tag=False, body=body, headers=headers,
        )  # fmt: skip

    def response(self, code: int, reason: str, method: str = "INVITE", body: str = "",
                 cseq: int | None = None, to_tag: bool = True) -> bytes:  # fmt: skip
        number = self.cseq if cseq is None else cseq
        return self._message(
            f"SIP/2.0 {code} {reason}", f"{number} {method}", to_tag=to_tag and code > 100,
            body=body,
        )  # fmt: skip

    def request(
        self, method: str, cseq: int, body: str = "", *, from_callee: bool = False,
        ctype: str = "application/sdp", headers: tuple[str, ...] = (),
    ) -> bytes:  # fmt: skip
        target = self.caller if from_callee else self.callee
        return self._message(
            f"{method} sip:x@{target.ip} SIP/2.0", f"{cseq} {method}", to_tag=True, body=body,
            swap=from_callee, ctype=ctype, headers=headers,
        )  # fmt: skip

    def answer_to_callee(self, code: int, method: str, cseq: int, body: str = "") -> bytes:
        """A response sent by the caller to a request of the callee."""
        return self._message(f"SIP/2.0 {code} OK", f"{cseq} {method}", to_tag=True, body=body,
                             swap=True)  # fmt: skip


def dgram(at: int, src: Endpoint, dst: Endpoint, payload: bytes) -> Datagram:
    return Datagram(Timestamp(at), src, dst, Transport.UDP, payload)
