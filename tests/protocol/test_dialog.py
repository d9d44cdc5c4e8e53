"""INVITE dialog state table: answers, failures, auth retries, CANCEL races, forks, copies."""

from __future__ import annotations

import pytest

from callscope.core import Endpoint
from callscope.protocol.dialog import (
    TRANSITIONS,
    Action,
    DialogInput,
    DialogState,
    InviteDialog,
    Role,
    result_for_code,
)
from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage

A = Endpoint("10.0.0.1", 5060)  # caller
P = Endpoint("10.0.0.9", 5060)  # proxy
B = Endpoint("10.0.0.2", 5060)  # callee
MS = 1_000_000


def msg(
    first: str,
    cseq: str,
    *,
    from_tag: str = "a1",
    to_tag: str | None = None,
    call_id: str = "call-1@x",
    swap: bool = False,
) -> SipMessage:
    """A minimal SIP message; ``swap`` puts the callee in From (a request from the callee)."""
    users = ("200", "100") if swap else ("100", "200")
    from_ = f"<sip:{users[0]}@x>;tag={from_tag}"
    to = f"<sip:{users[1]}@x>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{first}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{cseq.replace(' ', '')}\r\n"
        f"From: {from_}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return SipMessage.parse(text.encode())


INVITE = "INVITE sip:200@x SIP/2.0"


def start(at: int = 0) -> InviteDialog:
    return InviteDialog(msg(INVITE, "1 INVITE"), at, A)


def test_every_state_has_a_row_and_terminated_is_final() -> None:
    assert set(TRANSITIONS) == set(DialogState)
    assert TRANSITIONS[DialogState.TERMINATED] == {}
    assert TRANSITIONS[DialogState.EARLY][DialogInput.SUCCESS] == (
        DialogState.CONFIRMED,
        Action.ANSWER,
    )


def test_answered_call_hung_up_by_callee() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 100 Trying", "1 INVITE"), 1 * MS, B)
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b1"), 50 * MS, B)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b1"), 8000 * MS, B)
    leg.receive(msg("ACK sip:200@x SIP/2.0", "1 ACK", to_tag="b1"), 8010 * MS, A)
    role, kind, action, dup = leg.receive(
        msg("BYE sip:100@x SIP/2.0", "7 BYE", from_tag="b1", to_tag="a1", swap=True),
        9000 * MS,
        B,
    )
    assert (role, kind, action, dup) == (Role.CALLEE, DialogInput.BYE, Action.HANGUP, False)
    assert leg.state is DialogState.TERMINATED
    assert (leg.ringing_at, leg.answered_at, leg.ended_at) == (50 * MS, 8000 * MS, 9000 * MS)
    assert leg.ended_by is Role.CALLEE
    assert leg.result == "answered"
    assert leg.final_code == 200
    assert leg.callee_tags == ["b1"]


def test_retransmissions_and_proxy_copies_keep_the_first_times() -> None:
    leg = start()
    assert leg.receive(msg(INVITE, "1 INVITE"), 1 * MS, P)[3] is True  # proxy hop copy
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b1"), 40 * MS, B)
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b1"), 41 * MS, P)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b1"), 100 * MS, B)
    for i in range(3):  # 200 OK retransmissions (RFC 3261 13.3.1.4) and hop copies
        assert leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b1"), (101 + i) * MS, P)[3]
    leg.receive(msg("BYE sip:200@x SIP/2.0", "2 BYE", to_tag="b1"), 500 * MS, A)
    leg.receive(msg("BYE sip:200@x SIP/2.0", "2 BYE", to_tag="b1"), 501 * MS, P)
    assert (leg.ringing_at, leg.answered_at, leg.ended_at) == (40 * MS, 100 * MS, 500 * MS)
    assert leg.duplicates == 6
    assert leg.ended_by is Role.CALLER


def test_auth_retry_is_one_call_and_the_final_answer_counts() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 407 Proxy Authentication Required", "1 INVITE", to_tag="p"), MS, P)
    assert leg.state is DialogState.CHALLENGED
    leg.receive(msg("ACK sip:200@x SIP/2.0", "1 ACK", to_tag="p"), 2 * MS, A)
    leg.receive(msg(INVITE, "2 INVITE"), 3 * MS, A)
    assert leg.state is DialogState.CALLING
    leg.receive(msg("SIP/2.0 407 Proxy Authentication Required", "1 INVITE", to_tag="p"), 4, P)
    assert leg.state is DialogState.CALLING  # a late copy of the first challenge
    leg.receive(msg("SIP/2.0 488 Not Acceptable Here", "2 INVITE", to_tag="b"), 53 * MS, B)
    assert leg.result == "failed"
    assert leg.final_code == 488
    assert leg.auth_retries == 1
    assert (leg.started_at, leg.ended_at) == (0, 53 * MS)


def test_challenge_without_retry_settles_as_failed() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 401 Unauthorized", "1 INVITE", to_tag="p"), 5 * MS, P)
    assert leg.is_open
    assert leg.result == "in_progress"
    assert leg.settle() is True
    assert (leg.result, leg.final_code, leg.ended_at) == ("failed", 401, 5 * MS)
    assert leg.settle() is False


