"""INVITE dialogs as a passive recorder sees them (RFC 3261 12, 13, 17; RFC 3262, 3311, 3515).

Theory of operation
-------------------
One `InviteDialog` follows one call leg: the Call-ID and the caller's From tag of an initial
INVITE (one without a To tag). A recorder is not a party to the call, so it does not run the
transaction timers of RFC 3261 17; it classifies every message it sees into a `DialogInput`
and moves the leg through `TRANSITIONS[state][input] -> (next state, Action)`. A pair that is
missing from the table leaves the leg as it is: such a message is part of the call but
changes nothing the call record reports (an ACK, a PRACK, an INFO, a re-INVITE, a 200 OK
from a second fork, a CANCEL that crossed the 200 OK, a BYE after a 403...).

Who sent a message is decided by tags, not by addresses, so that it survives proxies and
mirror ports that show each message on several hops: a request whose From tag is the
caller's comes from the caller; a response carries the From of its request, so a response
whose From tag is the caller's comes from the callee (`Role`).

Messages seen before (retransmissions, the same message on another hop, a HEP copy of a
mirrored packet) are recognised by sender, method or status code, CSeq and To tag, and are
reported as duplicates: they never move the state again, so every time comes from the
first copy.

Authentication (RFC 3261 22.2): a 401/407 to the initial INVITE puts the leg in CHALLENGED;
the retried INVITE (same Call-ID and From tag, new CSeq) brings it back to CALLING: still one
call. A leg left CHALLENGED is settled by `settle` as failed with the challenge's code.
Responses count for the initial INVITE only if they answer a CSeq of an INVITE without a To
tag sent by the caller; final failures of superseded CSeqs are ignored, a 2xx to any of them
answers the call (RFC 3261 13.2.2.4: the 2xx wins).

Results follow the call-record contract: busy 486/600, no_answer 408/480 (or a timeout),
cancelled CANCEL/487 (or the caller's BYE before an answer, RFC 3261 15), declined 603,
failed any other final >= 300, answered a 2xx, in_progress when nothing final was seen.
"""

from __future__ import annotations

import enum
from typing import Final

from callscope.core import Endpoint
from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage

__all__ = [
    "TRANSITIONS",
    "Action",
    "DialogInput",
    "DialogState",
    "InviteDialog",
    "Role",
    "result_for_code",
]


class DialogState(enum.Enum):
    """Where a call leg is (RFC 3261 12, 13; the recorder's view of the INVITE transaction)."""

    CALLING = "calling"  # initial INVITE sent, nothing back yet (RFC 3261 17.1.1.2)
    PROCEEDING = "proceeding"  # 100 Trying
    EARLY = "early"  # 101-199 received: ringing or early media (RFC 3261 12.1)
    CHALLENGED = "challenged"  # 401/407: a retried INVITE may follow (RFC 3261 22.2)
    CANCELLING = "cancelling"  # CANCEL sent: 487 or a crossing 2xx follows (RFC 3261 9.1)
    CONFIRMED = "confirmed"  # 2xx to the initial INVITE (RFC 3261 12.1.2)
    TERMINATED = "terminated"  # BYE, final failure, 487, or settled

    # members are singletons compared by identity: hash them by identity too, in C (Enum's
    # own __hash__ is a Python call, and these key the lookups made for every message)
    __hash__ = object.__hash__


class DialogInput(enum.Enum):
    """What a message means to the leg."""

    INVITE = "initial INVITE"  # no To tag, new CSeq: first or retried after a challenge
    TRYING = "100"
    PROVISIONAL = "101-199"
    SUCCESS = "2xx"
    CHALLENGE = "401/407"
    REJECT = "300-699"
    CANCEL = "CANCEL"
    BYE = "BYE"
    OTHER = "other"  # ACK, PRACK, UPDATE, INFO, REFER, NOTIFY, re-INVITE and their answers

    __hash__ = object.__hash__  # as DialogState's


