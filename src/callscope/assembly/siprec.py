"""SIPREC recording sessions as call records (RFC 7866), beside the call tracker.

Theory of operation
-------------------
The SIPREC listener hands over what a mirror port at the recording server would see, as
datagrams with ``source="siprec"``: the SIP messages of each recording session, both the
client's requests and the server's responses, and the RTP the client sends to the ports
of the answers. `SiprecTracker` is a `CallTracker` that routes those datagrams to a
`SiprecAssembler` and everything else to the tracker, so one recorder can take a mirror
port and SIPREC feeds at once.

`SiprecAssembler` follows each recording session by Call-ID: the initial INVITE (one that
`is_siprec`) starts a `Recording` and its metadata; every SDP offer is remembered by CSeq
and matched with the server's 2xx answer, which gives each ``a=label`` its RTP port
(RFC 3264: the i-th m= line answers the i-th). A packet to that port belongs to that
label; the label's stream id and its sender in the metadata give the channel
(`siprec_parties`). re-INVITEs and UPDATEs merge new or partial metadata. A BYE from
either side ends the session; the record is emitted after ``end_linger_ns`` (the media
tail) and the session forgotten after ``forget_ns``. A session that no SIP and no RTP
touched for ``idle_timeout_ns`` ends as a timeout; `finish` emits what is open as it is.

The call record's parties are the metadata's caller and callee, never the recording
client and server; the record carries a ``siprec`` object (`siprec_json`) and the source
``siprec``.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from callscope.assembly.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallStarted,
    MediaSink,
)
from callscope.assembly.media import MediaStream
from callscope.assembly.siprec_record import Recording, SiprecCallRecord
from callscope.assembly.tracker import CallTracker, TrackerConfig
from callscope.core import Datagram
from callscope.protocol.dialog import result_for_code
from callscope.protocol.errors import ProtocolParseError, SipParseError
from callscope.protocol.sdp import SessionDescription
from callscope.protocol.sip import SipMessage
from callscope.protocol.siprec_offer import RecordingBody, is_siprec

__all__ = ["SOURCE", "SiprecAssembler", "SiprecConfig", "SiprecTracker"]

#: the `Datagram.source` of everything the SIPREC listener hands over
SOURCE: Final = "siprec"
_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SiprecConfig:
    """Times in int ns of packet time."""

    end_linger_ns: int = 2 * _S  # media tail counted after the BYE
    forget_ns: int = 32 * _S  # late retransmissions absorbed this long
    idle_timeout_ns: int = 4 * 3600 * _S  # no SIP and no RTP: the session is over


class _Timer(enum.Enum):
    EMIT = "emit"
    FORGET = "forget"
    IDLE = "idle"


class SiprecAssembler:
    """Recording sessions from SIPREC datagrams; see the module docs."""

    def __init__(
        self,
        config: SiprecConfig | None = None,
        media_sink: MediaSink | None = None,
        new_key: Callable[[], int] | None = None,
    ) -> None:
        self.config = config or SiprecConfig()
        self._sink = media_sink
        self._keys = iter(range(1, 1 << 62))
        self._new_key = new_key or (lambda: next(self._keys))
        self._recordings: dict[str, Recording] = {}
        self._by_key: dict[int, Recording] = {}
        self._ports: dict[int, tuple[Recording, int]] = {}  # our RTP port -> (owner, m= index)
        self._flows: dict[tuple[str, int, str, int], MediaStream] = {}
        self._timers: list[tuple[int, int, _Timer, int]] = []
        self._seq = 0
        self.anomalies: dict[str, int] = {}

    @property
    def open_calls(self) -> int:
        """Recording sessions not yet emitted."""
        return sum(1 for r in self._by_key.values() if not r.emitted)

    def count(self, kind: str) -> None:
        self.anomalies[kind] = self.anomalies.get(kind, 0) + 1

    # -- input --------------------------------------------------------------------------

    def receive(self, dgram: Datagram) -> list[CallEvent]:
        """One datagram of the SIPREC feed; returns the events it caused."""
        payload = dgram.payload
        timers = self._timers
        due = bool(timers) and timers[0][0] <= dgram.at
        # hot path: RTP of a known flow, no timer due (RFC 3550 5.1: version 2)
        if not due and len(payload) >= 12 and payload[0] & 0xC0 == 0x80:
            src, dst = dgram.src, dgram.dst
            stream = self._flows.get((src.ip, src.port, dst.ip, dst.port))
            if stream is not None:
                stream.receive(dgram.at, payload)
                return []
        events = self.expire(dgram.at) if due else []
        if len(payload) >= 12 and payload[0] & 0xC0 == 0x80:
            self._rtp(dgram)
            return events
        try:
            msg = SipMessage.parse(payload)
        except SipParseError as exc:
            self.count(exc.kind)
            return events
        recording = self._recordings.get(msg.call_id or "")
        try:
            if recording is None:
                events.extend(self._start(msg, dgram))
            elif not recording.emitted:
                events.extend(self._in_session(recording, msg, dgram))
        except ProtocolParseError as exc:
            if recording is not None:
                recording.count(exc.kind)
            else:
                self.count(exc.kind)
        return events

    def expire(self, now: int) -> list[CallEvent]:
        """Fire the timers due by ``now``."""
        events: list[CallEvent] = []
        while self._timers and self._timers[0][0] <= now:
            _due, _seq, kind, key = heapq.heappop(self._timers)
            recording = self._by_key.get(key)
            if recording is None:
                continue
            if kind is _Timer.FORGET:
                self._forget(recording)
            elif recording.emitted:
                continue
            elif kind is _Timer.EMIT:
                events.append(self._emit(recording))
            elif kind is _Timer.IDLE and not recording.end_scheduled:
                idle_since = recording.last_activity()
                if now - idle_since >= self.config.idle_timeout_ns:
                    recording.timed_out(idle_since)
                    events.append(self._emit(recording))
                else:
                    self._schedule(idle_since + self.config.idle_timeout_ns, _Timer.IDLE, key)
        return events

    def finish(self) -> list[CallEvent]:
        """End of input: every session not yet emitted, as it stands."""
        return [self._emit(r) for r in list(self._by_key.values()) if not r.emitted]

    # -- SIP --------------------------------------------------------------------------------

    def _start(self, msg: SipMessage, dgram: Datagram) -> list[CallEvent]:
        if msg.method != "INVITE" or msg.to_tag is not None or not is_siprec(msg):
            return []  # not a recording session (refused by the server, or not ours)
        recording = Recording(self._new_key(), msg, dgram, self._sink)
        self._recordings[recording.call_id] = recording
        self._by_key[recording.key] = recording
        self._schedule(dgram.at + self.config.idle_timeout_ns, _Timer.IDLE, recording.key)
        self._in_session(recording, msg, dgram)
        return [CallStarted(recording.key, recording.call_id, dgram.at)]

    def _in_session(
        self, recording: Recording, msg: SipMessage, dgram: Datagram
    ) -> list[CallEvent]:
        at = dgram.at
        recording.touch(msg, dgram)
        cseq = msg.cseq
        if msg.is_request:
            if msg.method in ("INVITE", "UPDATE") and recording.sent_by_client(msg):
                recording.request(msg, RecordingBody.of(msg))
            elif msg.method in ("BYE", "CANCEL"):
                return self._end(recording, at, msg.method)
            return []
        code = msg.status_code or 0
        if cseq is None or code < 200 or recording.sent_by_client(msg):
            return []
        if code < 300 and cseq[1] in ("INVITE", "UPDATE"):
            return self._answered(recording, msg, cseq[0], at)
        if cseq[1] == "INVITE" and cseq[0] == recording.invite_cseq and not recording.answered:
            recording.failed(code, result_for_code(code), at)
            return self._end(recording, at, None)
        return []

    def _answered(
        self, recording: Recording, msg: SipMessage, cseq: int, at: int
    ) -> list[CallEvent]:
        """A 2xx: its SDP answers the offer of the same CSeq (RFC 3264)."""
        offer = recording.offers.pop(cseq, None)
        answer = _sdp_of(msg)
        if offer is not None and answer is not None:
            for index, (offered, answered) in enumerate(
                zip(offer.media, answer.media, strict=False)
            ):
                if answered.port and not answered.rejected:
                    self._ports[answered.port] = (recording, index)
                    recording.answer_stream(answered.port, offered, index)
        elif offer is not None:
            recording.count("siprec.answer_without_sdp")
        if cseq == recording.invite_cseq and not recording.answered:
            recording.answer(at)
            return [CallAnswered(recording.key, at)]
        return []

    def _end(self, recording: Recording, at: int, method: str | None) -> list[CallEvent]:
        if method is not None:
            recording.ended(at, method)
        if not recording.end_scheduled:
            recording.end_scheduled = True
            self._schedule(at + self.config.end_linger_ns, _Timer.EMIT, recording.key)
        return []

    # -- RTP ----------------------------------------------------------------------------------

    def _rtp(self, dgram: Datagram) -> None:
        src, dst = dgram.src, dgram.dst
        key = (src.ip, src.port, dst.ip, dst.port)
        stream = self._flows.get(key)
        if stream is None:
            found = self._ports.get(dst.port)
            if found is None or found[0].emitted:
                self.count("siprec.rtp_unknown_port")
                return
            recording, index = found
            stream = recording.stream_for(index, dgram)
            self._flows[key] = stream
        stream.receive(dgram.at, dgram.payload)

    # -- ends ---------------------------------------------------------------------------------

    def _emit(self, recording: Recording) -> CallEnded:
        record: SiprecCallRecord = recording.record()
        recording.emitted = True
        if self._sink is not None:
            self._sink.close_call(recording.key)
        for port in recording.ports:
            if self._ports.get(port, (None, 0))[0] is recording:
                del self._ports[port]
        for flow in [k for k, s in self._flows.items() if s.owner is recording]:
            del self._flows[flow]
        for kind, count in recording.anomalies.items():
            self.anomalies[kind] = self.anomalies.get(kind, 0) + count
        end = record.ended_at if record.ended_at is not None else recording.last_activity()
        self._schedule(end + self.config.forget_ns, _Timer.FORGET, recording.key)
        return CallEnded(recording.key, record)

    def _forget(self, recording: Recording) -> None:
        self._by_key.pop(recording.key, None)
        if self._recordings.get(recording.call_id) is recording:
            del self._recordings[recording.call_id]

    def _schedule(self, due: int, kind: _Timer, key: int) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, kind, key))


def _sdp_of(msg: SipMessage) -> SessionDescription | None:
    return RecordingBody.of(msg).sdp if msg.body else None


class SiprecTracker(CallTracker):
    """A `CallTracker` that also assembles SIPREC recording sessions: datagrams whose
    ``source`` is ``siprec`` go to a `SiprecAssembler`, all others to the tracker."""

    def __init__(
        self,
        config: TrackerConfig | None = None,
        media_sink: MediaSink | None = None,
        siprec_config: SiprecConfig | None = None,
    ) -> None:
        super().__init__(config, media_sink)
        self.siprec = SiprecAssembler(siprec_config, media_sink, self._take_key)

    def _take_key(self) -> int:
        key = self._next_key  # one key space with the tracker's legs (one media sink)
        self._next_key += 1
        return key

    def receive(self, dgram: Datagram) -> list[CallEvent]:
        if dgram.source == SOURCE:
            return self.siprec.receive(dgram)
        return super().receive(dgram)

    def expire(self, now: int) -> list[CallEvent]:
        return super().expire(now) + self.siprec.expire(now)

    def finish(self) -> list[CallEvent]:
        return super().finish() + self.siprec.finish()

    def anomalies(self) -> dict[str, int]:
        total = super().anomalies()
        for kind, count in self.siprec.anomalies.items():
            total[kind] = total.get(kind, 0) + count
        return total

    @property
    def open_calls(self) -> int:
        return super().open_calls + self.siprec.open_calls
