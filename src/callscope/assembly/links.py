"""Legs of one conversation: B2BUA legs, transfers, replaced dialogs share a conversation_id.

A city hall PBX is a B2BUA: a citizen's call arrives as one leg and leaves as another, with
another Call-ID. Counting both as offered calls is a KPI trap, so legs are linked:

* RFC 3891 Replaces: the new INVITE names the dialog it replaces (attended transfer, pickup);
* RFC 3515 REFER / RFC 3892 Referred-By: the INVITE the transferee sends after a REFER,
  recognised by its Referred-By or by the Refer-To target it calls, within a window;
* RFC 7989 Session-ID: B2BUAs that implement it give every leg the same session UUID;
* related Call-IDs: the same Call-ID with another From tag, or one Call-ID extending another
  at a separator (``abc`` and ``abc-b2b_1``);
* the B2BUA pattern: an INVITE sent from the address and port an unanswered leg's INVITE was
  sent to, shortly after it, with the same caller or callee number;
* media: two live calls whose SDPs name the same pair of endpoints (a B2BUA that moved the
  media between the phones), found by the endpoint map.

The conversation_id of a group is the Call-ID of its earliest leg.
"""

from __future__ import annotations

from collections import deque
from contextlib import suppress
from typing import Final

from callscope.assembly.call import Call
from callscope.core import Endpoint
from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage

__all__ = ["Links", "join"]

_SEPARATORS: Final = frozenset("-_.;:+~=")
_MIN_RELATED: Final = 8  # shorter Call-IDs are too likely to repeat by chance
_MAX_RECENT: Final = 4096  # remembered INVITE destinations / REFERs (bounded)
_RECENT_PER_DESTINATION: Final = 64  # latest legs remembered per INVITE destination


def join(a: Call, b: Call) -> None:
    """Put two legs in one conversation (the earliest leg's Call-ID names it)."""
    if a.group is b.group:
        return
    big, small = (a.group, b.group) if len(a.group) >= len(b.group) else (b.group, a.group)
    for call in small:
        call.group = big
    big.extend(small)
    first = min(big, key=lambda c: (c.dialog.started_at, c.key))
    for call in big:
        call.conversation_id = first.call_id


def call_id_stems(call_id: str) -> list[str]:
    """The parts of a Call-ID before and after each separator (at least 8 characters):
    a B2BUA's derived Call-ID extends the original at a separator (``abc`` -> ``abc-b2b_1``)."""
    stems = []
    for i, char in enumerate(call_id):
        if char in _SEPARATORS:
            if i >= _MIN_RELATED:
                stems.append(call_id[:i])
            if len(call_id) - i - 1 >= _MIN_RELATED:
                stems.append(call_id[i + 1 :])
    return stems


class _Refer:
    __slots__ = ("at", "call", "replaces", "target_user")

    def __init__(self, at: int, call: Call, target_user: str | None, replaces: str | None):
        self.at = at
        self.call = call
        self.target_user = target_user
        self.replaces = replaces


