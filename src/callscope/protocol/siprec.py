"""SIPREC recording metadata (RFC 7865) as recording clients really send it.

`RecordingMetadata.parse` reads the ``application/rs-metadata+xml`` (or the older
``application/rs-metadata``) body of a SIPREC INVITE, re-INVITE or UPDATE (RFC 7866 8.2):
the communication sessions, the participants (address of record, name, the streams each
one sends and receives) and the streams with the SDP ``a=label`` that ties each to an m=
line (RFC 4574). `RecordingMetadata.merge` applies a partial update (``datamode`` partial,
RFC 7865 6.1.1) to what is known.

Theory of operation: the XML is read by `siprec_xml` (bounded, no DTD, no entities). The
tree is then read by local names in lower case, which takes in the three generations of
the schema seen in the field:

* RFC 7865, namespace ``urn:ietf:params:xml:ns:recording:1``: ``participant_id``
  attributes, ``nameID aor=`` with ``name`` inside, ``participantstreamassoc`` with
  ``send``/``recv``;
* the pre-RFC drafts, ``urn:ietf:params:xml:ns:recording`` (Acme Packet, Metaswitch,
  Sonus): ``id``/``session`` attributes and ``send`` inside ``participant``;
* the early draft ``urn:ietf:params:xml:ns:siprec`` with root ``recording_metadata``
  (BroadWorks): ``aor`` as an element and ``send``/``recv`` holding ``id`` elements.

Element names are matched without regard to case (``dataMode``). Vendor extension data
is not interpreted, except for the hints some clients give about who called whom
(Acme ``callingParty``, Sonus ``fromhdr``/``tohdr``, BroadWorks and Metaswitch
``callingPartyNumber``/``calledPartyNumber``/``dialedDigits``), kept as
``calling_hints``/``called_hints`` and `Participant.calling`.

Survivable oddities are recorded in ``problems`` (fixed messages); a document that cannot
be read raises `SiprecParseError` with a fixed message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from callscope.protocol.errors import SiprecParseError
from callscope.protocol.siprec_xml import XmlElement, parse_xml

__all__ = [
    "MAX_METADATA_BYTES",
    "NAMESPACES",
    "CommunicationSession",
    "DataMode",
    "Participant",
    "RecordingMetadata",
    "Stream",
    "aor_user",
]

#: the largest metadata document read (a conference of dozens of parties is ~50 KB)
MAX_METADATA_BYTES: Final = 256 * 1024

#: namespaces of the root element: RFC 7865 and the drafts before it
NAMESPACES: Final = {
    "urn:ietf:params:xml:ns:recording:1": "rfc7865",
    "urn:ietf:params:xml:ns:recording": "draft-ietf-siprec-metadata",
    "urn:ietf:params:xml:ns:siprec": "draft-ram-siprec-metadata",
}
_ROOTS: Final = frozenset({"recording", "recording_metadata"})
# vendor extension elements naming the calling and the called party (see the module docs)
_CALLING_HINTS: Final = frozenset({"callingpartynumber", "fromhdr"})
_CALLED_HINTS: Final = frozenset({"calledpartynumber", "tohdr", "dialeddigits"})
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


class DataMode(enum.StrEnum):
    """RFC 7865 6.1.1: a complete snapshot, or a partial update of what was sent before."""

    COMPLETE = "complete"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class CommunicationSession:
    """A recorded session (RFC 7865 6.3): its SIP Session-IDs and times as sent."""

    session_id: str
    sip_session_ids: tuple[str, ...] = ()
    group_ref: str | None = None
    start_time: str | None = None
    stop_time: str | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    """A party of the recorded session (RFC 7865 6.5).

    ``send``/``receive`` are the stream ids the participant sends and receives; None means
    the document does not say (only in a partial update). ``calling`` is a vendor's own
    flag for the calling party (Acme ``callingParty``), None when absent.
    """

    participant_id: str
    aor: str | None = None
    name: str | None = None
    send: tuple[str, ...] | None = None
    receive: tuple[str, ...] | None = None
    session_ids: tuple[str, ...] = ()
    calling: bool | None = None

    @property
    def number(self) -> str | None:
        """The user part of the address of record (see `aor_user`)."""
        return aor_user(self.aor)


@dataclass(frozen=True, slots=True)
class Stream:
    """A media stream (RFC 7865 6.6): ``label`` is the SDP ``a=label`` of its m= line;
    ``mode`` is the drafts' ``separate``/``mixed``."""

    stream_id: str
    session_id: str | None = None
    label: str | None = None
    mode: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingMetadata:
    """One metadata document, or the merge of a snapshot and its updates."""

    namespace: str
    data_mode: DataMode
    sessions: tuple[CommunicationSession, ...] = ()
    participants: tuple[Participant, ...] = ()
    streams: tuple[Stream, ...] = ()
    recording_id: str | None = None
    calling_hints: tuple[str, ...] = ()
    called_hints: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RecordingMetadata:
        """Parse a metadata body; raises SiprecParseError (fixed message) if unreadable."""
        return _interpret(parse_xml(data, MAX_METADATA_BYTES))

    def stream_for_label(self, label: str) -> Stream | None:
        """The stream whose ``label`` is the SDP ``a=label`` value (RFC 7866 8.1.1)."""
        for stream in self.streams:
            if stream.label == label:
                return stream
        return None

    def participant(self, participant_id: str) -> Participant | None:
        """The participant with this id."""
        for participant in self.participants:
            if participant.participant_id == participant_id:
                return participant
        return None

    def senders(self, stream_id: str) -> tuple[Participant, ...]:
        """Participants that send the stream (two or more for a mixed stream)."""
        return tuple(p for p in self.participants if p.send and stream_id in p.send)

    def merge(self, update: RecordingMetadata) -> RecordingMetadata:
        """Apply ``update``: a complete snapshot replaces everything (RFC 7865 6.1.1); a
        partial one replaces the elements it names and keeps the rest. A participant's
        ``send``/``receive`` given in the update replace the old ones whole (a hold is
        sent as a participant that no longer sends)."""
        if update.data_mode is DataMode.COMPLETE:
            return update
        participants = {p.participant_id: p for p in self.participants}
        for new in update.participants:
            old = participants.get(new.participant_id)
            participants[new.participant_id] = new if old is None else _merge_participant(old, new)
        streams = {s.stream_id: s for s in self.streams}
        for stream in update.streams:
            old_stream = streams.get(stream.stream_id)
            streams[stream.stream_id] = (
                stream if old_stream is None else _merge_stream(old_stream, stream)
            )
        sessions = {s.session_id: s for s in self.sessions}
        sessions.update((s.session_id, s) for s in update.sessions)
        return RecordingMetadata(
            namespace=self.namespace,
            data_mode=self.data_mode,
            sessions=tuple(sessions.values()),
            participants=tuple(participants.values()),
            streams=tuple(streams.values()),
            recording_id=update.recording_id or self.recording_id,
            calling_hints=_union(self.calling_hints, update.calling_hints),
            called_hints=_union(self.called_hints, update.called_hints),
            problems=_union(self.problems, update.problems),
        )


