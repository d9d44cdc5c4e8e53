"""Call tracker behaviour on built traffic: events, media sink, hold, timeouts, transfers,
probation, early media, encryption, port reuse and bad input as anomalies."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from callscope.assembly import tracker as tracker_module
from callscope.assembly.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    CallStarted,
    StreamDirection,
)
from callscope.assembly.records import CallRecord
from callscope.assembly.tracker import CallTracker, TrackerConfig
from callscope.core import Datagram, Endpoint
from tests.assembly._wire import ALICE, BOB, CAROL, MS, Dialog, S, dgram, event, rtp, sdp

A_MEDIA = Endpoint("10.0.0.1", 4000)
B_MEDIA = Endpoint("10.0.0.2", 6000)


@dataclass
class Sink:
    packets: list[tuple[int, int, int, int]] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)

    def write(self, call_key: int, direction: int, at: int, ssrc: int, seq: int,
              timestamp: int, payload_type: int, marker: bool, payload: bytes) -> None:  # fmt: skip
        assert call_key not in self.closed
        self.packets.append((call_key, direction, seq, len(payload)))

    def close_call(self, call_key: int) -> None:
        self.closed.append(call_key)


def run(
    datagrams: list[Datagram], tracker: CallTracker | None = None
) -> tuple[list[CallEvent], list[CallRecord], CallTracker]:
    tracker = tracker or CallTracker()
    events: list[CallEvent] = []
    for d in datagrams:
        events.extend(tracker.receive(d))
    events.extend(tracker.finish())
    return events, [e.record for e in events if isinstance(e, CallEnded)], tracker


def media(
    start: int, count: int, src: Endpoint, dst: Endpoint, ssrc: int, seq: int = 1
) -> list[Datagram]:
    return [
        dgram(start + i * 20 * MS, src, dst, rtp(seq + i, 160 * (seq + i), ssrc))
        for i in range(count)
    ]


def basic_call(d: Dialog | None = None, *, bye_at: int = 5 * S) -> list[Datagram]:
    d = d or Dialog()
    return [
        dgram(0, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000))),
        dgram(10 * MS, BOB, ALICE, d.response(180, "Ringing")),
        dgram(2 * S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
        dgram(2 * S + 10 * MS, ALICE, BOB, d.request("ACK", 1)),
        *media(2 * S + 20 * MS, 50, A_MEDIA, B_MEDIA, 0xAAAA),
        *media(2 * S + 25 * MS, 50, B_MEDIA, A_MEDIA, 0xBBBB),
        dgram(bye_at, BOB, ALICE, d.request("BYE", 100, from_callee=True)),
        dgram(bye_at + MS, ALICE, BOB, d.answer_to_callee(200, "BYE", 100)),
    ]


def test_events_in_order_and_the_record() -> None:
    events, records, _ = run(basic_call())
    assert [type(e) for e in events] == [CallStarted, CallRinging, CallAnswered, CallEnded]
    record = records[0]
    assert (record.result, record.final_code, record.ended_by) == ("answered", 200, "callee")
    assert (record.setup_seconds, record.ring_seconds, record.talk_seconds) == (2.0, 1.99, 3.0)
    assert (record.caller.number, record.callee.number) == ("0312345678", "1001")
    assert record.hold_seconds == 0.0
    streams = {(s.direction, str(s.src), str(s.dst)): s.packets for s in record.streams}
    assert streams == {
        ("caller_to_callee", "10.0.0.1:4000", "10.0.0.2:6000"): 50,
        ("callee_to_caller", "10.0.0.2:6000", "10.0.0.1:4000"): 50,
    }
    assert record.early_media is False


def test_call_ended_comes_after_the_linger_by_packet_time_or_expire() -> None:
    tracker = CallTracker(TrackerConfig(end_linger_ns=2 * S))
    for d in basic_call():
        tracker.receive(d)
    assert tracker.expire(5 * S + S) == []
    ended = tracker.expire(7 * S + MS)
    assert [type(e) for e in ended] == [CallEnded]
    assert tracker.finish() == []  # nothing left open


def test_an_emitted_leg_keeps_only_what_late_messages_need() -> None:
    """Until it is forgotten an emitted leg absorbs late messages; its streams, ladder and
    digits went into the record and are let go (thousands wait at once on a busy port)."""
    tracker = CallTracker()
    for d in basic_call():
        tracker.receive(d)
    (ended,) = tracker.expire(7 * S + MS)
    assert isinstance(ended, CallEnded)
    assert len(ended.record.streams) == 2 and len(ended.record.ladder) == 6
    (call,) = tracker._calls.values()
    assert call.emitted
    assert (call.streams, call.ladder, call.dtmf) == ({}, [], [])
    late = basic_call()[-1]  # the 200 OK to the BYE again, retransmitted
    assert tracker.receive(dgram(8 * S, late.src, late.dst, late.payload)) == []
    assert tracker.finish() == []


def test_an_invite_stamped_before_its_forgotten_dialog_ended_is_a_late_copy() -> None:
    """Time can step back (a capture merged out of order, a HEP agent's clock behind): the
    INVITE of a dialog already forgotten, stamped within its lifetime, is not a new call.
    The same INVITE stamped after the dialog was let go is one (a Call-ID used again)."""
    config = TrackerConfig(end_linger_ns=2 * S, forget_ns=32 * S)
    tracker = CallTracker(config)
    call = basic_call()
    events = [e for d in call for e in tracker.receive(d)]
    events += tracker.expire(5 * S + 2 * S + 32 * S + MS)  # emitted, then forgotten
    assert [type(e) for e in events] == [CallStarted, CallRinging, CallAnswered, CallEnded]
    assert tracker._legs == {}
    invite = call[0]
    for at in (0, 10 * S, 5 * S + 32 * S):  # up to the moment it was forgotten (end + 32 s)
        assert tracker.receive(dgram(at, invite.src, invite.dst, invite.payload)) == []
    assert tracker.anomalies()["sip.late_copy"] == 3
    again = tracker.receive(dgram(40 * S, invite.src, invite.dst, invite.payload))
    assert [type(e) for e in again] == [CallStarted]


def test_forgotten_dialogs_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "_MAX_GONE", 50)
    tracker = CallTracker()
    for d in _short_calls(200, 50 * MS):
        tracker.receive(d)
    tracker.expire(200 * 50 * MS + 120 * S)
    assert list(tracker._gone) == [f"short-{n}" for n in range(150, 200)]  # the newest


def test_media_sink_gets_audio_and_is_closed_before_the_end() -> None:
    sink = Sink()
    events, _, _ = run(basic_call(), CallTracker(media_sink=sink))
    key = events[0].call_key
    assert len(sink.packets) == 100
    assert {p[1] for p in sink.packets} == {
        StreamDirection.CALLER_TO_CALLEE,
        StreamDirection.CALLEE_TO_CALLER,
    }
    assert all(p[3] == 160 for p in sink.packets)  # payload without the RTP header
    assert sink.closed == [key]


def test_srtp_offer_marks_the_call_encrypted_and_writes_nothing() -> None:
    d = Dialog()
    crypto = (
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )
    sink = Sink()
    _, records, _ = run(
        [
            dgram(0, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000, extra=crypto))),
            dgram(S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000, extra=crypto))),
            *media(S + 10 * MS, 10, A_MEDIA, B_MEDIA, 1),
        ],
        CallTracker(media_sink=sink),
    )
    assert records[0].recording_status == "encrypted"
    assert sink.packets == []


def test_zrtp_on_the_media_port_marks_the_call_encrypted() -> None:
    d = Dialog()
    zrtp = b"\x10\x00\x00\x01ZRTP" + bytes(20)  # RFC 6189 5: magic cookie at octet 4
    _, records, _ = run(
        [
            dgram(0, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000))),
            dgram(S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
            dgram(S + MS, A_MEDIA, B_MEDIA, zrtp),
        ]
    )
    assert records[0].recording_status == "encrypted"


def test_hold_with_a_new_port_is_one_call_and_silence_on_hold_never_ends_it() -> None:
    d = Dialog()
    new_a = Endpoint("10.0.0.1", 4100)
    config = TrackerConfig(call_timeout_ns=30 * S, held_timeout_ns=3600 * S)
    traffic = [
        *basic_call(d, bye_at=200 * S)[:-2],
        # at 10 s the caller holds (sendonly); 60 s of silence on hold; unhold on a new port
        dgram(10 * S, ALICE, BOB, d.request("INVITE", 2, sdp("10.0.0.1", 4000, "sendonly"))),
        dgram(10 * S + MS, BOB, ALICE,
              d.response(200, "OK", body=sdp("10.0.0.2", 6000, "recvonly"), cseq=2)),
        dgram(70 * S, ALICE, BOB, d.request("INVITE", 3, sdp("10.0.0.1", 4100))),
        dgram(70 * S + MS, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000), cseq=3)),
        *media(70 * S + 10 * MS, 20, new_a, B_MEDIA, 0xCCCC),
        dgram(80 * S, ALICE, BOB, d.request("BYE", 4)),
    ]  # fmt: skip
    _, records, _ = run(traffic, CallTracker(config))
    assert len(records) == 1
    record = records[0]
    assert (record.result, record.ended_by) == ("answered", "caller")
    assert record.hold_seconds == pytest.approx(60.0, abs=0.01)
    assert record.talk_seconds == pytest.approx(78.0)
    flows = {(str(s.src), s.direction): s.packets for s in record.streams}
    assert flows[("10.0.0.1:4100", "caller_to_callee")] == 20
    assert flows[("10.0.0.1:4000", "caller_to_callee")] == 50
    ladder = [e.detail for e in record.ladder if e.detail]
    assert "SDP PCMU sendonly (hold)" in ladder


def test_silence_of_sip_and_rtp_ends_a_call_by_timeout_only_as_a_fallback() -> None:
    config = TrackerConfig(call_timeout_ns=30 * S)
    tracker = CallTracker(config)
    for d in basic_call()[:-2]:  # no BYE
        tracker.receive(d)
    last_rtp = 2 * S + 25 * MS + 49 * 20 * MS
    assert tracker.expire(last_rtp + 29 * S) == []
    ended = tracker.expire(last_rtp + 31 * S)
    record = ended[0].record  # type: ignore[union-attr]
    assert (record.result, record.ended_by, record.ended_at) == ("answered", "timeout", last_rtp)


def test_capture_end_leaves_calls_open_never_invented() -> None:
    _, records, _ = run(basic_call()[:-2])
    assert (records[0].result, records[0].ended_at, records[0].ended_by) == (
        "answered",
        None,
        None,
    )
    _, ringing, _ = run(basic_call()[:2])
    assert (ringing[0].result, ringing[0].setup_seconds, ringing[0].final_code) == (
        "in_progress",
        None,
        None,
    )


def test_early_media_is_kept_and_flagged() -> None:
    d = Dialog()
    traffic = [
        dgram(0, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000))),
        dgram(10 * MS, BOB, ALICE, d.response(183, "Session Progress", body=sdp("10.0.0.2", 6000))),
        *media(20 * MS, 10, B_MEDIA, A_MEDIA, 7),
        dgram(S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
        *media(S + 20 * MS, 10, B_MEDIA, A_MEDIA, 7, seq=11),
    ]
    _, records, _ = run(traffic)
    record = records[0]
    assert record.early_media is True
    assert [(s.packets, s.early) for s in record.streams] == [(20, True)]
    assert record.ringing_at == 10 * MS


def test_one_stray_packet_is_not_a_stream_but_a_real_stream_keeps_its_first_packet() -> None:
    d = Dialog()
    stranger = Endpoint("192.0.2.9", 7777)
    traffic = [
        dgram(0, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000))),
        dgram(S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
        dgram(S + MS, stranger, A_MEDIA, rtp(500, 0, 0x5757)),  # one stray packet
        # NAT: the callee's media comes from another port than its SDP says
        *media(2 * S, 5, Endpoint("10.0.0.2", 60000), A_MEDIA, 0xBBBB),
    ]
    _, records, tracker = run(traffic)
    streams = {str(s.src): (s.packets, s.first_at) for s in records[0].streams}
    assert streams == {"10.0.0.2:60000": (5, 2 * S)}
    assert dict(records[0].anomalies)["rtp.stray"] == 1
    assert tracker.orphan_streams() == []


def test_a_reused_port_belongs_to_the_newest_call() -> None:
    first = basic_call(Dialog(call_id="one"), bye_at=3 * S)
    second = [
        dgram(d.at + 10 * S, d.src, d.dst, d.payload)
        for d in basic_call(Dialog(call_id="two", from_tag="f2", to_tag="t2"))
    ]
    _, records, _ = run(first + second)
    packets = {r.call_id: sum(s.packets for s in r.streams) for r in records}
    assert packets == {"one": 100, "two": 100}


def test_rfc4733_digit_and_its_echo() -> None:
    d = Dialog()
    digit = [
        dgram(3 * S + i * 20 * MS, A_MEDIA, B_MEDIA,
              event(900 + i, 99_000, 0xAAAA, 5, i >= 3, 160 * i))
        for i in range(6)
    ]  # fmt: skip
    echo = [dgram(x.at + MS, B_MEDIA, A_MEDIA, x.payload) for x in digit]
    _, records, _ = run(basic_call(d)[:-2] + digit + echo)
    assert [(x.digit, x.direction, x.method) for x in records[0].dtmf] == [
        ("5", "caller_to_callee", "rfc4733")
    ]


def test_sip_info_digits_both_formats() -> None:
    d = Dialog()
    relay = d.request("INFO", 2, "Signal=*\r\nDuration=160\r\n", ctype="application/dtmf-relay")
    plain = d.request("INFO", 101, "11", from_callee=True, ctype="application/dtmf")
    _, records, _ = run(
        [*basic_call(d)[:4], dgram(3 * S, ALICE, BOB, relay), dgram(4 * S, BOB, ALICE, plain)]
    )
    assert [(x.digit, x.direction) for x in records[0].dtmf] == [
        ("*", "caller_to_callee"),
        ("#", "callee_to_caller"),
    ]


def test_blind_transfer_links_the_new_leg() -> None:
    ab = Dialog(call_id="ab")
    ac = Dialog(call_id="ac", callee=CAROL, callee_user="1003", from_tag="f9", to_tag="t9")
    refer = ab.request("REFER", 101, from_callee=True, headers=("Refer-To: <sip:1003@10.0.0.3>",))
    traffic = [
        *basic_call(ab, bye_at=20 * S)[:4],
        dgram(5 * S, BOB, ALICE, refer),
        dgram(5 * S + MS, ALICE, BOB, ab.answer_to_callee(202, "REFER", 101)),
        dgram(6 * S, ALICE, CAROL, ac.invite(headers=("Referred-By: <sip:1001@10.0.0.2>",))),
        dgram(7 * S, CAROL, ALICE, ac.response(200, "OK")),
        dgram(8 * S, BOB, ALICE, ab.request("BYE", 102, from_callee=True)),
    ]
    _, records, _ = run(traffic)
    by_id = {r.call_id: r for r in records}
    assert {r.conversation_id for r in records} == {"ab"}
    assert by_id["ab"].transfer is not None
    assert by_id["ab"].transfer.to_contract() == {
        "method": "refer",
        "target": "sip:1003@10.0.0.3",
        "related_call_ids": ["ac"],
    }
    assert by_id["ac"].transfer is not None
    assert by_id["ac"].transfer.related_call_ids == ("ab",)


def test_replaces_links_the_replaced_dialog() -> None:
    ab = Dialog(call_id="ab")
    cb = Dialog(call_id="cb", caller=CAROL, caller_user="1003", from_tag="f7", to_tag="t7")
    traffic = [
        *basic_call(ab, bye_at=20 * S)[:4],
        dgram(5 * S, CAROL, BOB, cb.invite(headers=("Replaces: ab;to-tag=tt1;from-tag=ft1",))),
    ]
    _, records, _ = run(traffic)
    assert {r.conversation_id for r in records} == {"ab"}
    new = next(r for r in records if r.call_id == "cb")
    assert new.transfer is not None
    assert (new.transfer.method, new.transfer.related_call_ids) == ("replaces", ("ab",))


def test_bad_input_becomes_anomalies_never_exceptions() -> None:
    d = Dialog()
    traffic = [
        dgram(0, ALICE, BOB, b"INVITE sip:x SIP/2.0\r\nCSeq: nonsense\r\nCall-ID: z\r\n\r\n"),
        dgram(1, ALICE, BOB, b"SIP/2.0 99x broken\r\n\r\n"),
        dgram(2, ALICE, BOB, d.invite("this is not sdp")),
        dgram(3, A_MEDIA, B_MEDIA, b"\x80\x00\x00"),  # too short for RTP
        dgram(4, A_MEDIA, B_MEDIA, b"\x90\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff"),
    ]
    _, records, tracker = run(traffic)
    anomalies = tracker.anomalies()
    assert anomalies["sip.parse"] >= 2
    assert anomalies["sdp.parse"] == 1
    assert [r.call_id for r in records] == ["c1@test"]


def test_a_long_run_forgets_finished_calls_and_idle_orphans() -> None:
    """Live recording runs for months: state of ended calls and idle flows must go away."""
    tracker = CallTracker()
    stray = Endpoint("192.0.2.50", 9000)
    for n in range(200):
        offset = n * 40 * S
        d = Dialog(call_id=f"call-{n}", from_tag=f"f{n}", to_tag=f"t{n}")
        for x in basic_call(d):
            tracker.receive(dgram(x.at + offset, x.src, x.dst, x.payload))
        for x in media(offset + 10 * S, 3, stray, Endpoint("192.0.2.51", 9000 + 2 * n), n):
            tracker.receive(x)
    ended = tracker.expire(200 * 40 * S + 120 * S)
    assert ended == []  # every call was emitted while the traffic went on
    assert tracker.open_calls == 0
    assert len(tracker._calls) == len(tracker._legs) == 0
    assert len(tracker._endpoints) == 0
    assert len(tracker._flows) == len(tracker._flows_at) == len(tracker._orphans) == 0
    assert len(tracker.orphan_streams()) == 200  # summaries kept for reports
    assert tracker.anomalies()["rtp.unpaired"] == 600


def _short_calls(count: int, gap: int) -> list[Datagram]:
    """``count`` answered calls without media, one every ``gap`` ns, each ended after 1 s."""
    out = []
    for n in range(count):
        d = Dialog(call_id=f"short-{n}", from_tag=f"f{n}", to_tag=f"t{n}")
        at = n * gap
        out += [
            dgram(at, ALICE, BOB, d.invite(sdp("10.0.0.1", 4000 + 2 * (n % 1000)))),
            dgram(at + 10 * MS, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
            dgram(at + 20 * MS, ALICE, BOB, d.request("ACK", 1)),
            dgram(at + S, ALICE, BOB, d.request("BYE", 2)),
            dgram(at + S + MS, BOB, ALICE, d.response(200, "OK", cseq="2 BYE")),
        ]
    return out


def test_timers_of_forgotten_calls_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """An answered call's silence check is queued two hours ahead and outlives the call;
    the queue drops such timers once it has doubled, and nothing else changes: the same
    events come out as with every stale timer kept."""
    traffic = _short_calls(6000, 50 * MS)  # 5 minutes: no silence check falls due

    def events_and_queue() -> tuple[list[CallEvent], int]:
        tracker = CallTracker()
        events = [e for d in traffic for e in tracker.receive(d)]
        events += tracker.expire(traffic[-1].at + 120 * S)
        return events, len(tracker._timers)

    events, queued = events_and_queue()
    assert sum(isinstance(e, CallEnded) and e.record.result == "answered" for e in events) == 6000
    assert queued <= tracker_module._STALE_TIMERS_SLACK + 100  # a few per open call
    monkeypatch.setattr(tracker_module, "_STALE_TIMERS_SLACK", 10**9)
    kept_events, kept = events_and_queue()
    assert kept >= 6000  # every call's silence check still queued
    assert kept_events == events


def test_an_ssrc_change_continues_the_stream_and_rtcp_is_counted_apart() -> None:
    d = Dialog()
    rtcp_rr = bytes([0x80, 201, 0, 1]) + (0xAAAA).to_bytes(4, "big")  # RFC 3550 6.4.2, empty RR
    traffic = [
        *basic_call(d, bye_at=9 * S)[:-2],
        *media(5 * S, 10, A_MEDIA, B_MEDIA, 0xDDDD, seq=30_000),  # new SSRC, new sequence
        dgram(6 * S, Endpoint("10.0.0.1", 4001), Endpoint("10.0.0.2", 6001), rtcp_rr),
    ]
    _, records, tracker = run(traffic)
    (forward,) = [s for s in records[0].streams if s.direction == "caller_to_callee"]
    assert forward.ssrcs == (0xAAAA, 0xDDDD)
    assert (forward.packets, forward.lost) == (60, 0)
    assert tracker.orphan_streams() == []
    assert "rtp.unpaired" not in tracker.anomalies()


def test_ipv6_media_pairs_by_the_canonical_address() -> None:
    d = Dialog()
    v6_sdp = sdp("10.0.0.1", 4000).replace("IN IP4 10.0.0.1", "IN IP6 2001:DB8:0:0::1")
    a6, b6 = Endpoint("2001:db8::1", 4000), Endpoint("2001:db8::2", 6000)
    traffic = [
        dgram(0, ALICE, BOB, d.invite(v6_sdp)),
        dgram(S, BOB, ALICE, d.response(200, "OK", body=sdp("10.0.0.2", 6000))),
        *media(S + 10 * MS, 5, b6, a6, 0xE6),
    ]
    _, records, _ = run(traffic)
    assert [(str(s.src), str(s.dst), s.packets) for s in records[0].streams] == [
        ("[2001:db8::2]:6000", "[2001:db8::1]:4000", 5)
    ]


def test_legs_with_one_session_id_share_a_conversation_until_forgotten() -> None:
    """RFC 7989: a B2BUA gives both legs one Session-ID; a forgotten leg links nothing."""
    session = ("Session-ID: ab0123456789abcdef0123456789abcd;remote=" + "0" * 32,)
    legs = [Dialog(call_id=f"leg{n}@test", from_tag=f"f{n}", caller=ALICE if n % 2 else CAROL)
            for n in range(3)]  # fmt: skip
    traffic = [
        dgram(0, ALICE, BOB, legs[0].invite(headers=session)),
        dgram(10 * MS, BOB, ALICE, legs[0].response(486, "Busy Here")),
        dgram(20 * MS, CAROL, BOB, legs[1].invite(headers=session)),
        dgram(30 * MS, BOB, CAROL, legs[1].response(486, "Busy Here")),
        # both legs forgotten (forget_ns after their end), then the same Session-ID again
        dgram(100 * S, ALICE, BOB, legs[2].invite(headers=session)),
        dgram(100 * S + 10 * MS, BOB, ALICE, legs[2].response(486, "Busy Here")),
    ]
    _events, records, _tracker = run(traffic)
    by_id = {r.call_id: r.conversation_id for r in records}
    assert by_id == {"leg0@test": "leg0@test", "leg1@test": "leg0@test", "leg2@test": "leg2@test"}
