"""One call leg while it is being assembled: its dialog, media streams, digits, holds.

`Call` is the tracker's mutable per-leg state. The SIP side is the `InviteDialog` of
`callscope.protocol.dialog`; this class adds what the record needs beyond the dialog: the
parties (from the initial INVITE), the SIP ladder, the media streams paired to it, DTMF in
both directions (RFC 4733 events and SIP INFO) with echo suppression, hold time, encryption,
transfer facts and anomaly counts. `record()` freezes it into a `CallRecord`.
"""

from __future__ import annotations

import sys
from typing import Final

from callscope.assembly.events import MediaSink, StreamDirection
from callscope.assembly.media import MediaStream
from callscope.assembly.records import (
    CallRecord,
    DtmfRecord,
    LadderEntry,
    Party,
    StreamRecord,
    TransferRecord,
)
from callscope.core import Datagram, Endpoint
from callscope.protocol.dialog import InviteDialog, Role
from callscope.protocol.errors import SipParseError
from callscope.protocol.sdp import Direction, MediaDescription, SessionDescription
from callscope.protocol.sip import SipDefect, SipMessage
from callscope.protocol.sipuri import NameAddr
from callscope.protocol.telephone_event import DTMF_DIGITS, DetectedEvent, DigitDetector

__all__ = ["Call", "info_digits", "party_of"]

_SENT_BY: Final = {
    Role.CALLER: StreamDirection.CALLER_TO_CALLEE,
    Role.CALLEE: StreamDirection.CALLEE_TO_CALLER,
}
_VALID_DIGITS: Final = frozenset(DTMF_DIGITS)
# SIP INFO Signal= values some phones send as RFC 4733 event codes (10 = *, 11 = #)
_EVENT_CODES: Final = {str(code): digit for code, digit in enumerate(DTMF_DIGITS)}
_LADDER_DIRECTION: Final = {role: direction.contract for role, direction in _SENT_BY.items()}
_HELD: Final = frozenset({Direction.SENDONLY, Direction.INACTIVE, Direction.RECVONLY})
_NOBODY: Final = Party(None, None, None)  # a party not (yet) known
# RFC 3325 9.1, and the headers P-Asserted-Identity falls back to (see SipMessage)
_ASSERTED: Final = frozenset({"p-asserted-identity", "p-preferred-identity", "remote-party-id"})


def party_of(identity: NameAddr | None, number_from: NameAddr | None = None) -> Party:
    """A party from a From/To value; the number from ``number_from`` (P-Asserted-Identity)
    when given. The number is the URI's user part as on the wire, parameters cut off."""
    if identity is None and number_from is None:
        return Party(None, None, None)
    source = number_from or identity
    user = source.uri.user if source is not None else None
    number = user.partition(";")[0] or None if user else None
    if identity is None:
        return Party(number, None, None)
    return Party(number, str(identity.uri), identity.display_name)


def info_digits(msg: SipMessage) -> list[str]:
    """Digits of a SIP INFO body: ``application/dtmf-relay`` (``Signal=5``) or
    ``application/dtmf`` (the digit alone)."""
    ctype = msg.content_type
    if ctype is None or ctype.mime not in ("application/dtmf-relay", "application/dtmf"):
        return []
    text = msg.body.decode("utf-8", "replace")
    values: list[str] = []
    if ctype.mime == "application/dtmf":
        values.append(text.strip())
    else:
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip().lower() == "signal":
                values.append(value.strip())
    digits = []
    for value in values:
        digit = _EVENT_CODES.get(value, value.upper())
        if digit in _VALID_DIGITS and len(digit) == 1:
            digits.append(digit)
    return digits


