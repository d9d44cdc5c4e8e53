"""Every SIP message in the real third-party captures parses, and agrees with tshark.

SIP is found by content (`looks_like_sip` on UDP, `SipFramer` on TCP), never by port, and
the counts are compared with tshark's ``sip,stat`` ground truth. The initial INVITE of
every call in ``*.calls.json`` must give the Call-ID, caller, callee and CSeq tshark saw,
and every RTP stream tshark tied to a setup frame must be described by that frame's SDP.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from callscope.protocol.errors import SipParseError
from callscope.protocol.multipart import body_part
from callscope.protocol.sdp import SessionDescription
from callscope.protocol.sip import SipDefect, SipMessage, looks_like_sip
from callscope.protocol.sipframing import SipFramer
from tests.protocol._pcap_walk import TCP, UDP, payloads

SIP_CAPTURES = [
    "Asterisk_ZFONE_XLITE.pcap",
    "DTMFsipinfo.pcap",
    "SIP_CALL_RTP_G711",
    "SIP_DTMF2.cap",
    "b2bua-asterisk.pcapng",
    "codec-negotiation.pcap",
    "h263-over-rtp.pcap",
    "invite-opus-bye.pcap",
    "metasploit-sip-invite-spoof.pcap",
    "register-invite-reinvite-bye.pcap",
    "rtp-protocol.pcap",
    "sip-488-codec-reject.pcapng",
    "sip-auth-failure.pcapng",
    "sip-over-tcp.pcap",
    "sip-proxy.pcap",
    "sip-register.pcap",
    "sip-routing-error.pcapng",
    "sip-rtp-g711.pcap",
    "sip-rtp-g722.pcap",
    "sip-rtp-g729a.pcap",
    "sip-rtp-opus-hybrid.pcap",
    "sip-sdp-example.pcap",
    "sipp-branch-scenario.pcapng",
]


def sip_messages(path: Path) -> list[tuple[int, SipMessage]]:
    """(frame, message) for every SIP message: UDP by content, TCP through a framer per flow."""
    found: list[tuple[int, SipMessage]] = []
    framers: dict[tuple[tuple[str, int], tuple[str, int]], SipFramer] = {}
    for payload in payloads(path):
        if payload.proto == UDP and looks_like_sip(payload.data):
            found.append((payload.frame, SipMessage.parse(payload.data)))
        elif payload.proto == TCP:
            framer = framers.setdefault((payload.src, payload.dst), SipFramer())
            found.extend((payload.frame, SipMessage.parse(m)) for m in framer.feed(payload.data))
    return found


def tshark_count(testdata: Path, name: str) -> int:
    text = (testdata / "pcap" / "ground_truth" / f"{name}.tshark.txt").read_text()
    match = re.search(r"Number of SIP messages: (\d+)", text)
    assert match is not None
    return int(match.group(1))


@pytest.mark.parametrize("name", SIP_CAPTURES)
def test_every_sip_message_parses_and_round_trips(testdata: Path, name: str) -> None:
    messages = sip_messages(testdata / "pcap" / name)
    assert len(messages) == tshark_count(testdata, name)
    for _, msg in messages:
        assert bytes(msg) == msg.raw
        assert msg.defects == ()
        assert msg.call_id
        assert msg.cseq is not None
        assert msg.from_ is not None and msg.to is not None
        assert msg.via and msg.via[0].host  # (the Metasploit spoof has no branch)
        assert msg.top_via == msg.via[0]
        assert (msg.from_tag, msg.to_tag) == (msg.from_.tag, msg.to.tag)
        assert msg.is_request != msg.is_response


@pytest.mark.parametrize("name", SIP_CAPTURES)
def test_initial_invites_match_tshark_calls(testdata: Path, name: str) -> None:
    truth = json.loads((testdata / "pcap" / "ground_truth" / f"{name}.calls.json").read_text())
    by_frame = dict(sip_messages(testdata / "pcap" / name))
    for call in truth["calls"]:
        invite = by_frame[call["invite_frame"]]
        assert invite.method == "INVITE"
        assert invite.call_id == call["call_id"]
        assert invite.from_ is not None and str(invite.from_.uri) == call["caller"]
        assert invite.to is not None and str(invite.to.uri) == call["callee"]
        # (tshark's invite_cseq is that of the last INVITE: auth retries count up)
        assert invite.cseq is not None and invite.cseq[1] == "INVITE"


@pytest.mark.parametrize("name", SIP_CAPTURES)
def test_rtp_streams_are_described_by_their_setup_sdp(testdata: Path, name: str) -> None:
    truth = json.loads((testdata / "pcap" / "ground_truth" / f"{name}.calls.json").read_text())
    by_frame = dict(sip_messages(testdata / "pcap" / name))
    for stream in truth["rtp_streams"]:
        if not stream.get("setup_frame") or stream["call_id"] is None:
            continue  # set up by something else (MGCP in SIP_CALL_RTP_G711) or not at all
        msg = by_frame[int(stream["setup_frame"])]
        assert msg.call_id == stream["call_id"]
        part = body_part(msg, "application/sdp")
        assert part is not None
        sdp = SessionDescription.parse(part.body)
        offered = {f"{m.address}:{m.port}" for m in sdp.media}
        assert offered & {stream["src"], stream["dst"]}
        media = next(
            m for m in sdp.media if f"{m.address}:{m.port}" in (stream["src"], stream["dst"])
        )
        for pt in stream["pts"]:
            if pt.isdigit():
                assert int(pt) in media.rtpmap


def test_sip_over_tcp_is_framed_by_content_length(testdata: Path) -> None:
    messages = sip_messages(testdata / "pcap" / "sip-over-tcp.pcap")
    assert [m.method or m.status_code for _, m in messages] == [
        "INVITE", 100, 180, 200, "ACK", "BYE", 200,
    ]  # fmt: skip
    assert all(m.via[0].transport == "TCP" for _, m in messages)


def test_protos_c07_every_payload_parses_or_raises_sip_parse_error(testdata: Path) -> None:
    outcomes: Counter[str] = Counter()
    methods: list[str] = []
    for payload in payloads(testdata / "pcap" / "c07-sip-r2.cap"):
        if payload.proto != UDP or payload.src[1] != 5060:
            continue  # NBNS noise
        try:
            msg = SipMessage.parse(payload.data)
        except SipParseError as error:
            outcomes[str(error)] += 1
        else:
            outcomes["parsed"] += 1
            methods.append(msg.method or "")
            assert msg.call_id and msg.cseq == (1, "INVITE")
    assert outcomes == {
        "parsed": 12,
        "not a SIP start line": 14,
        "bad request method": 11,
    }
    assert methods[0] == "INVITE"
    # the rest are absurd methods: valid tokens, but not SIP a mirror port should pick up
    assert {len(m) for m in methods[1:]} == {9, 17, 33, 65, 127, 128, 255, 513, 1270, 2049, 4099}
    assert not any(looks_like_sip(f"{m} sip:x SIP/2.0\r\n".encode()) for m in methods[1:])


def hep_sip_payloads(path: Path) -> list[bytes]:
    found = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("proto_type") == 1:
            found.append((record.get("payload") or record["payload_compressed"]).encode("utf-8"))
    return found


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("hep.pcap.hep.jsonl", 6),
        ("hep3_compressed.pcap.pcapng.hep.jsonl", 21),
        ("kamailio_5calls_hep_only.pcap.hep.jsonl", 65),
    ],
)
def test_hep_payloads_parse(testdata: Path, name: str, count: int) -> None:
    payloads_ = hep_sip_payloads(testdata / "hep" / name)
    assert len(payloads_) == count
    for data in payloads_:
        assert looks_like_sip(data)
        msg = SipMessage.parse(data)
        assert bytes(msg) == data
        assert msg.call_id and msg.cseq and msg.from_ and msg.via


def test_hepgen_payloads_have_lf_line_ends_and_short_bodies(testdata: Path) -> None:
    messages = [
        SipMessage.parse(d) for d in hep_sip_payloads(testdata / "hep" / "hep.pcap.hep.jsonl")
    ]
    assert all(SipDefect.BARE_LF in m.defects for m in messages)
    # hepgen computed Content-Length for CRLF line ends: the body is shorter than declared
    truncated = [
        (m.method, m.content_length, len(m.body))
        for m in messages
        if SipDefect.BODY_TRUNCATED in m.defects
    ]
    assert truncated == [("INVITE", 287, 276), ("PUBLISH", 450, 429)]
    invite = messages[0]
    assert invite.call_id == "qgf3dm9rudi@127.0.0.1"
    assert [m.status_code for m in messages[1:3]] == [100, 407]