def aor_user(aor: str | None) -> str | None:
    """The user part of an address of record, as on the wire, parameters cut off:
    ``sip:3478@8.41.17.71`` and ``2249888500@host`` give the number, ``tel:+8131`` its
    number, a bare ``7602922416`` itself, a name-addr its URI's user."""
    if not aor:
        return None
    text = aor.strip()
    if "<" in text and ">" in text:
        text = text[text.find("<") + 1 : text.find(">")]
    scheme, sep, rest = text.partition(":")
    if sep and scheme.lower() in ("sip", "sips", "tel"):
        text = rest
    user = text.partition("@")[0] if "@" in text or scheme.lower() != "tel" else text
    user = user.partition(";")[0].strip()
    return user or None


# -- interpretation -------------------------------------------------------------------------


@dataclass
class _Draft:
    """What one document says, collected before the frozen objects are made."""

    namespace: str
    data_mode: DataMode = DataMode.COMPLETE
    recording_id: str | None = None
    sessions: dict[str, CommunicationSession] = field(default_factory=dict)
    participants: dict[str, dict[str, object]] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def party(self, participant_id: str) -> dict[str, object]:
        found = self.participants.get(participant_id)
        if found is None:
            found = self.participants[participant_id] = {"sessions": []}
        return found

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def _interpret(root: XmlElement) -> RecordingMetadata:
    if root.name not in _ROOTS:
        raise SiprecParseError("metadata root is not a recording element")
    if root.namespace and root.namespace not in NAMESPACES:
        raise SiprecParseError("unknown metadata namespace")
    if not root.children:
        raise SiprecParseError("metadata has no elements")
    draft = _Draft(root.namespace)
    if not root.namespace:
        draft.problem("metadata has no namespace")
    draft.recording_id = root.attr("id")
    for element in root.children:
        if element.namespace != root.namespace:
            continue  # an extension in its own namespace
        handler = _HANDLERS.get(element.name)
        if handler is not None:
            handler(draft, element)
    calling, called = _hints(root)
    return RecordingMetadata(
        namespace=root.namespace,
        data_mode=draft.data_mode,
        sessions=tuple(draft.sessions.values()),
        participants=tuple(_participant(pid, d, draft) for pid, d in draft.participants.items()),
        streams=tuple(draft.streams.values()),
        recording_id=draft.recording_id,
        calling_hints=calling,
        called_hints=called,
        problems=tuple(draft.problems),
    )


def _on_datamode(draft: _Draft, element: XmlElement) -> None:
    text = element.text.strip().lower()
    if text in ("complete", "partial"):
        draft.data_mode = DataMode(text)
    else:
        draft.problem("unknown datamode")


def _on_recording(draft: _Draft, element: XmlElement) -> None:
    # draft-ram-siprec-metadata: <recording id=...> inside <recording_metadata>
    draft.recording_id = element.attr("id") or draft.recording_id


