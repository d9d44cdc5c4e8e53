"""The call tracker: datagrams in, call events out (sans-IO).

Theory of operation
-------------------
`CallTracker.receive(dgram)` is called for every datagram of a capture, in capture order.
The first octet routes it: RTP/RTCP (version 2) goes to the media path, anything that
`looks_like_sip` to the SIP path, the rest (ZRTP, STUN, DTLS on media ports) to a check for
encrypted media. Nothing here reads a clock: time is the datagram's ``at``, and timers
(linger after the end, authentication retries, silence fallbacks) fire when a datagram's
time passes them, or when the caller says time has passed (`expire`).

SIP path: the message is parsed, matched to its leg by Call-ID and the caller's tag
(`InviteDialog` does the rest: see `callscope.protocol.dialog`); an initial INVITE with an
unknown Call-ID starts a leg, anything else unknown is ignored (registrations, OPTIONS, a
dialog that began before the capture). Every SDP of every offer and answer is entered in the
`EndpointMap`; flows touching a changed endpoint are looked up again on their next packet.

Media path: one dict lookup by ``(src ip, src port, dst ip, dst port)`` finds the flow's
object (`MediaStream`, `RtcpFlow` or `OrphanFlow`); only the first packet of a flow, or the
first after an SDP changed one of its endpoints, asks the `EndpointMap`. Every known flow is
also published in `media_routes` by its raw wire key, with the time of the next timer: a
capture source that feeds the tracker one datagram at a time may hand such a packet to the
flow's ``receive`` itself, as the hot path of `receive` would (`callscope.core.routes`).

Ends: a leg whose dialog terminated is emitted as `CallEnded` after ``end_linger_ns`` (the
media tail), then forgotten after ``forget_ns`` (late retransmissions are absorbed, not new
calls; an initial INVITE stamped before its dialog was forgotten - a capture merged out of
order, an agent's clock behind - is counted as ``sip.late_copy`` and ignored). A leg left
CHALLENGED or CANCELLING is settled after ``settle_ns``. Only a long silence of both SIP
and RTP ends a call by timeout (``setup_timeout_ns`` before an answer, ``call_timeout_ns``
after, ``held_timeout_ns`` while on hold). `finish` emits every leg still open as it
stands: answered with no end, or in_progress - never an invented end.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
from collections import deque
from dataclasses import dataclass
from typing import Final

from callscope.assembly.call import Call
from callscope.assembly.endpoints import EndpointKey, EndpointMap
from callscope.assembly.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    CallStarted,
    MediaSink,
    StreamDirection,
)
from callscope.assembly.links import Links, join
from callscope.assembly.media import MediaStream, RtcpFlow
from callscope.assembly.orphans import OrphanFlow, OrphanStream
from callscope.core import Datagram, MediaRoutes
from callscope.core import flow_key as raw_flow_key
from callscope.protocol.dialog import Action, DialogState, Role
from callscope.protocol.errors import ProtocolParseError, SdpParseError, SipParseError
from callscope.protocol.multipart import body_bytes
from callscope.protocol.recent import RecentParses
from callscope.protocol.sdp import SessionDescription, parse_recent
from callscope.protocol.sip import SipMessage, looks_like_sip

__all__ = ["CallTracker", "TrackerConfig"]

_S = 1_000_000_000
_NEVER: Final = 1 << 62
_ZRTP_MAGIC: Final = b"ZRTP"  # RFC 6189 5: magic cookie at octet 4 of every ZRTP packet
_SENT_BY: Final = {
    Role.CALLER: StreamDirection.CALLER_TO_CALLEE,
    Role.CALLEE: StreamDirection.CALLEE_TO_CALLER,
}
Flow = MediaStream | RtcpFlow | OrphanFlow
FlowKey = tuple[str, int, str, int]


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tunables of the tracker; times in int ns of packet time."""

    end_linger_ns: int = 2 * _S  # media tail counted after BYE/CANCEL/final failure
    forget_ns: int = 32 * _S  # an emitted leg absorbs late messages this long (64*T1)
    settle_ns: int = 32 * _S  # 401/407 without retry, CANCEL without final answer
    setup_timeout_ns: int = 300 * _S  # silence (SIP and RTP) before an answer
    call_timeout_ns: int = 7200 * _S  # silence of an answered call
    held_timeout_ns: int = 86400 * _S  # silence of a call on hold
    dtmf_echo_ns: int = 200_000_000  # same digit back in the other direction: an echo
    b2bua_window_ns: int = 10 * _S  # B2BUA outgoing leg after the incoming one
    transfer_window_ns: int = 60 * _S  # INVITE of a transfer after the REFER
    max_ladder: int = 500  # SIP messages kept per call for the ladder
    max_orphan_flows: int = 10_000  # flows of unpaired RTP tracked for reports
    orphan_idle_ns: int = 60 * _S  # an idle orphan flow is summarised and let go
    max_orphan_summaries: int = 1000  # summaries of let-go orphan flows kept for reports


