"""The recording server's SIP user agent (the SRS side of RFC 7866), sans-IO.

Theory of operation
-------------------
`RecordingServer.receive(data, src, transport, local, at)` takes one SIP message as it
arrived and returns what to do, in order: `Outgoing` messages to send and session events
(`SessionStarted`, `SessionUpdated`, `SessionEnded`). `expire(now)` fires the timers.
Nothing here opens a socket or reads a clock; RTP ports come from a `PortAllocator` the
caller passes in (the capture layer binds them).

* A new INVITE that asks for recording (`is_siprec`) gets 100 Trying, then (after
  ``answer_delay_ns``, default at once) 200 OK with a ``recvonly`` SDP answering each
  recordable m= line with a port of its own; the 2xx is retransmitted (T1 doubling to T2)
  until the ACK, and the session ends after 64*T1 without one (RFC 3261 13.3.1.4).
* An INVITE that does not ask for recording gets 488 (a recorder takes part in no other
  session); one that Requires an option other than ``siprec`` gets 420 with Unsupported
  (RFC 3261 8.2.2.3); no free port or too many sessions gives 503 with Retry-After.
* re-INVITE and UPDATE (RFC 3311) carry new SDP, new or partial metadata (RFC 7866 6.3,
  RFC 7865 6.1.1): a label keeps its port, a new label gets one.
* BYE ends the session; CANCEL before the answer gives 487 (RFC 3261 9.2); OPTIONS 200 with
  Allow, Accept and Supported; other methods 405; requests in an unknown dialog 481.
* Retransmitted requests are answered from their server transaction (`siptransaction`).
* `terminate` ends a session from this side with a BYE (idle timeout, shutdown).

A session's state moves through `SESSION_TRANSITIONS`; ports are released when it ends.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from typing import NamedTuple

from callscope.core import Endpoint, Transport
from callscope.protocol.errors import ProtocolParseError
from callscope.protocol.sdp import SessionDescription
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipbuild import build_bye, build_response
from callscope.protocol.siprec_offer import RecordingBody, acceptable_formats, answer_sdp, is_siprec
from callscope.protocol.siprec_session import (
    ACCEPT,
    ALLOW,
    Action,
    EndReason,
    MediaLeg,
    Outgoing,
    PortAllocator,
    RecordingSession,
    Retransmission,
    SessionEnded,
    SessionInput,
    SessionStarted,
    SessionState,
    SessionUpdated,
    SrsConfig,
)
from callscope.protocol.siptransaction import T1_NS, T2_NS, ServerTransactions, transaction_key

__all__ = ["RecordingServer"]


class _NoPorts(Exception):
    """The port range is exhausted."""


class _Timer(enum.Enum):
    ANSWER = "answer"
    RETRANSMIT_2XX = "2xx"
    RETRANSMIT_BYE = "bye"


class RecordingServer:
    """The SRS user agent; see the module docs."""

    def __init__(self, ports: PortAllocator, config: SrsConfig | None = None) -> None:
        self.config = config or SrsConfig()
        self.ports = ports
        self.counters: dict[str, int] = {}
        self._tx = ServerTransactions()
        self._sessions: dict[int, RecordingSession] = {}
        self._dialogs: dict[tuple[str, str, str], RecordingSession] = {}
        self._by_invite: dict[tuple[str, ...], RecordingSession] = {}
        self._byes: dict[str, tuple[RecordingSession, Retransmission]] = {}
        self._timers: list[tuple[int, int, _Timer, object]] = []
        self._seq = 0
        self._next_key = 1

    @property
    def sessions(self) -> int:
        """Recording sessions not yet ended."""
        return len(self._sessions)

    def count(self, kind: str) -> None:
        self.counters[kind] = self.counters.get(kind, 0) + 1

    # -- input -------------------------------------------------------------------------------

    def receive(
        self, data: bytes, src: Endpoint, transport: Transport, local: Endpoint, at: int
    ) -> list[Action]:
        """One SIP message from ``src`` that arrived on ``local``; returns what to do."""
        actions: list[Action] = []
        try:
            msg = SipMessage.parse(data)
            if msg.is_response:
                self._response(msg)
            else:
                self._request(msg, _Arrival(src, transport, local, at), actions)
        except ProtocolParseError as exc:
            self.count(exc.kind)
        return actions

    def expire(self, now: int) -> list[Action]:
        """Fire the timers due by ``now``."""
        actions: list[Action] = [Outgoing(r.data, r.dst, r.transport) for r in self._tx.expire(now)]
        timers = self._timers
        while timers and timers[0][0] <= now:
            _due, _seq, kind, ident = heapq.heappop(timers)
            if kind is _Timer.RETRANSMIT_BYE:
                self._retransmit_bye(str(ident), now, actions)
            elif kind is _Timer.RETRANSMIT_2XX and isinstance(ident, Retransmission):
                session = self._sessions.get(ident.session)
                if session is not None and session.pending is ident:
                    self._retransmit_2xx(session, ident, now, actions)
            elif kind is _Timer.ANSWER and isinstance(ident, int):
                session = self._sessions.get(ident)
                if session is not None and session.state is SessionState.PENDING:
                    self._answer_initial(session, now, actions)
        return actions

    def terminate(self, session: int, at: int) -> list[Action]:
        """End a session from this side (BYE, or 503 before the answer)."""
        actions: list[Action] = []
        found = self._sessions.get(session)
        if found is not None:
            self._end_here(found, at, actions)
        return actions

    def close(self, at: int) -> list[Action]:
        """End every session (shutdown)."""
        actions: list[Action] = []
        for session in list(self._sessions.values()):
            self._end_here(session, at, actions)
        return actions

    # -- requests ------------------------------------------------------------------------

    def _request(self, msg: SipMessage, arrival: _Arrival, actions: list[Action]) -> None:
        src, transport, local, at = arrival
        if msg.method == "ACK":
            self._ack(msg, at)
            return
        key = transaction_key(msg)
        if key is None or msg.call_id is None or msg.from_ is None or msg.to is None:
            self.count("sip.bad_request")
            return
        if any(b"\r" in value for _name, value in msg.headers):
            # a CR inside a header (RFC 3261 7.3.1: only CRLF ends a line); a reply would copy
            # it (Via, Require into Unsupported) and be no SIP message either: left unanswered
            self.count("sip.bad_request")
            return
        tx = self._tx.get(key)
        if tx is not None:  # a retransmission (RFC 3261 17.2.1, 17.2.2)
            again = tx.retransmission()
            if again is not None:
                actions.append(Outgoing(again, tx.dst, tx.transport))
            return
        dst = _reply_address(msg, src, transport)
        self._tx.create(key, msg.method == "INVITE", dst, transport)
        context = _Context(msg, key, dst, transport, local, src, at, actions)
        unsupported = [t for t in msg.require if t.lower() != "siprec"]
        if unsupported and msg.method != "CANCEL":
            self._reply(context, 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
            return
        handler = _METHODS.get(msg.method or "")
        if handler is None:
            self._reply(context, 405, "Method Not Allowed", [("Allow", ALLOW)])
        else:
            handler(self, context)

    def _reply(
        self,
        ctx: _Context,
        code: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        session: RecordingSession | None = None,
        body: bytes = b"",
    ) -> bytes:
        extra = [("Server", self.config.user_agent), *(headers or [])]
        if session is not None and 200 <= code < 300:
            extra.append(("Contact", self._contact(session)))
        data = build_response(
            ctx.msg, code, reason,
            to_tag=session.local_tag if session is not None else self._tag(0),
            headers=extra, body=body,
            content_type="application/sdp" if body else None,
        )  # fmt: skip
        ctx.actions.append(Outgoing(data, ctx.dst, ctx.transport))
        self._tx.respond(ctx.key, data, code, ctx.at)
        return data

    def _invite(self, ctx: _Context) -> None:
        msg = ctx.msg
        if msg.to is not None and msg.to.tag is not None:
            session = self._in_dialog(ctx)
            if session is not None:
                self._reinvite(session, ctx)
            return
        if not is_siprec(msg):
            self.count("siprec.not_siprec")
            warning = f'399 {ctx.local.ip} "not a recording session (RFC 7866)"'
            self._reply(ctx, 488, "Not Acceptable Here", [("Warning", warning)])
            return
        body = RecordingBody.of(msg)
        if body.sdp is None:
            self.count("siprec.no_offer")
            self._reply(ctx, 488, "Not Acceptable Here", [("Accept", ACCEPT)])
            return
        if len(self._sessions) >= self.config.max_sessions:
            self.count("siprec.busy")
            self._reply(ctx, 503, "Service Unavailable", [("Retry-After", "10")])
            return
        session = self._new_session(ctx)
        try:
            self._negotiate(session, body.sdp)
        except _NoPorts:
            self._drop(session)
            self.count("siprec.no_ports")
            self._reply(ctx, 503, "Service Unavailable", [("Retry-After", "10")])
            return
        if not any(leg.port for leg in session.media):
            self._drop(session)
            self.count("siprec.nothing_to_record")
            self._reply(ctx, 488, "Not Acceptable Here", [("Accept", ACCEPT)])
            return
        session.metadata = body.metadata
        session.problems = body.problems
        self._reply(ctx, 100, "Trying")
        delay = self.config.answer_delay_ns
        if delay > 0:
            self._schedule(ctx.at + delay, _Timer.ANSWER, session.key)
        else:
            self._answer_initial(session, ctx.at, ctx.actions)

    def _new_session(self, ctx: _Context) -> RecordingSession:
        msg = ctx.msg
        key = self._next_key
        self._next_key += 1
        cseq = msg.cseq
        session = RecordingSession(
            key=key, invite=msg, call_id=msg.call_id or "",
            remote_tag=msg.from_tag or "", local_tag=self._tag(key), src=ctx.src,
            transport=ctx.transport, local=ctx.local,
            remote_cseq=cseq[0] if cseq else 0, invite_tx=ctx.key,
        )  # fmt: skip
        self._sessions[key] = session
        self._dialogs[(session.call_id, session.remote_tag, session.local_tag)] = session
        self._by_invite[ctx.key] = session
        return session

    def _answer_initial(self, session: RecordingSession, at: int, actions: list[Action]) -> None:
        ctx = _Context(
            session.invite, session.invite_tx,
            _reply_address(session.invite, session.src, session.transport),
            session.transport, session.local, session.src, at, actions,
        )  # fmt: skip
        self._send_2xx(session, ctx)
        session.started = True
        actions.append(
            SessionStarted(
                session.key, session.call_id, at, session.media, session.metadata,
                session.problems,
            )
        )  # fmt: skip

    def _send_2xx(self, session: RecordingSession, ctx: _Context) -> None:
        data = self._reply(
            ctx, 200, "OK", [("Allow", ALLOW), ("Supported", "siprec")],
            session=session, body=session.answer,
        )  # fmt: skip
        cseq = ctx.msg.cseq
        pending = Retransmission(
            session.key, data, cseq[0] if cseq else 0, T1_NS, ctx.at + 64 * T1_NS
        )
        session.pending = pending
        session.move(SessionInput.ANSWER)
        self._schedule(ctx.at + T1_NS, _Timer.RETRANSMIT_2XX, pending)

    def _reinvite(self, session: RecordingSession, ctx: _Context) -> None:
        if session.state is SessionState.PENDING:
            # RFC 3261 14.2: an INVITE before the final response to the previous one
            self._reply(ctx, 500, "Server Internal Error", [("Retry-After", "1")])
            return
        self._reply(ctx, 100, "Trying")
        if self._apply(session, ctx) is not None:
            # an offerless re-INVITE gets the current description as an offer (14.2)
            self._send_2xx(session, ctx)

    def _update(self, ctx: _Context) -> None:
        session = self._in_dialog(ctx)
        if session is None:
            return
        offered = self._apply(session, ctx)
        if offered is not None:
            self._reply(ctx, 200, "OK", session=session, body=session.answer if offered else b"")

    def _apply(self, session: RecordingSession, ctx: _Context) -> bool | None:
        """The SDP and metadata of a re-INVITE or UPDATE: whether it had an SDP offer, or
        None when it was refused (503 sent)."""
        body = RecordingBody.of(ctx.msg)
        before = (session.media, session.metadata)
        if body.sdp is not None:
            try:
                self._negotiate(session, body.sdp)
            except _NoPorts:
                self.count("siprec.no_ports")
                self._reply(ctx, 503, "Service Unavailable", [("Retry-After", "10")])
                return None
        if body.metadata is not None:
            old = session.metadata
            session.metadata = body.metadata if old is None else old.merge(body.metadata)
        if (session.media, session.metadata) != before or body.problems:
            ctx.actions.append(
                SessionUpdated(session.key, ctx.at, session.media, session.metadata, body.problems)
            )
        return body.sdp is not None

    def _negotiate(self, session: RecordingSession, offer: SessionDescription) -> None:
        """Ports for the offer's m= lines (a label keeps its port) and the answer."""
        names = [m.label if m.label is not None else f"#{i}" for i, m in enumerate(offer.media)]
        wanted = list(
            dict.fromkeys(
                name
                for name, media in zip(names, offer.media, strict=True)
                if acceptable_formats(media, self.config.codecs) and name not in session.ports
            )
        )
        if wanted:
            allocated = self.ports.allocate(len(wanted))
            if allocated is None:
                raise _NoPorts
            session.ports.update(zip(wanted, allocated, strict=True))
        ports: list[int] = []
        legs: list[MediaLeg] = []
        for index, (name, media) in enumerate(zip(names, offer.media, strict=True)):
            port = (
                session.ports.get(name, 0) if acceptable_formats(media, self.config.codecs) else 0
            )
            ports.append(port)
            remote = Endpoint(media.address, media.port) if media.address else None
            payloads = {
                pt: (f.encoding, f.clock_rate, f.channels) for pt, f in media.rtpmap.items()
            }
            legs.append(
                MediaLeg(index, media.label, media.media, port, remote, payloads, media.direction)
            )
        answer = self._answer(session, offer, ports)
        if session.answer and _without_origin(answer) != _without_origin(session.answer):
            session.sdp_version += 1  # RFC 3264 8: a changed description gets a new version
            answer = self._answer(session, offer, ports)
        session.answer = answer
        session.media = tuple(legs)

    def _answer(
        self, session: RecordingSession, offer: SessionDescription, ports: list[int]
    ) -> bytes:
        return answer_sdp(
            offer, ports, address=self.config.media_address or session.local.ip,
            session_id=session.key, version=session.sdp_version, codecs=self.config.codecs,
        )  # fmt: skip

    def _bye(self, ctx: _Context) -> None:
        session = self._in_dialog(ctx)
        if session is None:
            return
        self._reply(ctx, 200, "OK", session=session)
        session.move(SessionInput.BYE)
        self._finish(session, ctx.at, EndReason.BYE, ctx.actions)

    def _cancel(self, ctx: _Context) -> None:
        invite_key = transaction_key(ctx.msg, "INVITE")
        session = self._by_invite.get(invite_key) if invite_key is not None else None
        if invite_key is None or self._tx.get(invite_key) is None:
            self._reply(ctx, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(ctx, 200, "OK")
        if session is None or session.state is not SessionState.PENDING:
            return  # the final response was sent already: CANCEL has no effect (9.2)
        invite_ctx = _Context(
            session.invite, invite_key, self._tx_dst(invite_key, ctx), ctx.transport,
            ctx.local, ctx.src, ctx.at, ctx.actions,
        )  # fmt: skip
        self._reply(invite_ctx, 487, "Request Terminated", session=session)
        session.move(SessionInput.CANCEL)
        self._drop(session)

    def _options(self, ctx: _Context) -> None:
        headers = [("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", "siprec")]
        session = None
        if ctx.msg.to is not None and ctx.msg.to.tag is not None:
            session = self._dialog_of(ctx.msg)
        self._reply(ctx, 200, "OK", headers, session=session)

    def _ack(self, msg: SipMessage, at: int) -> None:
        key = transaction_key(msg, "INVITE")
        if key is not None and self._tx.ack(key, at):
            return  # ACK of a non-2xx final response
        session = self._dialog_of(msg)
        cseq = msg.cseq
        if session is None or session.pending is None or cseq is None:
            self.count("sip.stray_ack")
            return
        if cseq[0] == session.pending.cseq:
            session.pending = None
            session.move(SessionInput.ACK)

    def _response(self, msg: SipMessage) -> None:
        """A response to our BYE stops its retransmissions."""
        via = msg.top_via
        branch = via.branch if via is not None else None
        if branch is not None and msg.status_code is not None and msg.status_code >= 200:
            self._byes.pop(branch, None)

    # -- dialogs and ends -------------------------------------------------------------------

    def _dialog_of(self, msg: SipMessage) -> RecordingSession | None:
        return self._dialogs.get((msg.call_id or "", msg.from_tag or "", msg.to_tag or ""))

    def _in_dialog(self, ctx: _Context) -> RecordingSession | None:
        """The session of an in-dialog request; answers 481 (12.2.2) or 500 (stale CSeq)."""
        session = self._dialog_of(ctx.msg)
        if session is None:
            self._reply(ctx, 481, "Call/Transaction Does Not Exist")
            return None
        cseq = ctx.msg.cseq
        if cseq is not None and cseq[0] < session.remote_cseq:
            self._reply(ctx, 500, "Server Internal Error", session=session)
            return None
        session.remote_cseq = cseq[0] if cseq is not None else session.remote_cseq
        return session

    def _end_here(self, session: RecordingSession, at: int, actions: list[Action]) -> None:
        if session.state is SessionState.PENDING:
            ctx = _Context(
                session.invite, session.invite_tx,
                _reply_address(session.invite, session.src, session.transport),
                session.transport, session.local, session.src, at, actions,
            )  # fmt: skip
            self._reply(ctx, 503, "Service Unavailable", session=session)
            session.move(SessionInput.END)
            self._drop(session)
            return
        self._send_bye(session, at, actions)
        session.move(SessionInput.END)
        self._finish(session, at, EndReason.TERMINATED, actions)

    def _send_bye(self, session: RecordingSession, at: int, actions: list[Action]) -> None:
        host = self.config.contact_host or session.local.ip
        self._seq += 1
        branch = f"z9hG4bK{self.config.instance}{session.key:x}b{self._seq:x}"
        session.local_cseq += 1
        transport = session.transport.value.upper()
        via = f"SIP/2.0/{transport} {_hostport(host, session.local.port)};branch={branch};rport"
        try:
            data = build_bye(
                session.invite, local_tag=session.local_tag, via=via,
                cseq=session.local_cseq, headers=[("User-Agent", self.config.user_agent)],
            )  # fmt: skip
        except (ProtocolParseError, ValueError):
            self.count("siprec.bye_unsendable")
            return
        actions.append(Outgoing(data, session.src, session.transport))
        if session.transport is Transport.UDP:
            self._byes[branch] = (
                session,
                Retransmission(session.key, data, 0, T1_NS, at + 64 * T1_NS),
            )
            self._schedule(at + T1_NS, _Timer.RETRANSMIT_BYE, branch)

    def _finish(
        self, session: RecordingSession, at: int, reason: EndReason, actions: list[Action]
    ) -> None:
        started = session.started
        self._drop(session)
        if started:
            actions.append(SessionEnded(session.key, at, reason))

    def _drop(self, session: RecordingSession) -> None:
        """Forget a session and release its ports."""
        session.pending = None
        self._sessions.pop(session.key, None)
        self._dialogs.pop((session.call_id, session.remote_tag, session.local_tag), None)
        self._by_invite.pop(session.invite_tx, None)
        for port in session.ports.values():
            self.ports.release(port)
        session.ports.clear()

    # -- timers ---------------------------------------------------------------------------------

    def _retransmit_2xx(
        self, session: RecordingSession, pending: Retransmission, now: int, actions: list[Action]
    ) -> None:
        if now >= pending.give_up:
            self.count("siprec.no_ack")
            self._send_bye(session, now, actions)  # RFC 3261 13.3.1.4: end the dialog
            session.move(SessionInput.NO_ACK)
            self._finish(session, now, EndReason.NO_ACK, actions)
            return
        dst = _reply_address(session.invite, session.src, session.transport)
        actions.append(Outgoing(pending.data, dst, session.transport))
        pending.interval = min(2 * pending.interval, T2_NS)
        self._schedule(min(now + pending.interval, pending.give_up), _Timer.RETRANSMIT_2XX, pending)

    def _retransmit_bye(self, branch: str, now: int, actions: list[Action]) -> None:
        found = self._byes.get(branch)
        if found is None:
            return
        session, pending = found
        if now >= pending.give_up:  # Timer F
            del self._byes[branch]
            return
        actions.append(Outgoing(pending.data, session.src, session.transport))
        pending.interval = min(2 * pending.interval, T2_NS)  # Timer E
        self._schedule(min(now + pending.interval, pending.give_up), _Timer.RETRANSMIT_BYE, branch)

    def next_deadline(self) -> int | None:
        """When `expire` next has work (None: no timer pending)."""
        own = self._timers[0][0] if self._timers else None
        tx = self._tx.next_deadline()
        return min((t for t in (own, tx) if t is not None), default=None)

    def _schedule(self, due: int, kind: _Timer, ident: object) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, kind, ident))

    # -- helpers -----------------------------------------------------------------------------

    def _tag(self, key: int) -> str:
        return f"{self.config.instance}{key:x}"

    def _contact(self, session: RecordingSession) -> str:
        host = self.config.contact_host or session.local.ip
        udp = session.transport is Transport.UDP
        transport = "" if udp else f";transport={session.transport.value}"
        return f"<sip:srs@{_hostport(host, session.local.port)}{transport}>"

    def _tx_dst(self, key: tuple[str, ...], ctx: _Context) -> Endpoint:
        tx = self._tx.get(key)
        return tx.dst if tx is not None else ctx.dst