@pytest.mark.parametrize(
    ("code", "result"),
    [(486, "busy"), (600, "busy"), (480, "no_answer"), (408, "no_answer"), (603, "declined"),
     (404, "failed"), (503, "failed"), (302, "failed")],
)  # fmt: skip
def test_final_failures_map_to_contract_results(code: int, result: str) -> None:
    leg = start()
    leg.receive(msg(f"SIP/2.0 {code} X", "1 INVITE", to_tag="b"), 17 * MS, B)
    assert (leg.result, leg.final_code, leg.ended_at) == (result, code, 17 * MS)
    assert leg.ended_by is Role.CALLEE
    assert result_for_code(code) == result


def test_cancel_then_487_is_cancelled_at_the_cancel() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b"), 10 * MS, B)
    leg.receive(msg("CANCEL sip:200@x SIP/2.0", "1 CANCEL"), 3000 * MS, A)
    assert leg.result == "in_progress"
    leg.receive(msg("SIP/2.0 200 OK", "1 CANCEL", to_tag="b"), 3001 * MS, B)
    leg.receive(msg("SIP/2.0 487 Request Terminated", "1 INVITE", to_tag="b"), 3002 * MS, B)
    assert (leg.result, leg.final_code, leg.ended_at) == ("cancelled", 487, 3000 * MS)
    assert leg.ended_by is Role.CALLER


def test_cancel_without_final_response_is_cancelled_at_end_of_capture() -> None:
    leg = start()
    leg.receive(msg("CANCEL sip:200@x SIP/2.0", "1 CANCEL"), 700 * MS, A)
    assert leg.finish_cancel() is True
    assert (leg.result, leg.final_code, leg.ended_at) == ("cancelled", None, 700 * MS)


def test_a_2xx_crossing_the_cancel_answers_the_call() -> None:
    leg = start()
    leg.receive(msg("CANCEL sip:200@x SIP/2.0", "1 CANCEL"), 100 * MS, A)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b"), 101 * MS, B)
    assert leg.state is DialogState.CONFIRMED
    assert (leg.result, leg.ended_at, leg.answered_at) == ("answered", None, 101 * MS)


def test_same_call_id_reinvited_with_new_cseqs_and_late_cancels_stays_answered() -> None:
    """DTMFsipinfo.pcap: INVITE CSeq 1, 2, 3 without To tag; CANCELs after the 200 OK."""
    leg = start()
    leg.receive(msg(INVITE, "2 INVITE"), 60 * MS, A)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="s"), 90 * MS, B)
    leg.receive(msg(INVITE, "3 INVITE"), 128 * MS, A)
    leg.receive(msg("CANCEL sip:200@x SIP/2.0", "2 CANCEL"), 132 * MS, A)
    leg.receive(msg("SIP/2.0 200 OK", "2 INVITE", to_tag="s"), 150 * MS, B)
    leg.receive(msg("SIP/2.0 200 OK", "3 INVITE", to_tag="s"), 224 * MS, B)
    assert (leg.result, leg.answered_at, leg.ended_at, leg.state) == (
        "answered",
        90 * MS,
        None,
        DialogState.CONFIRMED,
    )


def test_forked_responses_are_one_call() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="f1"), 10 * MS, B)
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="f2"), 12 * MS, B)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="f2"), 900 * MS, B)
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="f1"), 901 * MS, B)
    assert leg.callee_tags == ["f1", "f2"]
    assert (leg.ringing_at, leg.answered_at) == (10 * MS, 900 * MS)


def test_bye_after_a_failure_does_not_answer() -> None:
    """sipp-branch-scenario: 180, 403, then a (non-RFC) BYE from the caller."""
    leg = start()
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b"), 1, B)
    leg.receive(msg("SIP/2.0 403 Forbidden", "1 INVITE", to_tag="b"), 4 * MS, B)
    leg.receive(msg("BYE sip:200@x SIP/2.0", "2 BYE", to_tag="b"), 5 * MS, A)
    leg.receive(msg("SIP/2.0 200 OK", "2 BYE", to_tag="b"), 6 * MS, B)
    assert (leg.result, leg.final_code, leg.ended_at) == ("failed", 403, 4 * MS)


def test_caller_bye_before_answer_is_cancelled() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b"), 1 * MS, B)
    leg.receive(msg("BYE sip:200@x SIP/2.0", "2 BYE", to_tag="b"), 5000 * MS, A)
    assert (leg.result, leg.final_code, leg.ended_at) == ("cancelled", None, 5000 * MS)
    assert leg.ended_by is Role.CALLER


def test_reinvite_from_the_callee_with_a_colliding_cseq_changes_nothing() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b"), 1 * MS, B)
    reinvite = msg(INVITE, "1 INVITE", from_tag="b", to_tag="a1", swap=True)
    assert leg.receive(reinvite, 2 * MS, B)[:2] == (Role.CALLEE, DialogInput.OTHER)
    answer = msg("SIP/2.0 491 Request Pending", "1 INVITE", from_tag="b", to_tag="a1", swap=True)
    assert leg.receive(answer, 3 * MS, A)[:2] == (Role.CALLER, DialogInput.OTHER)
    assert leg.state is DialogState.CONFIRMED


