"""Who is the caller in a SIPREC recording, and which channel each labelled stream takes.

The recording client (SRC) and the recording server are not the parties of the call: the
metadata (RFC 7865) names them. `assign_roles` picks the caller and the callee among the
participants, in this order of evidence:

1. a vendor's own calling-party flag (Acme ``callingParty`` true/false);
2. a participant whose number matches a calling or called hint from the extension data
   (Sonus ``fromhdr``/``tohdr``, BroadWorks and Metaswitch ``callingPartyNumber``,
   ``calledPartyNumber``, ``dialedDigits``; numbers match when one ends with the other
   and the shorter has at least 4 digits, so ``17602922410`` matches ``7602922410``);
3. document order: the first participant that sends a stream is the caller, the next one
   the callee (RFC 7865 gives no order, but every client in the test data lists the
   calling party first).

`stream_direction` then maps a stream to the channel of its sender: the caller's streams
go left (``caller_to_callee``), the callee's right. A mixed stream sent by both goes left;
a stream with no known sender takes the side of its label's place among the answered
streams (first left, second right) and is counted as a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from callscope.assembly.events import StreamDirection
from callscope.assembly.records import Party
from callscope.protocol.siprec import NAMESPACES, Participant, RecordingMetadata, aor_user

__all__ = ["Roles", "assign_roles", "party_of_participant", "siprec_json", "stream_direction"]

_MIN_SUFFIX_DIGITS: Final = 4


@dataclass(frozen=True, slots=True)
class Roles:
    """Participant ids of the caller and the callee (None when unknown)."""

    caller: str | None
    callee: str | None

    def direction_of(self, participant_id: str) -> StreamDirection | None:
        """The channel of a participant's streams, None for a third party."""
        if participant_id == self.caller:
            return StreamDirection.CALLER_TO_CALLEE
        if participant_id == self.callee:
            return StreamDirection.CALLEE_TO_CALLER
        return None


def _digits(text: str | None) -> str:
    return "".join(c for c in (aor_user(text) or "") if c.isdigit())


def _same_number(first: str | None, second: str | None) -> bool:
    a, b = _digits(first), _digits(second)
    if not a or not b:
        return aor_user(first) is not None and aor_user(first) == aor_user(second)
    short, long = sorted((a, b), key=len)
    return long.endswith(short) and (len(short) >= _MIN_SUFFIX_DIGITS or short == long)


def _matching(participants: Iterable[Participant], hints: tuple[str, ...]) -> str | None:
    for participant in participants:
        if any(_same_number(participant.aor, hint) for hint in hints):
            return participant.participant_id
    return None


def assign_roles(metadata: RecordingMetadata | None) -> Roles:
    """The caller and callee among the participants (see the module docs)."""
    if metadata is None or not metadata.participants:
        return Roles(None, None)
    people = metadata.participants
    caller = next((p.participant_id for p in people if p.calling is True), None)
    callee = next((p.participant_id for p in people if p.calling is False), None)
    caller = caller or _matching(people, metadata.calling_hints)
    others = [p for p in people if p.participant_id != caller]
    callee = callee or _matching(others, metadata.called_hints)
    ordered = sorted(people, key=lambda p: not p.send)  # senders first, stable
    for participant in ordered:
        pid = participant.participant_id
        if caller is None and pid != callee:
            caller = pid
        elif callee is None and pid != caller:
            callee = pid
    return Roles(caller, callee)


def stream_direction(
    metadata: RecordingMetadata | None, roles: Roles, label: str | None
) -> tuple[StreamDirection | None, str | None]:
    """The channel of the stream with ``label`` from its senders, and an anomaly kind
    when the answer is not plain (``siprec.mixed_stream``) or not known (None)."""
    if metadata is None or label is None:
        return None, None
    stream = metadata.stream_for_label(label)
    if stream is None:
        return None, None
    found = {roles.direction_of(p.participant_id) for p in metadata.senders(stream.stream_id)}
    found.discard(None)
    if found == {StreamDirection.CALLEE_TO_CALLER}:
        return StreamDirection.CALLEE_TO_CALLER, None
    if found == {StreamDirection.CALLER_TO_CALLEE}:
        return StreamDirection.CALLER_TO_CALLEE, None
    if found:
        return StreamDirection.CALLER_TO_CALLEE, "siprec.mixed_stream"
    return None, None


def party_of_participant(participant: Participant | None) -> Party:
    """A call-record party: the AOR's user part as the number, the AOR, the name."""
    if participant is None:
        return Party(None, None, None)
    return Party(participant.number, participant.aor, participant.name)


def siprec_json(
    metadata: RecordingMetadata | None,
    roles: Roles,
    participants: Mapping[str, Participant],
    directions: Mapping[str, StreamDirection],
    problems: Iterable[str],
) -> dict[str, Any]:
    """The ``siprec`` object stored with the call record: sessions, every participant
    seen (with role and the labels it sent), streams with their channel, problems."""
    labels = {s.stream_id: s.label for s in metadata.streams} if metadata is not None else {}
    role_names = {roles.caller: "caller", roles.callee: "callee"}
    return {
        "schema": NAMESPACES.get(metadata.namespace, "none") if metadata is not None else None,
        "recording_id": metadata.recording_id if metadata is not None else None,
        "sessions": [
            {
                "session_id": s.session_id,
                "sip_session_ids": list(s.sip_session_ids),
                "start_time": s.start_time,
            }
            for s in (metadata.sessions if metadata is not None else ())
        ],
        "participants": [
            {
                "participant_id": p.participant_id,
                "aor": p.aor,
                "number": p.number,
                "name": p.name,
                "role": role_names.get(p.participant_id),
                "sends": sorted({labels[s] or "" for s in p.send or () if s in labels}),
            }
            for p in participants.values()
        ],
        "streams": [
            {"label": label, "direction": direction.contract}
            for label, direction in sorted(directions.items())
        ],
        "problems": sorted(set(problems)),
    }