class _Timer(enum.Enum):
    EMIT = "emit"
    FORGET = "forget"
    SETTLE = "settle"
    SILENCE = "silence"


class CallTracker:
    """Assembles calls from datagrams; see the module docs."""

    def __init__(self, config: TrackerConfig | None = None, media_sink: MediaSink | None = None):
        self.config = config or TrackerConfig()
        self._sink = media_sink
        self._calls: dict[int, Call] = {}
        self._legs: dict[str, list[Call]] = {}
        #: Call-IDs whose last leg was forgotten -> when (see `_forget`), the oldest first
        self._gone: dict[str, int] = {}
        self._endpoints: EndpointMap[Call] = EndpointMap()
        self._flows: dict[FlowKey, Flow] = {}
        self._flows_at: dict[EndpointKey, set[FlowKey]] = {}
        self._orphans: dict[FlowKey, OrphanFlow] = {}
        self._orphan_done: deque[OrphanStream] = deque(maxlen=self.config.max_orphan_summaries)
        self._unpaired_done = 0
        self._next_sweep = 0
        self._links = Links(
            b2bua_window_ns=self.config.b2bua_window_ns,
            transfer_window_ns=self.config.transfer_window_ns,
        )
        self._timers: list[tuple[int, int, _Timer, int]] = []
        self._timer_seq = 0
        self._timers_checked_at = _STALE_TIMERS_SLACK  # see _drop_stale_timers
        self._deadline = 0  # the first datagram arms the orphan sweep
        #: the known flows and ``_deadline``, for a source that dispatches RTP itself
        self.media_routes = MediaRoutes()
        self._next_key = 1
        self._anomalies: dict[str, int] = {}

    # -- input --------------------------------------------------------------------------------

    def receive(self, dgram: Datagram) -> list[CallEvent]:
        """Process one datagram; returns the events it caused (often none)."""
        at = dgram.at
        payload = dgram.payload
        # hot path: RTP/RTCP of a known flow, no timer due (RFC 3550 5.1: version 2)
        if at < self._deadline and len(payload) >= 12 and payload[0] & 0xC0 == 0x80:
            src, dst = dgram.src, dgram.dst
            flow = self._flows.get((src.ip, src.port, dst.ip, dst.port))
            if flow is not None:
                flow.receive(at, payload)
                return []
        return self._receive(dgram, at, payload)

    def _receive(self, dgram: Datagram, at: int, payload: bytes) -> list[CallEvent]:
        events = self._run_timers(at) if at >= self._deadline else []
        if not payload:
            return events
        if payload[0] & 0xC0 == 0x80 and len(payload) >= 12:
            src, dst = dgram.src, dgram.dst
            key = (src.ip, src.port, dst.ip, dst.port)
            flow = self._flows.get(key) or self._flow(key, dgram)
            if flow is not None:
                flow.receive(at, payload)
            return events
        if looks_like_sip(payload):
            events.extend(self._sip(dgram))
        elif payload[4:8] == _ZRTP_MAGIC:
            self._zrtp(dgram)
        return events

    def expire(self, now: int) -> list[CallEvent]:
        """Time has passed (no datagram came): fire the timers due by ``now``."""
        return self._run_timers(now) if now >= self._deadline else []

    def finish(self) -> list[CallEvent]:
        """End of input: emit every leg not yet emitted, as it stands (nothing invented)."""
        events: list[CallEvent] = []
        for call in sorted(self._calls.values(), key=lambda c: c.key):
            if not call.emitted:
                call.dialog.settle()
                call.dialog.finish_cancel()
                events.append(self._emit(call))
        return events

    # -- reports ------------------------------------------------------------------------------

    def anomalies(self) -> dict[str, int]:
        """Anomalies of the whole input by kind (those of calls included)."""
        total = dict(self._anomalies)
        for call in self._calls.values():
            if not call.emitted:
                for kind, count in call.anomalies.items():
                    total[kind] = total.get(kind, 0) + count
        unpaired = self._unpaired_done + sum(flow.seen for flow in self._orphans.values())
        if unpaired:
            total["rtp.unpaired"] = total.get("rtp.unpaired", 0) + unpaired
        return total

    def orphan_streams(self) -> list[OrphanStream]:
        """RTP flows no call claimed that passed heuristic detection (RTP-only captures)."""
        found = (flow.summary() for flow in self._orphans.values())
        return [*self._orphan_done, *(stream for stream in found if stream is not None)]

    @property
    def open_calls(self) -> int:
        """Legs not yet emitted."""
        return sum(1 for call in self._calls.values() if not call.emitted)

    def _count(self, kind: str, call: Call | None = None) -> None:
        """One anomaly, on its call when there is one (merged into the totals at its end)."""
        if call is not None:
            call.count(kind)
        else:
            self._anomalies[kind] = self._anomalies.get(kind, 0) + 1

    # -- SIP ----------------------------------------------------------------------------------

    def _sip(self, dgram: Datagram) -> list[CallEvent]:
        try:
            msg = SipMessage.parse(dgram.payload)
        except SipParseError as exc:
            self._count(exc.kind)
            return []
        call: Call | None = None
        try:
            call_id = msg.call_id
            if not call_id:
                self._count("sip.no_call_id")
                return []
            call = self._leg(call_id, msg, dgram)
            if call is None:
                return self._outside(call_id, msg, dgram)
            return self._in_call(call, msg, dgram)
        except ProtocolParseError as exc:
            self._count(exc.kind, call)
            return []

    def _outside(self, call_id: str, msg: SipMessage, dgram: Datagram) -> list[CallEvent]:
        """A message of no live leg: an initial INVITE starts one, unless it was stamped
        before a forgotten dialog of its Call-ID was let go (a late copy: a capture merged
        out of order, an agent's clock behind); anything else is ignored."""
        if not _initial_invite(msg):
            return []
        gone = self._gone.get(call_id)
        if gone is not None and dgram.at <= gone:
            self._count("sip.late_copy")
            return []
        return self._start(msg, dgram)

    def _leg(self, call_id: str, msg: SipMessage, dgram: Datagram) -> Call | None:
        """The leg of a message: by the caller's tag among legs with this Call-ID."""
        legs = self._legs.get(call_id)
        if not legs:
            return None
        if len(legs) == 1 and msg.method != "INVITE":
            return legs[0]  # the common case: one leg, not a new INVITE
        from_ = msg.from_
        to = msg.to
        tags = {from_.tag if from_ else None, to.tag if to else None} - {None}
        for call in reversed(legs):
            if call.dialog.caller_tag in tags:
                return call
        if _initial_invite(msg):
            same_caller = [c for c in legs if c.dialog.caller_src == dgram.src]
            if not same_caller:
                return None  # another caller with the same Call-ID: a B2BUA leg
            if from_ is not None and from_.tag is not None:
                same_caller[-1].dialog.adopt_caller_tag(from_.tag)
            return same_caller[-1]
        return legs[-1]

    def _start(self, msg: SipMessage, dgram: Datagram) -> list[CallEvent]:
        config = self.config
        call = Call(
            self._next_key, msg, dgram, max_ladder=config.max_ladder, echo_ns=config.dtmf_echo_ns
        )
        self._next_key += 1
        self._calls[call.key] = call
        self._links.new_leg(call, msg, dgram.src, self._legs)
        self._legs.setdefault(call.call_id, []).append(call)
        self._watch(call, dgram.at + config.setup_timeout_ns)
        call.note_defects(msg)
        sdp = self._sdp(call, msg)
        call.add_ladder(msg, dgram, Role.CALLER, sdp)
        if sdp is not None:
            self._offer_answer(call, Role.CALLER, sdp, dgram.at)
        return [CallStarted(call.key, call.call_id, dgram.at)]

    def _in_call(self, call: Call, msg: SipMessage, dgram: Datagram) -> list[CallEvent]:
        at = dgram.at
        role, _kind, action, duplicate = call.dialog.receive(msg, at, dgram.src)
        sdp = self._sdp(call, msg) if msg.body else None
        if not call.emitted:
            call.add_ladder(msg, dgram, role, sdp)
            if sdp is not None:
                self._offer_answer(call, role, sdp, at)
        if duplicate:
            return []
        if msg.defects:
            call.note_defects(msg)
        method = msg.method
        if method == "INFO":
            call.info(msg, role, at)
        elif method == "REFER":
            self._links.refer(call, msg, at)
        return self._after(call, action, at)

    def _after(self, call: Call, action: Action, at: int) -> list[CallEvent]:
        """Events and timers after a message moved the dialog."""
        dialog = call.dialog
        events: list[CallEvent] = []
        if action is Action.RING and dialog.ringing_at == at:
            events.append(CallRinging(call.key, at))
        elif action is Action.ANSWER and dialog.answered_at == at:
            call.answer(at)
            events.append(CallAnswered(call.key, at))
            self._watch(call, at + self.config.call_timeout_ns)
        if call.emitted or call.end_scheduled:
            return events
        if dialog.state is DialogState.TERMINATED:
            call.end_scheduled = True
            self._schedule(at + self.config.end_linger_ns, _Timer.EMIT, call)
        elif dialog.state in (DialogState.CHALLENGED, DialogState.CANCELLING):
            self._schedule(at + self.config.settle_ns, _Timer.SETTLE, call)
        return events

    def _sdp(self, call: Call, msg: SipMessage) -> SessionDescription | None:
        if not msg.body:
            return None
        try:
            body = body_bytes(msg, "application/sdp")
            if body is None:
                return None
            return parse_recent(body)
        except (SdpParseError, SipParseError) as exc:
            self._count(exc.kind, call)
            return None

    def _offer_answer(self, call: Call, role: Role, sdp: SessionDescription, at: int) -> None:
        """Register the media endpoints of an offer or answer sent by ``role``."""
        call.offer_answer(role, sdp, at)
        for media in sdp.media:
            address = media.address
            if media.rejected or address is None or media.zero_address:
                continue
            ip = _known_ip(address) or _canonical_ip(address)
            if ip is None:
                self._count("sdp.address", call)
                continue
            payload_map = {
                pt: (fmt.encoding, fmt.clock_rate, fmt.channels) for pt, fmt in media.rtpmap.items()
            }
            self._register((ip, media.port), call, role, media.media, payload_map, rtcp=False)
            if not media.rtcp_mux:
                rtcp_port = media.rtcp_port or media.port + 1  # RFC 3550 11, RFC 3605
                self._register((ip, rtcp_port), call, role, media.media, {}, rtcp=True)

    def _register(
        self,
        key: EndpointKey,
        call: Call,
        role: Role,
        media: str,
        payload_map: dict[int, tuple[str, int, int]],
        *,
        rtcp: bool,
    ) -> None:
        if self._endpoints.register(key, call, role, media, payload_map, rtcp=rtcp):
            self._invalidate(key)
        else:
            # the same SDP again: its payload types may still be news to existing streams
            for flow_key in self._flows_at.get(key, ()):
                flow = self._flows.get(flow_key)
                if isinstance(flow, MediaStream) and flow.owner is call:
                    flow.update_payload_map(payload_map)

    def _invalidate(self, key: EndpointKey) -> None:
        """Flows touching ``key`` are looked up again on their next packet."""
        for flow_key in self._flows_at.pop(key, ()):
            self._drop_flow(flow_key)

    def _drop_flow(self, flow_key: FlowKey) -> None:
        if self._flows.pop(flow_key, None) is not None:
            raw = _raw_key(flow_key)
            if raw is not None:
                self.media_routes.flows.pop(raw, None)
        for end in ((flow_key[0], flow_key[1]), (flow_key[2], flow_key[3])):
            keys = self._flows_at.get(end)
            if keys is not None:
                keys.discard(flow_key)
                if not keys:
                    del self._flows_at[end]

    # -- media --------------------------------------------------------------------------------

    def _flow(self, key: FlowKey, dgram: Datagram) -> Flow | None:
        """Resolve a flow's first packet (or first after an SDP change)."""
        src_key, dst_key = (key[0], key[1]), (key[2], key[3])
        found = self._endpoints.resolve(src_key, dst_key)
        flow: Flow | None
        if found is None:
            flow = self._orphans.get(key)
            if flow is None:
                if len(self._orphans) >= self.config.max_orphan_flows:
                    self._count("rtp.unpaired_untracked")
                    return None
                flow = self._orphans[key] = OrphanFlow(dgram.src, dgram.dst)
        elif found.rtcp:
            flow = RtcpFlow(found.owner)
        else:
            call = found.owner
            for other in found.linked:
                join(call, other)
            direction = _SENT_BY[found.sender]
            stream = call.stream(direction, found.media, dgram.src, dgram.dst, self._sink)
            stream.update_payload_map(found.payload_map)
            stream.trusted = stream.trusted or found.trusted
            flow = stream
        self._flows[key] = flow
        raw = _raw_key(key)
        if raw is not None:
            # a stream is its own receiver: the compiled capture scanner then accounts its
            # usual packet without a Python call (callscope.capture._pcapscan)
            self.media_routes.flows[raw] = flow if isinstance(flow, MediaStream) else flow.receive
        self._flows_at.setdefault(src_key, set()).add(key)
        self._flows_at.setdefault(dst_key, set()).add(key)
        return flow

    def _zrtp(self, dgram: Datagram) -> None:
        """A ZRTP packet (RFC 6189): if it is on a call's media flow, the call is encrypted."""
        src, dst = dgram.src, dgram.dst
        found = self._endpoints.resolve((src.ip, src.port), (dst.ip, dst.port))
        if found is not None:
            found.owner.encrypted_media("zrtp")

    # -- timers -------------------------------------------------------------------------------

    def _schedule(self, deadline: int, kind: _Timer, call: Call) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, kind, call.key))
        self._rearm()

    def _rearm(self) -> None:
        """The next packet time at which `_run_timers` has work (a timer or a sweep)."""
        first = self._timers[0][0] if self._timers else _NEVER
        sweep = self._next_sweep
        self._deadline = self.media_routes.deadline = first if first < sweep else sweep

    def _run_timers(self, now: int) -> list[CallEvent]:
        events: list[CallEvent] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _seq, kind, key = heapq.heappop(timers)
            call = self._calls.get(key)
            if call is not None:
                self._fire(kind, call, deadline, now, events)
        if now >= self._next_sweep:
            self._sweep_orphans(now)
        if len(timers) > self._timers_checked_at:
            self._drop_stale_timers()
        self._rearm()
        return events

    def _drop_stale_timers(self) -> None:
        """Drop the timers of legs already forgotten. A leg's silence check is set hours
        ahead (``call_timeout_ns``) and stays queued after the leg ends, so without this
        the queue would hold a timer for every call of the last two hours (~140 bytes
        each: 10 million at 1,400 calls/s). In place and in order: the remaining timers
        fire as they would have. Done when the queue has doubled since the last time (and
        holds more than ``_STALE_TIMERS_SLACK``): O(1) per timer, amortised."""
        calls = self._calls
        timers = self._timers
        timers[:] = [timer for timer in timers if timer[3] in calls]
        heapq.heapify(timers)
        self._timers_checked_at = 2 * len(timers) + _STALE_TIMERS_SLACK

    def _sweep_orphans(self, now: int) -> None:
        """Let go of orphan flows idle for ``orphan_idle_ns`` (their summary is kept)."""
        idle = self.config.orphan_idle_ns
        self._next_sweep = now + idle
        for key, flow in list(self._orphans.items()):
            if now - flow.last_at >= idle:
                del self._orphans[key]
                self._drop_flow(key)
                self._unpaired_done += flow.seen
                summary = flow.summary()
                if summary is not None:
                    self._orphan_done.append(summary)

    def _fire(
        self, kind: _Timer, call: Call, deadline: int, now: int, events: list[CallEvent]
    ) -> None:
        dialog = call.dialog
        if kind is _Timer.FORGET:
            self._forget(call, deadline)
        elif call.emitted:
            return
        elif kind is _Timer.EMIT:
            events.append(self._emit(call))
        elif kind is _Timer.SETTLE:
            if dialog.settle() or dialog.finish_cancel():
                call.end_scheduled = True
                self._schedule(deadline, _Timer.EMIT, call)
        elif kind is _Timer.SILENCE and deadline == call.silence_due and not call.end_scheduled:
            last = call.last_activity()
            limit = self._silence_limit(call)
            if now - last >= limit:
                dialog.timeout(last)
                call.end_scheduled = True
                self._schedule(now, _Timer.EMIT, call)
            else:
                self._watch(call, last + limit)

    def _watch(self, call: Call, due: int) -> None:
        """(Re)arm the silence check of a call; an earlier pending check becomes stale."""
        call.silence_due = due
        self._schedule(due, _Timer.SILENCE, call)

    def _silence_limit(self, call: Call) -> int:
        config = self.config
        if not call.answered:
            return config.setup_timeout_ns
        return config.held_timeout_ns if call.held else config.call_timeout_ns

    def _emit(self, call: Call) -> CallEnded:
        """Freeze and emit a leg; its media endpoints are released."""
        call.settle_media()
        record = call.record()
        call.emitted = True
        for key in self._endpoints.unregister(call):
            self._invalidate(key)
        if self._sink is not None:
            self._sink.close_call(call.key)
        for kind, count in call.anomalies.items():
            self._anomalies[kind] = self._anomalies.get(kind, 0) + count
        end = record.ended_at if record.ended_at is not None else call.last_activity()
        self._schedule(end + self.config.forget_ns, _Timer.FORGET, call)
        call.release()
        return CallEnded(call.key, record)

    def _forget(self, call: Call, at: int) -> None:
        """Let go of an ended leg at ``at``. When it was the last of its Call-ID, the Call-ID
        is remembered with ``at`` (the newest `_MAX_GONE`): an initial INVITE of it stamped
        no later is a copy from the dialog's lifetime that arrived late, not a new call."""
        self._calls.pop(call.key, None)
        legs = self._legs.get(call.call_id)
        if legs is not None:
            legs[:] = [leg for leg in legs if leg is not call]
            if not legs:
                del self._legs[call.call_id]
                gone = self._gone
                gone.pop(call.call_id, None)  # re-inserted: the oldest stay at the front
                gone[call.call_id] = at
                if len(gone) > _MAX_GONE:
                    del gone[next(iter(gone))]
        self._links.forget(call)


#: the timer queue's length below which the timers of forgotten legs are left to expire
_STALE_TIMERS_SLACK = 4096
#: Call-IDs of forgotten dialogs remembered against late copies (~100 bytes each)
_MAX_GONE = 65_536


def _initial_invite(msg: SipMessage) -> bool:
    """An INVITE outside any dialog (RFC 3261 12.2: no To tag)."""
    if msg.method != "INVITE":
        return False
    to = msg.to
    return to is None or to.tag is None


def _raw_key(key: FlowKey) -> bytes | None:
    """A flow's key in `media_routes`; None if an address is not an IP address (a source
    that names endpoints otherwise has no raw flows to route)."""
    try:
        return raw_flow_key(key[0], key[1], key[2], key[3])
    except ValueError:
        return None


def _parse_ip(address: str) -> str | None:
    """The SDP address in the capture layer's text form; None for a host name."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


# a PBX or SBC offers media from a few addresses, in every SDP it sends
_canonical_ip = RecentParses(_parse_ip)
_known_ip = _canonical_ip.known