class Call:
    """The assembling state of one call leg (see the module docs)."""

    # thousands of legs are open at once, and each stays known for a while after its end
    __slots__ = (
        "_detectors",
        "_directions",
        "_echo_ns",
        "_held_since",
        "_hold_ns",
        "_ladder_seen",
        "_max_ladder",
        "anomalies",
        "answered",
        "call_id",
        "callee",
        "caller",
        "conversation_id",
        "dialog",
        "dtmf",
        "early_media",
        "emitted",
        "encrypted",
        "end_scheduled",
        "group",
        "invite_dst",
        "key",
        "ladder",
        "related_call_ids",
        "rtcp_packets",
        "silence_due",
        "source",
        "streams",
        "transfer_method",
        "transfer_target",
        "transport",
    )

    def __init__(
        self, key: int, invite: SipMessage, dgram: Datagram, *, max_ladder: int, echo_ns: int
    ) -> None:
        """Start from the initial INVITE; raises `SipParseError` for an unusable one."""
        self.key = key
        self.dialog = InviteDialog(invite, dgram.at, dgram.src)
        self.call_id = self.dialog.call_id
        self.conversation_id = self.call_id
        self.group: list[Call] = [self]
        self.source = dgram.source
        self.transport = dgram.transport.value
        self.invite_dst = dgram.dst
        self.caller = _NOBODY
        self.callee = _NOBODY
        self.answered = False
        self.early_media = False
        self.encrypted: str | None = None
        self.streams: dict[tuple[StreamDirection, Endpoint, Endpoint], MediaStream] = {}
        self.rtcp_packets = 0
        self.dtmf: list[DtmfRecord] = []
        self.anomalies: dict[str, int] = {}
        self.ladder: list[LadderEntry] = []
        self.transfer_method: str | None = None
        self.transfer_target: str | None = None
        self.related_call_ids: list[str] = []
        self.emitted = False
        self.end_scheduled = False
        self.silence_due = 0  # the pending silence check (older ones are stale)
        self._ladder_seen: set[tuple[object, ...]] = set()
        self._max_ladder = max_ladder
        self._echo_ns = echo_ns
        self._detectors: dict[StreamDirection, DigitDetector] = {}
        self._directions: dict[Role, tuple[Direction, int]] = {}
        self._held_since: int | None = None
        self._hold_ns = 0
        self._set_parties(invite)

    def _set_parties(self, invite: SipMessage) -> None:
        try:
            asserted = None if _ASSERTED.isdisjoint(invite.names) else invite.p_asserted_identity
            self.caller = party_of(invite.from_, asserted)
        except SipParseError as exc:
            self.count(exc.kind)
        try:
            self.callee = party_of(invite.to)
        except SipParseError as exc:
            self.count(exc.kind)

    # -- MediaOwner ---------------------------------------------------------------------------

    def count(self, kind: str) -> None:
        """Count one anomaly of ``kind``."""
        anomalies = self.anomalies
        anomalies[kind] = anomalies.get(kind, 0) + 1

    def detector(self, direction: StreamDirection) -> DigitDetector:
        """The RFC 4733 detector of one direction."""
        found = self._detectors.get(direction)
        if found is None:
            found = self._detectors[direction] = DigitDetector()
        return found

    def on_digit(self, direction: StreamDirection, event: DetectedEvent) -> None:
        """An RFC 4733 event; DTMF digits are recorded unless they echo the other side."""
        if event.digit is None:
            return
        self.add_digit(event.digit, direction, event.at, "rfc4733")

    def encrypted_media(self, how: str) -> None:
        """The media is encrypted (SDP crypto/SAVP/zrtp-hash, ZRTP or SRTCP packets)."""
        if self.encrypted is None:
            self.encrypted = how
            self.count("media." + how)
            for stream in self.streams.values():
                stream.stop_writing()

    # -- SIP side -----------------------------------------------------------------------------

    def sender(self, msg: SipMessage, src: Endpoint) -> Role:
        """Who sent ``msg`` (see `InviteDialog.role_of`)."""
        return self.dialog.role_of(msg, src)

    def add_ladder(
        self, msg: SipMessage, dgram: Datagram, role: Role, sdp: SessionDescription | None
    ) -> None:
        """Add the message to the ladder once per hop (retransmissions left out)."""
        label = msg.method or _response_label(msg.status_code, msg.reason)
        src, dst = dgram.src, dgram.dst
        key = (src.ip, src.port, dst.ip, dst.port, label, msg.cseq)
        if key in self._ladder_seen:
            return
        if len(self.ladder) >= self._max_ladder:
            self.count("sip.ladder_truncated")
            return
        self._ladder_seen.add(key)
        self.ladder.append(
            LadderEntry(
                dgram.at, _LADDER_DIRECTION[role], label, src, dst, sdp is not None,
                msg.method, msg.status_code, None if sdp is None else _sdp_detail(sdp),
            )
        )  # fmt: skip

    def note_defects(self, msg: SipMessage) -> None:
        """Count the parser's defects of one message as anomalies (bare LF is normal)."""
        for defect in msg.defects:
            if defect is not SipDefect.BARE_LF:
                self.count(defect.value)

    def add_digit(self, digit: str, direction: StreamDirection, at: int, method: str) -> None:
        """Record a digit unless the other direction had the same digit just before: a
        device echoing the media back is not the other party pressing keys."""
        name = direction.contract
        for earlier in reversed(self.dtmf):
            if at - earlier.at > self._echo_ns:
                break
            if earlier.digit == digit and earlier.direction != name and earlier.method == method:
                self.count("dtmf.echo")
                return
        self.dtmf.append(DtmfRecord(digit, name, at, method))

    def info(self, msg: SipMessage, role: Role, at: int) -> None:
        """SIP INFO DTMF (application/dtmf-relay, application/dtmf)."""
        for digit in info_digits(msg):
            self.add_digit(digit, _SENT_BY[role], at, "sip_info")

    def answer(self, at: int) -> None:
        """The call was answered at ``at``."""
        self.answered = True
        self._update_hold(at)

    def offer_answer(self, role: Role, sdp: SessionDescription, at: int) -> None:
        """An SDP from ``role``: remember its audio direction (RFC 3264 8.4 hold)."""
        for media in sdp.media:
            if media.media == "audio" and not media.rejected:
                self._directions[role] = (media.direction, at)
                break
        if sdp.is_encrypted:
            self.encrypted_media("srtp" if not _zrtp(sdp) else "zrtp")
        self._update_hold(at)

    def _update_hold(self, at: int) -> None:
        """Hold: after the answer, an offer or answer that stops a party receiving or
        sending (sendonly, recvonly, inactive, c=0.0.0.0) until sendrecv comes back."""
        answered_at = self.dialog.answered_at
        held = False
        if answered_at is not None:
            for direction, since in self._directions.values():
                if direction in _HELD and since > answered_at:
                    held = True
                    break
        if held and self._held_since is None:
            self._held_since = at
        elif not held and self._held_since is not None:
            self._hold_ns += at - self._held_since
            self._held_since = None

    @property
    def held(self) -> bool:
        """On hold now."""
        return self._held_since is not None

    def hold_ns(self, end: int | None) -> int | None:
        """Hold time while answered, an open hold counted until ``end``."""
        if self.dialog.answered_at is None:
            return None
        total = self._hold_ns
        if self._held_since is not None and end is not None:
            total += max(0, end - self._held_since)
        return total

    # -- media side ---------------------------------------------------------------------------

    def stream(
        self,
        direction: StreamDirection,
        media: str,
        src: Endpoint,
        dst: Endpoint,
        sink: MediaSink | None,
    ) -> MediaStream:
        """The stream of a flow, created on first use."""
        key = (direction, src, dst)
        found = self.streams.get(key)
        if found is None:
            writer = None if self.encrypted is not None else sink
            found = self.streams[key] = MediaStream(self, direction, media, src, dst, sink=writer)
        return found

    def last_activity(self) -> int:
        """The latest SIP message or RTP packet of the call."""
        last = self.dialog.last_at
        for stream in self.streams.values():
            last = max(last, stream.last_at)
        return last

    def release(self) -> None:
        """After the record is made: drop what only the record needed (streams, ladder,
        digits). An emitted leg stays known until it is forgotten only to absorb late
        messages, and thousands of them may wait at once on a busy recorder."""
        self.streams = {}
        self.ladder = []
        self._ladder_seen = set()
        self._detectors = {}
        self.dtmf = []

    def settle_media(self) -> None:
        """End of the call's media: settle probation and RFC 4733 events in progress."""
        for stream in self.streams.values():
            stream.settle()
        for direction, detector in self._detectors.items():
            for event in detector.flush():
                self.on_digit(direction, event)

    # -- the record ---------------------------------------------------------------------------

    def record(self) -> CallRecord:
        """Freeze the leg into its `CallRecord`."""
        dialog = self.dialog
        is_open = dialog.is_open
        end = dialog.ended_at if dialog.ended_at is not None else self.last_activity()
        streams = tuple(s.record() for s in self.streams.values() if s.packets)
        transfer = None
        if self.transfer_method is not None:
            transfer = TransferRecord(
                self.transfer_method, self.transfer_target, tuple(self.related_call_ids)
            )
        return CallRecord(
            call_key=self.key,
            call_id=self.call_id,
            conversation_id=self.conversation_id,
            source=self.source,
            transport=self.transport,
            caller=self.caller,
            callee=self.callee,
            started_at=dialog.started_at,
            ringing_at=dialog.ringing_at,
            answered_at=dialog.answered_at,
            ended_at=dialog.ended_at if not is_open else None,
            result=dialog.result,
            final_code=dialog.final_code if not is_open or self.answered else None,
            ended_by=None if is_open else _ended_by(dialog.ended_by),
            hold_ns=self.hold_ns(end),
            early_media=self.early_media,
            streams=streams,
            dtmf=tuple(sorted(self.dtmf, key=_time_of)) if self.dtmf else (),
            transfer=transfer,
            recording_status=self._recording_status(streams),
            anomalies=tuple(sorted(self.anomalies.items())),
            ladder=tuple(self.ladder),
        )

    def _recording_status(self, streams: tuple[StreamRecord, ...]) -> str:
        if self.encrypted is not None:
            return "encrypted"
        if not streams:
            return "no_media"
        if any(s.media == "audio" for s in streams):
            return "recorded"
        if any(s.media == "video" for s in streams):
            return "video_only"
        return "no_media"