class Action(enum.Enum):
    """What a transition records on the leg (see `InviteDialog` attributes)."""

    NONE = "none"
    RETRY = "retry"  # a retried initial INVITE after a challenge
    RING = "ring"  # first 18x sets ringing_at
    ANSWER = "answer"  # first 2xx sets answered_at and final_code
    CHALLENGE = "challenge"  # 401/407 waits for a retry
    CANCEL = "cancel"  # CANCEL: ended_at and ended_by if no 2xx crosses it
    REJECT = "reject"  # final failure: final_code, ended_at
    CANCELLED = "cancelled"  # the final response that completes a CANCEL (usually 487)
    HANGUP = "hangup"  # BYE of a confirmed call
    ABANDON = "abandon"  # BYE before any answer (RFC 3261 15: the caller may do this)

    __hash__ = object.__hash__  # as DialogState's


class Role(enum.Enum):
    """The party that sent a message."""

    CALLER = "caller"
    CALLEE = "callee"

    __hash__ = object.__hash__  # as DialogState's

    @property
    def other(self) -> Role:
        """The other party."""
        return Role.CALLEE if self is Role.CALLER else Role.CALLER


_S = DialogState
_I = DialogInput
_A = Action

# Before any final answer the same inputs mean the same thing in CALLING, PROCEEDING and EARLY.
_SETUP: Final = {
    _I.PROVISIONAL: (_S.EARLY, _A.RING),
    _I.SUCCESS: (_S.CONFIRMED, _A.ANSWER),
    _I.CHALLENGE: (_S.CHALLENGED, _A.CHALLENGE),
    _I.REJECT: (_S.TERMINATED, _A.REJECT),
    _I.CANCEL: (_S.CANCELLING, _A.CANCEL),
    _I.BYE: (_S.TERMINATED, _A.ABANDON),
}

#: ``TRANSITIONS[state][input] -> (next state, action)``; a missing pair changes nothing.
TRANSITIONS: Final[dict[DialogState, dict[DialogInput, tuple[DialogState, Action]]]] = {
    _S.CALLING: {**_SETUP, _I.TRYING: (_S.PROCEEDING, _A.NONE)},
    _S.PROCEEDING: dict(_SETUP),
    _S.EARLY: dict(_SETUP),
    _S.CHALLENGED: {
        _I.INVITE: (_S.CALLING, _A.RETRY),
        # responses to a retried INVITE the capture missed
        _I.TRYING: (_S.PROCEEDING, _A.RETRY),
        _I.PROVISIONAL: (_S.EARLY, _A.RING),
        _I.SUCCESS: (_S.CONFIRMED, _A.ANSWER),
        _I.REJECT: (_S.TERMINATED, _A.REJECT),
    },
    _S.CANCELLING: {
        _I.PROVISIONAL: (_S.CANCELLING, _A.RING),
        _I.SUCCESS: (_S.CONFIRMED, _A.ANSWER),  # RFC 3261 9.1: the 2xx crossed the CANCEL
        _I.REJECT: (_S.TERMINATED, _A.CANCELLED),
        _I.CHALLENGE: (_S.TERMINATED, _A.CANCELLED),
        _I.BYE: (_S.TERMINATED, _A.CANCELLED),
    },
    _S.CONFIRMED: {_I.BYE: (_S.TERMINATED, _A.HANGUP)},
    _S.TERMINATED: {},
}

# contract results for final failure codes; every other code >= 300 is "failed"
_RESULTS: Final = {
    486: "busy",
    600: "busy",
    408: "no_answer",
    480: "no_answer",
    487: "cancelled",
    603: "declined",
}
_DUPLICATES_KEPT = 512  # a leg remembers this many message keys (retransmission filter)


def result_for_code(code: int) -> str:
    """The contract result of a final response code (2xx answered, see module docs)."""
    if 200 <= code < 300:
        return "answered"
    return _RESULTS.get(code, "failed")