def test_failure_of_a_reinvite_does_not_end_the_call() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b"), 1 * MS, B)
    leg.receive(msg(INVITE, "2 INVITE", to_tag="b"), 2 * MS, A)
    leg.receive(msg("SIP/2.0 488 Not Acceptable", "2 INVITE", to_tag="b"), 3 * MS, B)
    assert leg.state is DialogState.CONFIRMED


def test_role_falls_back_to_the_invite_source_without_tags() -> None:
    text = (
        "INVITE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>\r\nTo: <sip:b@x>\r\nCall-ID: n\r\n"
        "CSeq: 1 INVITE\r\n\r\n"
    )
    leg = InviteDialog(SipMessage.parse(text.encode()), 0, A)
    bye = SipMessage.parse(
        text.replace("INVITE sip", "BYE sip").replace("1 INVITE", "2 BYE").encode()
    )
    assert leg.role_of(bye, B) is Role.CALLEE
    assert leg.role_of(bye, A) is Role.CALLER
    ringing = SipMessage.parse(text.replace("INVITE sip:b@x SIP/2.0", "SIP/2.0 180 R").encode())
    assert leg.role_of(ringing, B) is Role.CALLEE  # metasploit-sip-invite-spoof: no tags
    leg.receive(ringing, 5, B)
    assert leg.ringing_at == 5


def test_timeout_ends_open_calls_only_as_a_fallback() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 180 Ringing", "1 INVITE", to_tag="b"), 1 * MS, B)
    leg.timeout(600_000 * MS)
    assert (leg.result, leg.ended_by, leg.ended_at) == ("no_answer", "timeout", 600_000 * MS)
    answered = start()
    answered.receive(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="b"), 1 * MS, B)
    answered.timeout(9 * MS)
    assert (answered.result, answered.ended_by) == ("answered", "timeout")


def test_messages_without_cseq_raise_the_layer_error() -> None:
    bare = SipMessage.parse(b"INVITE sip:b@x SIP/2.0\r\nCall-ID: q\r\n\r\n")
    with pytest.raises(SipParseError, match=r"^INVITE has no Call-ID or CSeq$"):
        InviteDialog(bare, 0, A)
    leg = start()
    with pytest.raises(SipParseError, match=r"^message has no CSeq$"):
        leg.receive(SipMessage.parse(b"SIP/2.0 200 OK\r\nCall-ID: call-1@x\r\n\r\n"), 1, B)


def with_vias(message: SipMessage, extra: int) -> SipMessage:
    """The message as it looks one or more proxy hops further in (more Via headers)."""
    vias = "".join(f"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKp{i}\r\n" for i in range(extra))
    raw = message.raw.replace(b"\r\nVia:", ("\r\n" + vias + "Via:").encode(), 1)
    return SipMessage.parse(raw)


def test_a_fork_failing_behind_a_proxy_does_not_end_the_call() -> None:
    """Sequential forking seen on a mirror port: the proxy's INVITE to phone 1 gets 480,
    the proxy then rings phone 2 (same CSeq) which answers: one call, answered."""
    leg = start()  # the caller's INVITE, one Via
    leg.receive(with_vias(msg(INVITE, "1 INVITE"), 1), 1 * MS, P)  # proxy -> phone 1
    fork_failed = with_vias(msg("SIP/2.0 480 Unavailable", "1 INVITE", to_tag="p1"), 1)
    leg.receive(fork_failed, 20_000 * MS, B)
    assert leg.state is DialogState.CALLING
    leg.receive(with_vias(msg("SIP/2.0 200 OK", "1 INVITE", to_tag="p2"), 1), 25_000 * MS, B)
    assert (leg.result, leg.answered_at) == ("answered", 25_000 * MS)


def test_the_failure_on_the_callers_hop_ends_the_call() -> None:
    leg = start()
    leg.receive(with_vias(msg(INVITE, "1 INVITE"), 1), 1 * MS, P)
    leg.receive(with_vias(msg("SIP/2.0 486 Busy", "1 INVITE", to_tag="b"), 1), 5 * MS, B)
    assert leg.state is DialogState.CALLING
    leg.receive(msg("SIP/2.0 486 Busy", "1 INVITE", to_tag="b"), 6 * MS, P)  # proxy -> caller
    assert (leg.result, leg.final_code, leg.ended_at) == ("busy", 486, 6 * MS)


def test_a_retry_with_another_from_tag_is_adopted() -> None:
    leg = start()
    leg.receive(msg("SIP/2.0 407 Proxy Auth", "1 INVITE", to_tag="p"), 1 * MS, P)
    leg.adopt_caller_tag("a2")
    leg.receive(msg(INVITE, "2 INVITE", from_tag="a2"), 2 * MS, A)
    leg.receive(msg("SIP/2.0 200 OK", "2 INVITE", from_tag="a2", to_tag="b"), 3 * MS, B)
    assert (leg.result, leg.auth_retries) == ("answered", 1)
