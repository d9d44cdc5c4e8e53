"""SIPREC sessions become call records of the real parties, channels from the metadata.

The datagrams are what the SIPREC listener hands over: the client's requests, the
recording server's responses (made by the real UAS) and RTP to the answered ports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.assembly.events import CallAnswered, CallEnded, CallEvent, CallStarted
from callscope.assembly.siprec import SiprecAssembler, SiprecConfig, SiprecTracker
from callscope.assembly.siprec_record import SiprecCallRecord
from callscope.core import Datagram, Endpoint, Timestamp, Transport
from callscope.protocol.sip import SipMessage
from callscope.protocol.siprec_session import Outgoing
from callscope.protocol.siprec_uas import RecordingServer
from tests.assembly._wire import Dialog, event, rtp, sdp
from tests.protocol._siprec_wire import as_invite, miarec_messages
from tests.protocol.test_siprec_uas import METADATA, SDP, Ports, multipart, request

SRC = Endpoint("192.0.2.1", 5060)
SRS = Endpoint("192.0.2.2", 5080)
S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2].parent / "shared/contracts/call-record.schema.json")
    .read_text(encoding="utf-8")
)  # fmt: skip


class Sink:
    """A MediaSink that keeps (call key, direction, seq) of every packet."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, int, int]] = []
        self.closed: list[int] = []

    def write(self, call_key: int, direction: int, at: int, ssrc: int, seq: int,
              timestamp: int, payload_type: int, marker: bool, payload: bytes) -> None:  # fmt: skip
        self.packets.append((call_key, direction, seq))

    def close_call(self, call_key: int) -> None:
        self.closed.append(call_key)


class Feed:
    """A recording server and an assembler joined like the capture layer joins them."""

    def __init__(self, assembler: SiprecAssembler | SiprecTracker | None = None) -> None:
        self.sink = Sink()
        self.ports = Ports()
        self.srs = RecordingServer(self.ports)
        self.assembler = assembler or SiprecAssembler(media_sink=self.sink)
        self.events: list[CallEvent] = []

    def feed(self, datagrams: Iterable[Datagram]) -> None:
        for dgram in datagrams:
            self.events.extend(self.assembler.receive(dgram))

    def sip(self, data: bytes, at: int) -> list[SipMessage]:
        """The client sends ``data``; the server's answers go back; all is fed."""
        grams = [Datagram(Timestamp(at), SRC, SRS, Transport.UDP, data, source="siprec")]
        actions = self.srs.receive(data, SRC, Transport.UDP, SRS, at)
        out = [a for a in actions if isinstance(a, Outgoing)]
        grams += [
            Datagram(Timestamp(at), SRS, a.dst, a.transport, a.data, source="siprec") for a in out
        ]
        self.feed(grams)
        return [SipMessage.parse(a.data) for a in out]

    def media(self, src_port: int, dst_port: int, count: int, at: int, ssrc: int) -> None:
        self.feed(
            Datagram(Timestamp(at + i * 20 * MS), Endpoint(SRC.ip, src_port),
                     Endpoint(SRS.ip, dst_port), Transport.UDP, rtp(i, i * 160, ssrc, pt=8),
                     source="siprec")
            for i in range(count)
        )  # fmt: skip

    def expire(self, now: int) -> None:
        self.events.extend(self.assembler.expire(now))

    def records(self) -> list[SiprecCallRecord]:
        found = [e.record for e in self.events if isinstance(e, CallEnded)]
        assert all(isinstance(r, SiprecCallRecord) for r in found)
        return found  # type: ignore[return-value]


def invite(body: bytes | None = None, call_id: str = "rec-1@192.0.2.1") -> bytes:
    return request(
        "INVITE", branch=f"z9hG4bK{call_id[:5]}", cseq=1,
        body=multipart() if body is None else body,
        ctype="multipart/mixed;boundary=b1", extra="Require: siprec\r\n", call_id=call_id,
    )  # fmt: skip