def _time_of(digit: DtmfRecord) -> int:
    return digit.at


def _ended_by(value: Role | str | None) -> str | None:
    if isinstance(value, Role):
        return value.value
    return value


def _response_label(code: int | None, reason: str | None) -> str:
    """``180 Ringing``: one interned string per distinct label, not one per message kept
    in the ladder, made once per code and reason."""
    key = (code, reason)
    label = _RESPONSE_LABELS.get(key)
    if label is None:
        label = sys.intern(f"{code} {reason or ''}".rstrip())
        if len(_RESPONSE_LABELS) >= _MAX_REMEMBERED:
            _RESPONSE_LABELS.clear()
        if reason is None or len(reason) <= _MAX_REMEMBERED_TEXT:
            _RESPONSE_LABELS[key] = label
    return label


def _sdp_detail(sdp: SessionDescription) -> str:
    """``SDP PCMA sendonly (hold)``: the first audio stream's codecs and direction."""
    for media in sdp.media:
        if media.media == "audio":
            # the codecs follow from the m= line and the attributes: a PBX repeats them
            key = (media.proto, media.formats, media.attributes, media.direction)
            detail = _SDP_DETAILS.get(key)
            if detail is None:
                detail = _audio_detail(media)
                if len(_SDP_DETAILS) >= _MAX_REMEMBERED:
                    _SDP_DETAILS.clear()
                if sum(len(value or "") for _name, value in media.attributes) <= 4096:
                    _SDP_DETAILS[key] = detail
            return detail
    return "SDP"


def _audio_detail(media: MediaDescription) -> str:
    codecs = [media.rtpmap[pt].encoding for pt in media.payload_types if pt in media.rtpmap]
    voice = "/".join(c for c in codecs if c.lower() not in ("telephone-event", "cn"))
    state = media.direction.value + (" (hold)" if media.direction in _HELD else "")
    return sys.intern(" ".join(part for part in ("SDP", voice, state) if part))


# bounded tables of labels and SDP details already made (emptied when full; long texts,
# as fuzzed input has, are made each time and not kept)
_MAX_REMEMBERED: Final = 1024
_MAX_REMEMBERED_TEXT: Final = 256
_RESPONSE_LABELS: dict[tuple[int | None, str | None], str] = {}
_SDP_DETAILS: dict[tuple[object, ...], str] = {}


def _zrtp(sdp: SessionDescription) -> bool:
    return any(m.zrtp_hash is not None for m in sdp.media)
