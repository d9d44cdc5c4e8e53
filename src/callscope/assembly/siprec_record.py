"""One SIPREC recording session while it is assembled, and the call record it becomes.

`Recording` is the `SiprecAssembler`'s mutable state of one session (and the
`MediaOwner` of its RTP streams): the recording client's tag, the merged metadata and
every participant seen, the SDP offers waiting for their answers, the answered m= lines
by index, the channel given to each label, the SIP ladder, digits and anomalies.
`Recording.record` freezes it into a `SiprecCallRecord`, a `CallRecord` that also carries
the ``siprec`` object of the contract record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from callscope.assembly.events import MediaSink, StreamDirection
from callscope.assembly.media import MediaStream
from callscope.assembly.records import CallRecord, DtmfRecord, LadderEntry, PayloadFormat
from callscope.assembly.siprec_parties import (
    Roles,
    assign_roles,
    party_of_participant,
    siprec_json,
    stream_direction,
)
from callscope.core import Datagram, Endpoint
from callscope.protocol.sdp import MediaDescription, SessionDescription
from callscope.protocol.sip import SipDefect, SipMessage
from callscope.protocol.siprec import Participant, RecordingMetadata
from callscope.protocol.siprec_offer import RecordingBody
from callscope.protocol.telephone_event import DetectedEvent, DigitDetector

__all__ = ["Recording", "SiprecCallRecord"]

_MAX_LADDER: Final = 500
_GUESS: Final = (StreamDirection.CALLER_TO_CALLEE, StreamDirection.CALLEE_TO_CALLER)


@dataclass(frozen=True, slots=True)
class SiprecCallRecord(CallRecord):
    """A `CallRecord` of a SIPREC session; ``siprec`` is stored in the contract record."""

    siprec: Mapping[str, Any] = field(default_factory=dict)

    def to_contract(self) -> dict[str, Any]:
        """The contract object with the ``siprec`` object added (the schema allows it)."""
        record = CallRecord.to_contract(self)
        record["siprec"] = dict(self.siprec)
        return record


@dataclass
class _Leg:
    """An answered m= line: what the client offered to send on it."""

    label: str | None
    media: str
    payload_map: dict[int, PayloadFormat]


class Recording:
    """The assembling state of one recording session (see the module docs)."""

    def __init__(self, key: int, invite: SipMessage, dgram: Datagram, sink: MediaSink | None):
        self.key = key
        self.call_id = invite.call_id or ""
        self.client_tag = invite.from_tag
        cseq = invite.cseq
        self.invite_cseq = cseq[0] if cseq is not None else 0
        self.source = dgram.source
        self.transport = dgram.transport.value
        self.started_at = dgram.at
        self.last_at = dgram.at
        self.answered_at: int | None = None
        self.ended_at: int | None = None
        self.result = "in_progress"
        self.final_code: int | None = None
        self.ended_by: str | None = None
        self.answered = False
        self.early_media = False
        self.emitted = False
        self.end_scheduled = False
        self.metadata: RecordingMetadata | None = None
        self.participants: dict[str, Participant] = {}
        self.problems: set[str] = set()
        self.offers: dict[int, SessionDescription] = {}
        self.ports: list[int] = []
        self.legs: dict[int, _Leg] = {}
        self.directions: dict[str, StreamDirection] = {}
        self.roles: Roles | None = None
        self.streams: dict[tuple[StreamDirection, Endpoint, Endpoint], MediaStream] = {}
        self.dtmf: list[DtmfRecord] = []
        self.anomalies: Counter[str] = Counter()
        self.ladder: list[LadderEntry] = []
        self._ladder_seen: set[tuple[object, ...]] = set()
        self._detectors: dict[StreamDirection, DigitDetector] = {}
        self._sink = sink

    # -- MediaOwner -----------------------------------------------------------------------

    def count(self, kind: str) -> None:
        """Count one anomaly of ``kind``."""
        self.anomalies[kind] += 1

    def detector(self, direction: StreamDirection) -> DigitDetector:
        """The RFC 4733 detector of one channel."""
        found = self._detectors.get(direction)
        if found is None:
            found = self._detectors[direction] = DigitDetector()
        return found

    def on_digit(self, direction: StreamDirection, event: DetectedEvent) -> None:
        """A DTMF digit in one channel's stream."""
        if event.digit is not None:
            self.dtmf.append(DtmfRecord(event.digit, direction.contract, event.at, "rfc4733"))

    def encrypted_media(self, how: str) -> None:
        """SRTCP on a recorded port: counted (the answer never accepts SRTP)."""
        self.count("media." + how)

    # -- SIP ------------------------------------------------------------------------------

    def sent_by_client(self, msg: SipMessage) -> bool:
        """True for the recording client's requests and the responses it sent."""
        own_tag = msg.from_tag == self.client_tag
        return own_tag if msg.is_request else not own_tag

    def touch(self, msg: SipMessage, dgram: Datagram) -> None:
        """Activity, defects and the ladder (first copy of each message per hop)."""
        self.last_at = max(self.last_at, dgram.at)
        label = msg.method or f"{msg.status_code} {msg.reason or ''}".rstrip()
        key = (dgram.src, dgram.dst, label, msg.cseq)
        if key in self._ladder_seen:
            return
        self._ladder_seen.add(key)
        for defect in msg.defects:
            if defect is not SipDefect.BARE_LF:
                self.count(defect.value)
        if len(self.ladder) >= _MAX_LADDER:
            self.count("sip.ladder_truncated")
            return
        direction = "caller_to_callee" if self.sent_by_client(msg) else "callee_to_caller"
        self.ladder.append(
            LadderEntry(
                dgram.at, direction, label, dgram.src, dgram.dst, b"application/sdp" in msg.body,
                msg.method, msg.status_code, "SIPREC" if b"rs-metadata" in msg.body else None,
            )
        )  # fmt: skip

    def request(self, msg: SipMessage, body: RecordingBody) -> None:
        """An INVITE or UPDATE of the client: metadata merged, SDP offer kept by CSeq."""
        self.problems.update(body.problems)
        for problem in body.problems:
            self.count("siprec.metadata" if problem == body.metadata_error else "siprec.body")
        if body.metadata is not None:
            old = self.metadata
            self.metadata = body.metadata if old is None else old.merge(body.metadata)
            for participant in self.metadata.participants:
                self.participants[participant.participant_id] = participant
        cseq = msg.cseq
        if body.sdp is not None and cseq is not None:
            self.offers[cseq[0]] = body.sdp

    def answer_stream(self, port: int, offered: MediaDescription, index: int) -> None:
        """The server answered m= line ``index`` of an offer with ``port``."""
        if port not in self.ports:
            self.ports.append(port)
        payloads = {pt: (f.encoding, f.clock_rate, f.channels) for pt, f in offered.rtpmap.items()}
        self.legs[index] = _Leg(offered.label, offered.media, payloads)

    def answer(self, at: int) -> None:
        """The 2xx to the initial INVITE: the recording runs."""
        self.answered = True
        self.answered_at = at
        self.result = "answered"
        self.final_code = 200

    def failed(self, code: int, result: str, at: int) -> None:
        """A final failure to the initial INVITE (the server refused or it was cancelled)."""
        self.result = result
        self.final_code = code
        self.ended_at = at

    def ended(self, at: int, method: str) -> None:
        """A BYE (or CANCEL) from either side; the first one counts."""
        if self.ended_at is not None:
            return
        self.ended_at = at
        if self.answered:
            self.ended_by = "unknown"  # the client's BYE does not say which party hung up
        elif method in ("CANCEL", "BYE"):
            self.result = "cancelled"

    def timed_out(self, idle_since: int) -> None:
        """No SIP and no RTP for the idle timeout."""
        self.ended_at = idle_since
        self.ended_by = "timeout"
        if not self.answered:
            self.result = "no_answer"
        self.count("siprec.idle_timeout")

    # -- media ----------------------------------------------------------------------------

    def stream_for(self, index: int, dgram: Datagram) -> MediaStream:
        """The stream of a flow to the port answered for m= line ``index``."""
        leg = self.legs[index]
        name = leg.label if leg.label is not None else f"#{index}"
        direction = self.directions.get(name)
        if direction is None:
            direction = self._direction(leg.label, index)
            self.directions[name] = direction
        key = (direction, dgram.src, dgram.dst)
        stream = self.streams.get(key)
        if stream is None:
            stream = MediaStream(self, direction, leg.media, dgram.src, dgram.dst, sink=self._sink)
            stream.trusted = True  # the port was given to this session alone
            self.streams[key] = stream
        stream.update_payload_map(leg.payload_map)
        return stream

    def _direction(self, label: str | None, index: int) -> StreamDirection:
        if self.roles is None:
            self.roles = assign_roles(self.metadata)
        direction, anomaly = stream_direction(self.metadata, self.roles, label)
        if anomaly is not None:
            self.count(anomaly)
        if direction is not None:
            return direction
        self.count("siprec.direction_guessed")
        position = sorted(self.legs).index(index)
        return _GUESS[min(position, 1)]

    def last_activity(self) -> int:
        """The latest SIP message or RTP packet."""
        return max([self.last_at, *(s.last_at for s in self.streams.values())])

    # -- the record -----------------------------------------------------------------------

    def record(self) -> SiprecCallRecord:
        """Freeze the session into its call record."""
        for stream in self.streams.values():
            stream.settle()
        for direction, detector in self._detectors.items():
            for event in detector.flush():
                self.on_digit(direction, event)
        roles = self.roles or assign_roles(self.metadata)
        streams = tuple(s.record() for s in self.streams.values() if s.packets)
        audio = any(s.media == "audio" for s in streams)
        return SiprecCallRecord(
            call_key=self.key, call_id=self.call_id, conversation_id=self.call_id,
            source=self.source, transport=self.transport,
            caller=party_of_participant(self.participants.get(roles.caller or "")),
            callee=party_of_participant(self.participants.get(roles.callee or "")),
            started_at=self.started_at, ringing_at=None, answered_at=self.answered_at,
            ended_at=self.ended_at, result=self.result, final_code=self.final_code,
            ended_by=self.ended_by if self.ended_at is not None else None,
            hold_ns=0 if self.answered else None, early_media=False, streams=streams,
            dtmf=tuple(sorted(self.dtmf, key=lambda d: d.at)), transfer=None,
            recording_status="recorded" if audio else "no_media",
            anomalies=tuple(sorted(self.anomalies.items())), ladder=tuple(self.ladder),
            siprec=siprec_json(
                self.metadata, roles, self.participants, self.directions, self.problems
            ),
        )  # fmt: skip