class _Arrival(NamedTuple):
    """Where and when a request arrived."""

    src: Endpoint
    transport: Transport
    local: Endpoint
    at: int


@dataclass(frozen=True, slots=True)
class _Context:
    """One request being handled: where its responses go and where actions collect."""

    msg: SipMessage
    key: tuple[str, ...]
    dst: Endpoint
    transport: Transport
    local: Endpoint
    src: Endpoint
    at: int
    actions: list[Action]


_METHODS = {
    "INVITE": RecordingServer._invite,
    "BYE": RecordingServer._bye,
    "CANCEL": RecordingServer._cancel,
    "OPTIONS": RecordingServer._options,
    "UPDATE": RecordingServer._update,
}


def _reply_address(msg: SipMessage, src: Endpoint, transport: Transport) -> Endpoint:
    """Where responses go (RFC 3261 18.2.2, RFC 3581): the connection over TCP/TLS; over
    UDP the source address, and the Via port unless ``rport`` asked for the source port."""
    if transport is not Transport.UDP:
        return src
    via = msg.top_via
    if via is None or any(name == "rport" for name, _ in via.params):
        return src
    return Endpoint(src.ip, via.port or 5060)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _without_origin(sdp: bytes) -> bytes:
    return b"\n".join(line for line in sdp.split(b"\n") if not line.startswith(b"o="))