def _on_session(draft: _Draft, element: XmlElement) -> None:
    session_id = element.attr("session_id", "id")
    if session_id is None:
        draft.problem("session without id")
        return
    draft.sessions[session_id] = CommunicationSession(
        session_id=session_id,
        sip_session_ids=tuple(" ".join(t.split()) for t in element.child_texts("sipsessionid")),
        group_ref=_first(element.child_texts("group-ref")) or element.attr("group"),
        start_time=_first(element.child_texts("start-time")),
        stop_time=_first(element.child_texts("stop-time")),
    )


def _on_participant(draft: _Draft, element: XmlElement) -> None:
    participant_id = element.attr("participant_id", "id")
    if participant_id is None:
        draft.problem("participant without id")
        return
    party = draft.party(participant_id)
    session = element.attr("session")
    if session is not None:
        _add(party, "sessions", [session])
    for child in element.children:
        if child.name == "nameid":
            _set_once(party, "aor", child.attr("aor") or _first(child.child_texts("aor")))
            _set_once(party, "name", _first(child.child_texts("name")))
        elif child.name in ("aor", "name"):
            _set_once(party, child.name, child.text.strip())
        elif child.name in ("send", "recv", "receive"):
            _add(party, "send" if child.name == "send" else "receive", _ids(child))
    for node in element.walk():
        if node.name == "callingparty" and node.text.strip().lower() in _TRUE | _FALSE:
            party["calling"] = node.text.strip().lower() in _TRUE


def _on_stream(draft: _Draft, element: XmlElement) -> None:
    stream_id = element.attr("stream_id", "id")
    if stream_id is None:
        draft.problem("stream without id")
        return
    draft.streams[stream_id] = Stream(
        stream_id=stream_id,
        session_id=element.attr("session_id", "session"),
        label=_first(element.child_texts("label")),
        mode=_first(element.child_texts("mode")),
    )


def _on_participant_session(draft: _Draft, element: XmlElement) -> None:
    participant_id = element.attr("participant_id")
    session_id = element.attr("session_id")
    if participant_id is None or session_id is None:
        draft.problem("association without ids")
        return
    _add(draft.party(participant_id), "sessions", [session_id])


def _on_participant_stream(draft: _Draft, element: XmlElement) -> None:
    participant_id = element.attr("participant_id")
    if participant_id is None:
        draft.problem("association without ids")
        return
    party = draft.party(participant_id)
    # RFC 7865 6.9: the association states the participant's streams whole
    party.setdefault("send", [])
    party.setdefault("receive", [])
    for child in element.children:
        if child.name in ("send", "recv", "receive"):
            _add(party, "send" if child.name == "send" else "receive", _ids(child))


_HANDLERS = {
    "datamode": _on_datamode,
    "recording": _on_recording,
    "session": _on_session,
    "participant": _on_participant,
    "stream": _on_stream,
    "participantsessionassoc": _on_participant_session,
    "participantstreamassoc": _on_participant_stream,
}


def _participant(participant_id: str, data: dict[str, object], draft: _Draft) -> Participant:
    complete = draft.data_mode is DataMode.COMPLETE
    send = data.get("send")
    receive = data.get("receive")
    return Participant(
        participant_id=participant_id,
        aor=_str(data.get("aor")),
        name=_str(data.get("name")),
        send=_ids_tuple(send) if send is not None else (() if complete else None),
        receive=_ids_tuple(receive) if receive is not None else (() if complete else None),
        session_ids=_ids_tuple(data.get("sessions")) or (),
        calling=calling if isinstance(calling := data.get("calling"), bool) else None,
    )


def _hints(root: XmlElement) -> tuple[tuple[str, ...], tuple[str, ...]]:
    calling: list[str] = []
    called: list[str] = []
    for node in root.walk():
        text = " ".join(node.text.split())
        if not text:
            continue
        if node.name in _CALLING_HINTS and text not in calling:
            calling.append(text)
        elif node.name in _CALLED_HINTS and text not in called:
            called.append(text)
    return tuple(calling), tuple(called)


def _ids(element: XmlElement) -> list[str]:
    """Stream ids of a send/recv element: its text, or its ``id`` children (old draft)."""
    nested = element.child_texts("id")
    if nested:
        return nested
    text = element.text.strip()
    return [text] if text else []


def _set_once(party: dict[str, object], key: str, value: str | None) -> None:
    if value and not party.get(key):
        party[key] = value


def _add(party: dict[str, object], key: str, values: list[str]) -> None:
    existing = party.setdefault(key, [])
    assert isinstance(existing, list)
    existing.extend(v for v in values if v not in existing)


def _ids_tuple(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(v for v in second if v not in first)


def _merge_participant(old: Participant, new: Participant) -> Participant:
    return Participant(
        participant_id=old.participant_id,
        aor=new.aor or old.aor,
        name=new.name or old.name,
        send=new.send if new.send is not None else old.send,
        receive=new.receive if new.receive is not None else old.receive,
        session_ids=_union(old.session_ids, new.session_ids),
        calling=new.calling if new.calling is not None else old.calling,
    )


def _merge_stream(old: Stream, new: Stream) -> Stream:
    return Stream(
        stream_id=old.stream_id,
        session_id=new.session_id or old.session_id,
        label=new.label or old.label,
        mode=new.mode or old.mode,
    )