def run_call(feed: Feed, data: bytes | None = None, packets: int = 50) -> SiprecCallRecord:
    ok = feed.sip(invite(data), T0)[-1]
    assert ok.status_code == 200
    tag = ok.to_tag or ""
    feed.sip(request("ACK", branch="z9hG4bKack", cseq=1, to_tag=tag), T0 + MS)
    feed.media(6000, 40000, packets, T0 + 10 * MS, ssrc=0x1111)
    feed.media(6002, 40002, packets, T0 + 10 * MS, ssrc=0x2222)
    feed.sip(request("BYE", branch="z9hG4bKbye", cseq=2, to_tag=tag), T0 + 5 * S)
    feed.expire(T0 + 8 * S)
    (record,) = feed.records()
    return record


def test_parties_and_channels_come_from_the_metadata() -> None:
    feed = Feed()
    record = run_call(feed)
    kinds = [type(e) for e in feed.events]
    assert kinds == [CallStarted, CallAnswered, CallEnded]
    assert (record.caller.number, record.caller.display_name) == ("0312345678", "市民 花子")
    assert (record.callee.number, record.callee.display_name) == ("2001", "市民課 窓口")
    assert record.caller.uri == "sip:0312345678@pbx"
    assert (record.source, record.transport, record.result) == ("siprec", "udp", "answered")
    assert (record.started_at, record.answered_at, record.ended_at) == (T0, T0, T0 + 5 * S)
    assert record.ended_by == "unknown" and record.recording_status == "recorded"
    streams = {(s.direction, s.dst.port, s.packets, s.codec) for s in record.streams}
    assert streams == {
        ("caller_to_callee", 40000, 50, "PCMA"),
        ("callee_to_caller", 40002, 50, "PCMA"),
    }
    channels = {(key, direction) for key, direction, _seq in feed.sink.packets}
    assert channels == {(record.call_key, 0), (record.call_key, 1)}
    assert len(feed.sink.packets) == 100 and feed.sink.closed == [record.call_key]
    contract = record.to_contract()
    jsonschema.validate(contract, SCHEMA)
    siprec = contract["siprec"]
    assert siprec["schema"] == "rfc7865" and siprec["sessions"][0]["session_id"] == "cs1"
    assert [(p["number"], p["role"], p["sends"]) for p in siprec["participants"]] == [
        ("0312345678", "caller", ["1"]),
        ("2001", "callee", ["2"]),
    ]
    assert siprec["streams"] == [
        {"label": "1", "direction": "caller_to_callee"},
        {"label": "2", "direction": "callee_to_caller"},
    ]
    assert [e.label for e in record.ladder] == ["INVITE", "100 Trying", "200 OK", "ACK", "BYE",
                                                 "200 OK"]  # fmt: skip
    assert record.anomalies == ()


def test_the_callee_first_in_sonus_metadata_still_goes_right(testdata: Path) -> None:
    # Sonus: participant 8500 (the calling party in callData) sends label 2
    body = (testdata / "siprec" / "drachtio" / "sonus-siprec-offer.txt").read_bytes().lstrip()
    feed = Feed()
    ok = feed.sip(as_invite(body), T0)[-1]
    ports = [
        int(line.split()[1]) for line in ok.body.decode().splitlines() if line.startswith("m=")
    ]
    assert ports == [40000, 40002]
    feed.feed(
        Datagram(Timestamp(T0 + i * 20 * MS),
                 Endpoint("172.16.169.132", 48932 if port == 40000 else 48926),
                 Endpoint(SRS.ip, port), Transport.UDP, rtp(i, i * 160, port), source="siprec")
        for i in range(20) for port in ports
    )  # fmt: skip
    record = feed.assembler.finish()[0].record  # type: ignore[union-attr]
    assert (record.caller.number, record.caller.display_name) == ("2249888500", "Extension 8500")
    assert record.callee.number == "2249888012" and record.callee.display_name is None
    by_port = {s.dst.port: s.direction for s in record.streams}
    assert by_port == {40000: "callee_to_caller", 40002: "caller_to_callee"}
    assert record.result == "answered" and record.ended_at is None and record.ended_by is None


