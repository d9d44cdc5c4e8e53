"""What the tracker tells its caller: call events, and the media sink it writes packets to.

`CallTracker.receive` and friends return `CallEvent`s in the order things happened:
`CallStarted` on the first INVITE of a leg, `CallRinging` on its first 18x, `CallAnswered` on
the first 2xx, `CallEnded` with the final `CallRecord` once the call is over (after a short
linger for the media tail) or at the end of the input. ``call_key`` is an int unique within
one tracker: the same Call-ID may come back later as another leg.

`MediaSink` is how the audio spool receives each RTP packet of a paired audio stream, in
arrival order, without the tracker doing I/O; `close_call` comes right before `CallEnded`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from callscope.core.frozen import quick_init

if TYPE_CHECKING:
    from callscope.assembly.records import CallRecord

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallKey",
    "CallRinging",
    "CallStarted",
    "MediaSink",
    "StreamDirection",
]

#: a call leg's number within one tracker (events and the media sink use it)
CallKey = int


class StreamDirection(enum.IntEnum):
    """Which party sent a stream; the values equal `callscope.audio.packets.Direction`."""

    CALLER_TO_CALLEE = 0
    CALLEE_TO_CALLER = 1

    @property
    def contract(self) -> str:
        """The contract's name: ``caller_to_callee`` or ``callee_to_caller``."""
        return _CONTRACT_NAMES[self]


#: one string per direction (each ladder entry, stream and digit refers to it)
_CONTRACT_NAMES: Final = {direction: direction.name.lower() for direction in StreamDirection}


@quick_init
@dataclass(frozen=True, slots=True)
class CallStarted:
    """The first INVITE of a call leg was seen."""

    call_key: CallKey
    call_id: str
    at: int


@quick_init
@dataclass(frozen=True, slots=True)
class CallRinging:
    """The first provisional response 101-199 (ringing or session progress)."""

    call_key: CallKey
    at: int


@quick_init
@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The first 2xx to the initial INVITE."""

    call_key: CallKey
    at: int


@quick_init
@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over (or the input ended): its final record."""

    call_key: CallKey
    record: CallRecord


CallEvent = CallStarted | CallRinging | CallAnswered | CallEnded


class MediaSink(Protocol):
    """Receives the RTP packets of paired audio streams (e.g. the audio spool).

    ``direction`` is a `StreamDirection` value; ``at`` the arrival time in int ns;
    ``payload`` the RTP payload without CSRCs, header extension and padding. Packets of
    encrypted calls and of video streams are not written.
    """

    def write(  # noqa: PLR0917 - positional: called once per RTP packet
        self,
        call_key: CallKey,
        direction: int,
        at: int,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload_type: int,
        marker: bool,
        payload: bytes,
    ) -> None:
        """Store one packet."""

    def close_call(self, call_key: CallKey) -> None:
        """No more packets will come for ``call_key``."""