class InviteDialog:
    """The state of one INVITE call leg (see the module docs); mutable, sans-IO.

    Times are int ns from the packets. ``ended_by`` is a `Role`, or the string ``"timeout"``
    after `timeout`. The leg keeps only what the call record needs, not the messages.
    """

    __slots__ = (
        "_caller_tags",
        "_cancel_role",
        "_invite_cseqs",
        "_min_via",
        "_seen",
        "answered_at",
        "auth_retries",
        "call_id",
        "callee_tags",
        "caller_src",
        "caller_tag",
        "cancel_at",
        "duplicates",
        "ended_at",
        "ended_by",
        "final_code",
        "last_at",
        "ringing_at",
        "started_at",
        "state",
    )

    def __init__(self, invite: SipMessage, at: int, src: Endpoint) -> None:
        """Start a leg from its initial INVITE (a request without a To tag).

        Raises `SipParseError` when the INVITE has no usable Call-ID or CSeq.
        """
        cseq = invite.cseq
        call_id = invite.call_id
        if cseq is None or not call_id:
            raise SipParseError("INVITE has no Call-ID or CSeq")
        from_ = invite.from_
        self.call_id: str = call_id
        self.caller_tag: str | None = from_.tag if from_ is not None else None
        self.caller_src = src
        self.callee_tags: list[str] = []
        self.state = DialogState.CALLING
        self.started_at = at
        self.last_at = at
        self.ringing_at: int | None = None
        self.answered_at: int | None = None
        self.ended_at: int | None = None
        self.cancel_at: int | None = None
        self.ended_by: Role | str | None = None
        self.final_code: int | None = None
        self.auth_retries = 0
        self.duplicates = 0
        self._cancel_role: Role | None = None
        self._caller_tags: tuple[str | None, ...] = (self.caller_tag,)
        self._invite_cseqs: list[int] = [cseq[0]]
        self._min_via = _via_count(invite)
        self._seen: dict[tuple[object, ...], None] = {_key(invite, Role.CALLER, cseq): None}

    # -- classification ----------------------------------------------------------------------

    def role_of(self, msg: SipMessage, src: Endpoint) -> Role:
        """Who sent ``msg``: by the caller's From tag, else by the INVITE's source address."""
        from_ = msg.from_
        tag = from_.tag if from_ is not None else None
        if tag is None or self.caller_tag is None:
            return Role.CALLER if src == self.caller_src else Role.CALLEE
        from_caller = tag in self._caller_tags  # From names the originator of the request
        if msg.method is not None:  # a request
            return Role.CALLER if from_caller else Role.CALLEE
        return Role.CALLEE if from_caller else Role.CALLER

    def adopt_caller_tag(self, tag: str) -> None:
        """The caller retried its INVITE with another From tag (against RFC 3261 22.2, but
        seen): messages with that tag are the caller's too."""
        if tag not in self._caller_tags:
            self._caller_tags = (*self._caller_tags, tag)

    def classify(self, msg: SipMessage, role: Role, cseq: tuple[int, str]) -> DialogInput:
        """The `DialogInput` of a message of this leg sent by ``role``."""
        method = msg.method
        if method is not None:  # a request
            kind = _REQUESTS.get(method, DialogInput.OTHER)
            if kind is DialogInput.INVITE:
                to = msg.to
                if role is Role.CALLEE or (to is not None and to.tag is not None):
                    return DialogInput.OTHER  # re-INVITE (RFC 3261 14)
            elif kind is DialogInput.CANCEL and role is Role.CALLEE:
                return DialogInput.OTHER
            return kind
        code = msg.status_code or 0
        number, method = cseq
        if method != "INVITE" or role is not Role.CALLEE or not self._initial(number, code):
            return DialogInput.OTHER
        if code >= 300 and _via_count(msg) > self._min_via:
            # a failure between a proxy and one of its forks (RFC 3261 16.7): the proxy may
            # still try another target; only what reaches the caller's hop ends the call
            return DialogInput.OTHER
        return _response_input(code)

    def _initial(self, number: int, code: int) -> bool:
        """Does a response with CSeq ``number`` answer an initial INVITE of this leg?"""
        if number in self._invite_cseqs:
            # a failure of a superseded INVITE (before a retry) is no longer the answer
            return code < 300 or number == self._invite_cseqs[-1]
        # an INVITE the capture missed: before the answer, nothing else can be answered
        return self.state not in (DialogState.CONFIRMED, DialogState.TERMINATED) and (
            number > self._invite_cseqs[-1]
        )

    # -- processing ----------------------------------------------------------------------------

    def receive(
        self, msg: SipMessage, at: int, src: Endpoint
    ) -> tuple[Role, DialogInput, Action, bool]:
        """Apply one message of this leg: ``(sender, input, action, duplicate)``.

        A duplicate (retransmission or copy from another hop) changes nothing. Raises
        `SipParseError` when the message has no usable CSeq.
        """
        cseq = msg.cseq
        if cseq is None:
            raise SipParseError("message has no CSeq")
        role = self.role_of(msg, src)
        if msg.method == "INVITE" and role is Role.CALLER:
            self._min_via = min(self._min_via, _via_count(msg))  # the hop nearest the caller
        key = _key(msg, role, cseq)
        if key in self._seen:
            self.duplicates += 1
            return role, DialogInput.OTHER, Action.NONE, True
        if len(self._seen) >= _DUPLICATES_KEPT:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = None
        self.last_at = at
        kind = self.classify(msg, role, cseq)
        if kind is DialogInput.INVITE and cseq[0] not in self._invite_cseqs:
            self._invite_cseqs.append(cseq[0])
        if role is Role.CALLEE and msg.status_code is not None:  # a response of the callee
            self._note_callee_tag(msg)
        found = TRANSITIONS[self.state].get(kind)
        if found is None:
            return role, kind, Action.NONE, False
        self.state, action = found
        if action is not Action.NONE:
            _APPLY[action](self, at, role, msg.status_code)
        return role, kind, action, False

    def _note_callee_tag(self, msg: SipMessage) -> None:
        to = msg.to
        tag = to.tag if to is not None else None
        if tag is not None and tag not in self.callee_tags:
            self.callee_tags.append(tag)  # RFC 3261 13.2.2.4: each fork has its own To tag

    def settle(self) -> bool:
        """End a leg left CHALLENGED (no retry came): failed with the challenge's code.

        Returns True if the leg was settled.
        """
        if self.state is not DialogState.CHALLENGED:
            return False
        self.state = DialogState.TERMINATED
        self.ended_by = Role.CALLEE
        return True

    def finish_cancel(self) -> bool:
        """End a leg whose CANCEL got no final answer in the capture: it is cancelled."""
        if self.state is not DialogState.CANCELLING:
            return False
        self.state = DialogState.TERMINATED
        self.ended_at = self.cancel_at
        self.ended_by = self._cancel_role
        return True

    def timeout(self, at: int) -> None:
        """End an open leg after a long silence of SIP and media (the fallback, never the rule)."""
        if self.state is DialogState.TERMINATED:
            return
        if self.state is DialogState.CHALLENGED:
            self.settle()
            return
        if self.state is DialogState.CANCELLING:
            self.finish_cancel()
            return
        self.state = DialogState.TERMINATED
        self.ended_at = at
        self.ended_by = "timeout"

    # -- results ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Not terminated (CHALLENGED and CANCELLING legs are still open)."""
        return self.state is not DialogState.TERMINATED

    @property
    def result(self) -> str:
        """The contract's ``result`` (see the module docs)."""
        if self.answered_at is not None:
            return "answered"
        if self.state is not DialogState.TERMINATED:
            return "in_progress"
        if self._cancel_role is not None:
            return "cancelled"
        if self.ended_by == "timeout":
            return "no_answer"
        if self.final_code is None:
            # RFC 3261 15: only the caller may end an early dialog with a BYE
            return "cancelled" if self.ended_by is Role.CALLER else "failed"
        return result_for_code(self.final_code)