def test_acme_calling_flag_and_metaswitch_mixed_stream(testdata: Path) -> None:
    acme = (testdata / "siprec" / "drachtio" / "acme-siprec-offer.txt").read_bytes().lstrip()
    feed = Feed()
    feed.sip(as_invite(acme), T0)
    feed.media(20106, 40000, 5, T0, ssrc=1)
    feed.media(20110, 40002, 5, T0, ssrc=2)
    (ended,) = feed.assembler.finish()
    record = ended.record  # type: ignore[union-attr]
    assert (record.caller.number, record.callee.number) == ("9000", "1002")
    assert {s.dst.port: s.direction for s in record.streams} == {
        40000: "caller_to_callee",
        40002: "callee_to_caller",
    }
    metaswitch = dict(miarec_messages(testdata))["16_basic_call_inbound.1.sipp-template.txt"]
    feed = Feed()
    feed.sip(metaswitch, T0)
    feed.media(6000, 40000, 5, T0, ssrc=3)
    record = feed.assembler.finish()[0].record  # type: ignore[union-attr]
    assert (record.caller.number, record.callee.number) == ("7602922416", "7602922410")
    assert [s.direction for s in record.streams] == ["caller_to_callee"]
    assert dict(record.anomalies) == {"siprec.mixed_stream": 1}


def test_without_stream_associations_the_label_order_decides(testdata: Path) -> None:
    body = (testdata / "siprec" / "drachtio" / "connectel-offer.txt").read_bytes().lstrip()
    feed = Feed()
    feed.sip(as_invite(body), T0)
    feed.media(35012, 40002, 3, T0, ssrc=2)  # the second label's packets come first
    feed.media(35011, 40000, 3, T0, ssrc=1)
    record = feed.assembler.finish()[0].record  # type: ignore[union-attr]
    assert (record.caller.number, record.callee.number) == ("0771121212", "0760516936")
    assert {s.dst.port: s.direction for s in record.streams} == {
        40000: "caller_to_callee",
        40002: "callee_to_caller",
    }
    assert dict(record.anomalies) == {"siprec.direction_guessed": 2}


def test_reinvite_adds_a_stream_and_partial_metadata() -> None:
    feed = Feed()
    tag = feed.sip(invite(), T0)[-1].to_tag or ""
    feed.sip(request("ACK", branch="z9hG4bKa", cseq=1, to_tag=tag), T0)
    third = (
        '<?xml version="1.0"?><recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        "<datamode>partial</datamode>"
        '<participant participant_id="p3"><nameID aor="sip:3003@pbx"><name>転送先</name>'
        '</nameID></participant><stream stream_id="s3"><label>3</label></stream>'
        '<participantstreamassoc participant_id="p3"><send>s3</send></participantstreamassoc>'
        "</recording>"
    )
    sdp3 = SDP + "m=audio 6004 RTP/AVP 8\r\na=label:3\r\na=sendonly\r\n"
    reinvite = request(
        "INVITE", branch="z9hG4bKre", cseq=2, to_tag=tag, body=multipart(sdp3, third),
        ctype="multipart/mixed;boundary=b1",
    )  # fmt: skip
    assert [m.status_code for m in feed.sip(reinvite, T0 + S)] == [100, 200]
    feed.media(6004, 40004, 4, T0 + 2 * S, ssrc=3)
    feed.sip(request("BYE", branch="z9hG4bKb", cseq=3, to_tag=tag), T0 + 3 * S)
    feed.expire(T0 + 10 * S)
    (record,) = feed.records()
    # a third party's stream: the label's place (third) sends it to the right channel
    assert [(s.dst.port, s.direction) for s in record.streams] == [(40004, "callee_to_caller")]
    assert dict(record.anomalies) == {"siprec.direction_guessed": 1}
    participants = record.siprec["participants"]
    assert [(p["number"], p["role"]) for p in participants] == [
        ("0312345678", "caller"), ("2001", "callee"), ("3003", None),
    ]  # fmt: skip


def test_refused_and_cancelled_sessions() -> None:
    feed = Feed()
    plain = request("INVITE", branch="z9hG4bKp", cseq=1, body=SDP.encode(),
                    ctype="application/sdp").replace(b";+sip.src", b"")  # fmt: skip
    assert [m.status_code for m in feed.sip(plain, T0)] == [488]
    assert feed.events == [] and feed.assembler.finish() == []
    feed = Feed()
    feed.ports.free.clear()  # nothing to give: 503
    assert [m.status_code for m in feed.sip(invite(), T0)] == [503]
    feed.expire(T0 + 5 * S)
    (record,) = feed.records()
    assert (record.result, record.final_code, record.ended_at) == ("failed", 503, T0)
    assert record.recording_status == "no_media"
    jsonschema.validate(record.to_contract(), SCHEMA)