class Links:
    """Finds the conversation of each new leg (see the module docs)."""

    def __init__(self, *, b2bua_window_ns: int, transfer_window_ns: int) -> None:
        self._b2bua_ns = b2bua_window_ns
        self._transfer_ns = transfer_window_ns
        # a list, not a deque(maxlen=...): a deque takes a 64-slot block (~600 bytes) even
        # for one leg, and most destinations see one leg at a time
        self._by_invite_dst: dict[Endpoint, list[Call]] = {}
        self._sessions: dict[str, Call] = {}
        self._session_of: dict[int, str] = {}  # leg key -> the Session-ID it registered
        self._refers: deque[_Refer] = deque(maxlen=_MAX_RECENT)
        self._ids: dict[str, Call] = {}  # Call-ID -> latest leg
        self._stems: dict[str, Call] = {}  # stem of a Call-ID -> latest leg

    def new_leg(
        self, call: Call, invite: SipMessage, src: Endpoint, legs: dict[str, list[Call]]
    ) -> None:
        """Link a new leg to the conversation it belongs to, and remember it."""
        at = call.dialog.started_at
        try:
            self._replaces(call, invite, legs)
            self._referred(call, invite, at)
        except SipParseError as exc:
            call.count(exc.kind)
        for other in legs.get(call.call_id, ()):
            if other is not call:
                join(call, other)  # the same Call-ID with another From tag
        self._session(call, invite)
        stems = call_id_stems(call.call_id)
        self._related(call, at, stems)
        self._b2bua(call, src, at)
        recent = self._by_invite_dst.setdefault(call.invite_dst, [])
        recent.append(call)
        if len(recent) > _RECENT_PER_DESTINATION:
            del recent[0]
        if len(self._by_invite_dst) > _MAX_RECENT:
            del self._by_invite_dst[next(iter(self._by_invite_dst))]
        self._ids[call.call_id] = call
        for stem in stems:
            self._stems[stem] = call

    def refer(self, call: Call, refer: SipMessage, at: int) -> None:
        """A REFER in ``call`` (RFC 3515): a transfer to Refer-To may follow."""
        try:
            target = refer.refer_to
        except SipParseError as exc:
            call.count(exc.kind)
            return
        if target is None:
            return
        replaces = target.uri.header("Replaces")
        call.transfer_method = "refer"
        call.transfer_target = str(target.uri).partition("?")[0]
        user = target.uri.user.partition(";")[0] if target.uri.user else None
        replaced = replaces.partition(";")[0].strip() if replaces else None
        self._refers.append(_Refer(at, call, user, replaced))

    def forget(self, call: Call) -> None:
        """Drop what refers to a forgotten leg (its group keeps the conversation)."""
        recent = self._by_invite_dst.get(call.invite_dst)
        if recent is not None:
            with suppress(ValueError):
                recent.remove(call)
            if not recent:
                del self._by_invite_dst[call.invite_dst]
        for refer in [r for r in self._refers if r.call is call]:
            self._refers.remove(refer)
        uuid = self._session_of.pop(call.key, None)  # not a scan of every session
        if uuid is not None and self._sessions.get(uuid) is call:
            del self._sessions[uuid]
        if self._ids.get(call.call_id) is call:
            del self._ids[call.call_id]
        for stem in call_id_stems(call.call_id):
            if self._stems.get(stem) is call:
                del self._stems[stem]
        # the leg's group lists the leg itself: dropped here, the leg and the group are freed
        # as soon as their last reference goes (no cycle left for the collector); the group
        # still lists the leg for the legs that stay
        call.group = []

    # -- the rules ----------------------------------------------------------------------------

    def _replaces(self, call: Call, invite: SipMessage, legs: dict[str, list[Call]]) -> None:
        replaces = invite.replaces  # RFC 3891
        if replaces is None:
            return
        replaced = legs.get(replaces.call_id)
        if not replaced:
            return
        old = replaced[-1]
        join(call, old)
        call.transfer_method = "replaces"
        _relate(call, old)
        for refer in self._refers:
            if refer.replaces == replaces.call_id:
                join(call, refer.call)
                _relate(call, refer.call)
                call.transfer_target = refer.call.transfer_target

    def _referred(self, call: Call, invite: SipMessage, at: int) -> None:
        if call.transfer_method is not None:
            return
        referred_by = "referred-by" in invite.names  # RFC 3892
        to = invite.to
        user = to.uri.user.partition(";")[0] if to is not None and to.uri.user else None
        for refer in reversed(self._refers):
            if at - refer.at > self._transfer_ns or refer.call is call:
                continue
            if referred_by or (user is not None and user == refer.target_user):
                join(call, refer.call)
                call.transfer_method = "refer"
                call.transfer_target = refer.call.transfer_target
                _relate(call, refer.call)
                return

    def _session(self, call: Call, invite: SipMessage) -> None:
        value = invite.header("session-id")  # RFC 7989 8: local-uuid ;remote=...
        if not value:
            return
        uuid = value.partition(";")[0].strip().lower()
        if not uuid or set(uuid) == {"0"}:
            return
        other = self._sessions.get(uuid)
        if other is not None and other is not call:
            join(call, other)
        self._sessions[uuid] = call
        self._session_of[call.key] = uuid
        if len(self._sessions) > _MAX_RECENT:
            del self._sessions[next(iter(self._sessions))]

    def _related(self, call: Call, at: int, stems: list[str]) -> None:
        """A live leg whose Call-ID extends this one at a separator, or the reverse."""
        candidates = [self._stems.get(call.call_id)]
        candidates.extend(self._ids.get(stem) for stem in stems)
        for other in candidates:
            if (
                other is not None
                and other is not call
                and other.call_id != call.call_id
                and at - other.dialog.started_at <= self._b2bua_ns
            ):
                join(call, other)

    def _b2bua(self, call: Call, src: Endpoint, at: int) -> None:
        """An INVITE sent by the element an unanswered leg's INVITE went to, with the same
        caller or callee number, shortly after: the B2BUA's outgoing leg."""
        for other in reversed(self._by_invite_dst.get(src, ())):
            if at - other.dialog.started_at > self._b2bua_ns:
                break
            if other is call or other.call_id == call.call_id or other.answered:
                continue
            numbers = {other.caller.number, other.callee.number} - {None}
            if call.caller.number in numbers or call.callee.number in numbers:
                join(call, other)
                return


def _relate(call: Call, other: Call) -> None:
    if other.call_id not in call.related_call_ids:
        call.related_call_ids.append(other.call_id)
    if call.call_id not in other.related_call_ids:
        other.related_call_ids.append(call.call_id)