_REQUESTS: Final = {
    "INVITE": DialogInput.INVITE,
    "CANCEL": DialogInput.CANCEL,
    "BYE": DialogInput.BYE,
}


def _response_input(code: int) -> DialogInput:
    """The input of a response to an initial INVITE."""
    if code == 100:
        return DialogInput.TRYING
    if code < 200:
        return DialogInput.PROVISIONAL
    if code < 300:
        return DialogInput.SUCCESS
    return DialogInput.CHALLENGE if code in (401, 407) else DialogInput.REJECT


def _via_count(msg: SipMessage) -> int:
    """Via hops of a message: a response has one more for each proxy it still has to cross."""
    return msg.via_count


def _key(msg: SipMessage, role: Role, cseq: tuple[int, str]) -> tuple[object, ...]:
    """What makes two copies of one message the same message (RFC 3261 17.2.3, 17.1.3).

    Failure responses keep their hop (Via count) apart: a fork's 480 to its proxy is not the
    480 the proxy forwards to the caller.
    """
    caller = role is Role.CALLER  # a bool hashes in C, an Enum member in Python
    method = msg.method
    if method is not None:  # a request
        return (caller, method, cseq)
    to = msg.to
    code = msg.status_code or 0
    hop = _via_count(msg) if code >= 300 else 0
    return (caller, code, cseq, to.tag if to is not None else None, hop)