def test_idle_session_ends_by_timeout() -> None:
    feed = Feed(SiprecAssembler(SiprecConfig(idle_timeout_ns=60 * S)))
    feed.sip(invite(), T0)
    feed.media(6000, 40000, 10, T0, ssrc=1)
    feed.expire(T0 + 30 * S)
    assert feed.records() == []
    feed.expire(T0 + 61 * S)
    (record,) = feed.records()
    assert record.ended_by == "timeout" and record.ended_at == T0 + 9 * 20 * MS
    assert dict(record.anomalies) == {"siprec.idle_timeout": 1}


def test_dtmf_in_a_channel_and_unknown_ports() -> None:
    feed = Feed()
    tag = feed.sip(invite(), T0)[-1].to_tag or ""
    feed.feed(
        Datagram(Timestamp(T0 + i * 20 * MS), Endpoint(SRC.ip, 6002), Endpoint(SRS.ip, 40002),
                 Transport.UDP, event(i, 800, 9, 5, end=i >= 2, duration=160 * (i + 1)),
                 source="siprec")
        for i in range(4)
    )  # fmt: skip
    feed.media(6000, 41000, 3, T0, ssrc=5)  # a port no session was given
    feed.sip(request("BYE", branch="z9hG4bKb", cseq=2, to_tag=tag), T0 + S)
    feed.expire(T0 + 5 * S)
    (record,) = feed.records()
    assert [(d.digit, d.direction) for d in record.dtmf] == [("5", "callee_to_caller")]
    assert feed.assembler.anomalies == {"siprec.rtp_unknown_port": 3}


def test_tracker_keeps_mirror_traffic_and_shares_its_keys() -> None:
    tracker = SiprecTracker()
    feed = Feed(tracker)
    call = Dialog()
    started = tracker.receive(
        Datagram(
            Timestamp(T0),
            call.caller,
            call.callee,
            Transport.UDP,
            call.invite(sdp("10.0.0.1", 7000)),
        )
    )
    assert [type(e) for e in started] == [CallStarted]
    feed.sip(invite(), T0 + 1)
    keys = [e.call_key for e in [*started, *feed.events] if isinstance(e, CallStarted)]
    assert len(set(keys)) == 2 and tracker.open_calls == 2
    ended = tracker.finish()
    assert {e.record.source for e in ended if isinstance(e, CallEnded)} == {"pcap", "siprec"}
    assert tracker.anomalies() == tracker.siprec.anomalies | {}  # nothing odd on either side


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["invite", "ack", "bye", "rtp", "garbage", "cancel"]),
                  st.binary(max_size=12), st.integers(0, 5)),
        max_size=15,
    )
)  # fmt: skip
def test_fuzz_assembler_never_crashes(steps: list[tuple[str, bytes, int]]) -> None:
    feed = Feed()
    now = T0
    for kind, noise, wait in steps:
        now += wait * S
        if kind == "invite":
            feed.sip(invite()[: 200 + len(noise) * 40] + noise, now)
        elif kind == "ack":
            feed.sip(request("ACK", branch="z9hG4bKa", cseq=1, to_tag="cs1") + noise, now)
        elif kind == "bye":
            feed.sip(request("BYE", branch="z9hG4bKb", cseq=2, to_tag="cs1"), now)
        elif kind == "cancel":
            feed.sip(request("CANCEL", branch="z9hG4bKrec-1", cseq=1), now)
        elif kind == "rtp":
            feed.feed([Datagram(Timestamp(now), SRC, Endpoint(SRS.ip, 40000), Transport.UDP,
                                b"\x80" + noise + bytes(12), source="siprec")])  # fmt: skip
        else:
            feed.feed([Datagram(Timestamp(now), SRC, SRS, Transport.UDP, noise, source="siprec")])
        feed.expire(now)
    feed.events.extend(feed.assembler.finish())
    for record in feed.records():
        jsonschema.validate(record.to_contract(), SCHEMA)
    assert METADATA  # the shared sample stays in use
