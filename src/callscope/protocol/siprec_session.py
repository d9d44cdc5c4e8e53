"""A SIPREC recording session as the recording server's UAS keeps it (RFC 7866 6, 8).

The values `RecordingServer` works with and hands out: its configuration, the port
allocator it is given, the actions it returns (`Outgoing` messages and the session
events `SessionStarted`, `SessionUpdated`, `SessionEnded`) and the mutable
`RecordingSession`, whose dialog state moves through `SESSION_TRANSITIONS`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from callscope.core import Endpoint, Transport
from callscope.protocol.sdp import Direction
from callscope.protocol.sip import SipMessage
from callscope.protocol.siprec import RecordingMetadata
from callscope.protocol.siprec_offer import DEFAULT_CODECS

__all__ = [
    "ACCEPT",
    "ALLOW",
    "SESSION_TRANSITIONS",
    "Action",
    "EndReason",
    "MediaLeg",
    "Outgoing",
    "PortAllocator",
    "RecordingSession",
    "Retransmission",
    "SessionEnded",
    "SessionInput",
    "SessionStarted",
    "SessionState",
    "SessionUpdated",
    "SrsConfig",
]

ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"
ACCEPT: Final = "application/sdp, application/rs-metadata+xml, application/rs-metadata"


class SessionState(enum.Enum):
    """A recording session's dialog as its UAS sees it (RFC 3261 12, 13.3)."""

    PENDING = "pending"  # INVITE received, 100 sent, answer not yet sent
    ANSWERED = "answered"  # 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"  # ACK received
    TERMINATED = "terminated"


class SessionInput(enum.Enum):
    """What moves a session."""

    ANSWER = "2xx sent"
    ACK = "ACK received"
    CANCEL = "CANCEL received"
    BYE = "BYE received"
    NO_ACK = "no ACK after 64*T1"
    END = "ended by the recorder"


SESSION_TRANSITIONS: Final = {
    SessionState.PENDING: {
        SessionInput.ANSWER: SessionState.ANSWERED,
        SessionInput.CANCEL: SessionState.TERMINATED,
        SessionInput.END: SessionState.TERMINATED,
    },
    SessionState.ANSWERED: {
        SessionInput.ACK: SessionState.CONFIRMED,
        SessionInput.BYE: SessionState.TERMINATED,
        SessionInput.NO_ACK: SessionState.TERMINATED,
        SessionInput.END: SessionState.TERMINATED,
    },
    SessionState.CONFIRMED: {
        SessionInput.ANSWER: SessionState.ANSWERED,  # the 2xx of a re-INVITE awaits its ACK
        SessionInput.BYE: SessionState.TERMINATED,
        SessionInput.END: SessionState.TERMINATED,
    },
}


class EndReason(enum.StrEnum):
    """Why a recording session ended."""

    BYE = "bye"  # the recording client hung up
    NO_ACK = "no_ack"  # the 2xx was never acknowledged
    TERMINATED = "terminated"  # this recorder ended it (idle timeout, shutdown)


class PortAllocator(Protocol):
    """RTP ports for the answers (the capture layer binds them)."""

    def allocate(self, count: int) -> list[int] | None:
        """``count`` free even RTP ports, next to each other where possible (a client that
        can only add an offset to the first port then still works), or None when there
        are not that many."""

    def release(self, port: int) -> None:
        """The port is no longer used by any session."""


@dataclass(frozen=True, slots=True)
class SrsConfig:
    """Tunables: ``media_address``/``contact_host`` default to the address the request
    came in on; ``instance`` makes tags and branches unique per process."""

    media_address: str | None = None
    contact_host: str | None = None
    user_agent: str = "callscope"
    codecs: frozenset[str] = DEFAULT_CODECS
    answer_delay_ns: int = 0
    max_sessions: int = 2000
    instance: str = "cs"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: over UDP to ``dst``; over TCP/TLS on the connection to ``dst``."""

    data: bytes
    dst: Endpoint
    transport: Transport


@dataclass(frozen=True, slots=True)
class MediaLeg:
    """One answered m= line: its index, label, our RTP port (0: refused), the client's
    address and port from the offer, the payload types and the offer's direction."""

    index: int
    label: str | None
    media: str
    port: int
    remote: Endpoint | None
    payload_map: Mapping[int, tuple[str, int, int]]
    direction: Direction


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A recording session was answered."""

    session: int
    call_id: str
    at: int
    media: tuple[MediaLeg, ...]
    metadata: RecordingMetadata | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """A re-INVITE or UPDATE changed the media or the metadata (merged)."""

    session: int
    at: int
    media: tuple[MediaLeg, ...]
    metadata: RecordingMetadata | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over; its ports were released."""

    session: int
    at: int
    reason: EndReason


Action = Outgoing | SessionStarted | SessionUpdated | SessionEnded


@dataclass(eq=False)
class Retransmission:
    """A 2xx or BYE sent again until answered (RFC 3261 13.3.1.4, 17.1.2.2 Timer E)."""

    session: int
    data: bytes
    cseq: int
    interval: int
    give_up: int


@dataclass
class RecordingSession:
    """One recording session's dialog: tags, where it came from, ports per label, the
    current answer and media, the merged metadata, a 2xx waiting for its ACK."""

    key: int
    invite: SipMessage
    call_id: str
    remote_tag: str
    local_tag: str
    src: Endpoint
    transport: Transport
    local: Endpoint
    state: SessionState = SessionState.PENDING
    remote_cseq: int = 0
    local_cseq: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    media: tuple[MediaLeg, ...] = ()
    answer: bytes = b""
    sdp_version: int = 1
    metadata: RecordingMetadata | None = None
    problems: tuple[str, ...] = ()
    pending: Retransmission | None = None
    invite_tx: tuple[str, ...] = ()
    started: bool = False

    def move(self, event: SessionInput) -> SessionState:
        self.state = SESSION_TRANSITIONS.get(self.state, {}).get(event, self.state)
        return self.state