# -- actions ----------------------------------------------------------------------------------


def _none(_leg: InviteDialog, _at: int, _role: Role, _code: int | None) -> None:
    return None


def _retry(leg: InviteDialog, _at: int, _role: Role, _code: int | None) -> None:
    leg.auth_retries += 1
    leg.final_code = None
    leg.ended_at = None


def _ring(leg: InviteDialog, at: int, _role: Role, _code: int | None) -> None:
    if leg.ringing_at is None:
        leg.ringing_at = at


def _answer(leg: InviteDialog, at: int, _role: Role, code: int | None) -> None:
    if leg.answered_at is None:
        leg.answered_at = at
        leg.final_code = code
    leg.ended_at = None
    leg.ended_by = None
    leg.cancel_at = None
    leg._cancel_role = None


def _challenge(leg: InviteDialog, at: int, _role: Role, code: int | None) -> None:
    leg.final_code = code
    leg.ended_at = at  # the end if no retry follows (settle)


def _cancel(leg: InviteDialog, at: int, role: Role, _code: int | None) -> None:
    leg.cancel_at = at
    leg._cancel_role = role


def _reject(leg: InviteDialog, at: int, _role: Role, code: int | None) -> None:
    leg.final_code = code
    leg.ended_at = at
    leg.ended_by = Role.CALLER if code == 487 else Role.CALLEE


def _cancelled(leg: InviteDialog, at: int, _role: Role, code: int | None) -> None:
    if code is not None and code >= 300:
        leg.final_code = code
    leg.ended_at = leg.cancel_at if leg.cancel_at is not None else at
    leg.ended_by = leg._cancel_role or Role.CALLER


def _hangup(leg: InviteDialog, at: int, role: Role, _code: int | None) -> None:
    leg.ended_at = at
    leg.ended_by = role


_APPLY: Final = {
    Action.NONE: _none,
    Action.RETRY: _retry,
    Action.RING: _ring,
    Action.ANSWER: _answer,
    Action.CHALLENGE: _challenge,
    Action.CANCEL: _cancel,
    Action.REJECT: _reject,
    Action.CANCELLED: _cancelled,
    Action.HANGUP: _hangup,
    Action.ABANDON: _hangup,
}
