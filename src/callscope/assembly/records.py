"""The call record: what the tracker knows about one call leg when it ends.

`CallRecord.to_contract()` renders exactly the JSON object of
``shared/contracts/call-record.schema.json`` (times as ISO 8601 UTC with microseconds,
durations in seconds). Beyond the contract the record keeps what later layers need: the
SIP ladder for the console, and per stream the payload type map the audio layer decodes
with. Times inside are int ns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callscope.core import Endpoint, format_utc
from callscope.core.frozen import quick_init

__all__ = [
    "CallRecord",
    "DtmfRecord",
    "LadderEntry",
    "Party",
    "PayloadFormat",
    "StreamRecord",
    "TransferRecord",
]

#: ``(encoding, clock rate, channels)`` of one payload type, as in the SDP rtpmap
PayloadFormat = tuple[str, int, int]


def seconds(start: int | None, end: int | None) -> float | None:
    """``end - start`` in seconds (microsecond precision), None if either is unknown."""
    if start is None or end is None:
        return None
    return round(max(0, end - start) / 1e9, 6)


@quick_init
@dataclass(frozen=True, slots=True)
class Party:
    """One side of the call: number (user part as on the wire), URI and display name."""

    number: str | None
    uri: str | None
    display_name: str | None

    def to_contract(self) -> dict[str, Any]:
        """The contract's ``party`` object."""
        return {"number": self.number, "uri": self.uri, "display_name": self.display_name}


@quick_init
@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One direction of media between two endpoints (SSRC changes continue it).

    ``payload_map`` maps every payload type the SDP declared for it to
    ``(encoding, clock rate, channels)``; ``early`` is True when packets came before the
    answer; ``rtcp_packets`` counts RTCP seen on the same flow (rtcp-mux) or its RTCP port.
    """

    direction: str
    media: str
    codec: str | None
    payload_types: tuple[int, ...]
    src: Endpoint
    dst: Endpoint
    ssrcs: tuple[int, ...]
    packets: int
    lost: int
    duplicates: int
    jitter_ms: float | None
    first_at: int | None
    last_at: int | None
    payload_map: Mapping[int, PayloadFormat]
    early: bool = False
    rtcp_packets: int = 0

    def to_contract(self) -> dict[str, Any]:
        """The contract's ``streams[]`` item."""
        return {
            "direction": self.direction,
            "media": self.media,
            "codec": self.codec,
            "payload_types": list(self.payload_types),
            "src": str(self.src),
            "dst": str(self.dst),
            "ssrcs": list(self.ssrcs),
            "packets": self.packets,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "jitter_ms": self.jitter_ms,
            "first_at": format_utc(self.first_at),
            "last_at": format_utc(self.last_at),
        }


@quick_init
@dataclass(frozen=True, slots=True)
class DtmfRecord:
    """One digit: ``method`` is ``rfc4733`` (RTP events) or ``sip_info``."""

    digit: str
    direction: str
    at: int
    method: str

    def to_contract(self) -> dict[str, Any]:
        """The contract's ``dtmf[]`` item."""
        return {
            "digit": self.digit,
            "direction": self.direction,
            "at": format_utc(self.at),
            "method": self.method,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer this leg took part in (RFC 3515 REFER, RFC 3891 Replaces)."""

    method: str
    target: str | None
    related_call_ids: tuple[str, ...]

    def to_contract(self) -> dict[str, Any]:
        """The contract's ``transfer`` object."""
        return {
            "method": self.method,
            "target": self.target,
            "related_call_ids": list(self.related_call_ids),
        }


@quick_init
@dataclass(frozen=True, slots=True)
class LadderEntry:
    """One SIP message of the call for the console's ladder diagram (first copy per hop);
    ``detail`` notes the SDP's audio direction and codecs, e.g. ``SDP sendonly (hold)``."""

    at: int
    direction: str
    label: str
    src: Endpoint
    dst: Endpoint
    sdp: bool = False
    method: str | None = None
    status: int | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the store's ``ladder`` column (the console's ladder format)."""
        entry: dict[str, Any] = {
            "at": format_utc(self.at),
            "direction": self.direction,
            "label": self.label,
            "src": str(self.src),
            "dst": str(self.dst),
            "sdp": self.sdp,
        }
        if self.method is not None:
            entry["method"] = self.method
        if self.status is not None:
            entry["status"] = self.status
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


@quick_init
@dataclass(frozen=True, slots=True)
class CallRecord:
    """Everything known about one call leg (see the module docs)."""

    call_key: int
    call_id: str
    conversation_id: str
    source: str
    transport: str
    caller: Party
    callee: Party
    started_at: int
    ringing_at: int | None
    answered_at: int | None
    ended_at: int | None
    result: str
    final_code: int | None
    ended_by: str | None
    hold_ns: int | None
    early_media: bool
    streams: tuple[StreamRecord, ...]
    dtmf: tuple[DtmfRecord, ...]
    transfer: TransferRecord | None
    recording_status: str
    anomalies: tuple[tuple[str, int], ...]
    ladder: tuple[LadderEntry, ...] = ()

    @property
    def setup_seconds(self) -> float | None:
        """INVITE -> answer, or INVITE -> end when not answered."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return seconds(self.started_at, end)

    @property
    def ring_seconds(self) -> float | None:
        """First 18x -> answer or end."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return seconds(self.ringing_at, end)

    @property
    def talk_seconds(self) -> float | None:
        """Answer -> end, holds included."""
        return seconds(self.answered_at, self.ended_at)

    @property
    def hold_seconds(self) -> float | None:
        """Time on hold while answered (None when never answered)."""
        return None if self.hold_ns is None else round(self.hold_ns / 1e9, 6)

    def to_contract(self) -> dict[str, Any]:
        """The JSON object of ``call-record.schema.json`` (``direction`` is left to the
        number directory, so it is not set here)."""
        return {
            "call_id": self.call_id,
            "conversation_id": self.conversation_id,
            "source": self.source,
            "transport": self.transport,
            "caller": self.caller.to_contract(),
            "callee": self.callee.to_contract(),
            "started_at": format_utc(self.started_at),
            "ringing_at": format_utc(self.ringing_at),
            "answered_at": format_utc(self.answered_at),
            "ended_at": format_utc(self.ended_at),
            "result": self.result,
            "final_code": self.final_code,
            "ended_by": self.ended_by,
            "setup_seconds": self.setup_seconds,
            "ring_seconds": self.ring_seconds,
            "talk_seconds": self.talk_seconds,
            "hold_seconds": self.hold_seconds,
            "early_media": self.early_media,
            "streams": [s.to_contract() for s in self.streams],
            "dtmf": [d.to_contract() for d in self.dtmf],
            "transfer": None if self.transfer is None else self.transfer.to_contract(),
            "recording": {
                "id": None,
                "status": self.recording_status,
                "duration_seconds": None,
                "channels": None,
                "sample_rate": None,
            },
            "anomalies": [{"kind": kind, "count": count} for kind, count in self.anomalies],
        }

    def ladder_json(self) -> list[dict[str, Any]]:
        """The ladder as JSON objects (the store's ``ladder`` column)."""
        return [entry.to_dict() for entry in self.ladder]
