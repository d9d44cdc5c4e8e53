"""Turns SIP and media into calls: the SDP endpoint map, stream-to-call pairing, SSRC
continuity, hold, transfer linking, results and timings, emitted as `CallEvent`s and final
call records. Sans-IO: the tracker is fed datagrams with their capture time and is told
when time has passed (`expire(now=...)`); it never reads a clock.
"""

from callscope.assembly.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallKey,
    CallRinging,
    CallStarted,
    MediaSink,
    StreamDirection,
)
from callscope.assembly.orphans import OrphanStream
from callscope.assembly.records import (
    CallRecord,
    DtmfRecord,
    LadderEntry,
    Party,
    StreamRecord,
    TransferRecord,
)
from callscope.assembly.tracker import CallTracker, TrackerConfig

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallKey",
    "CallRecord",
    "CallRinging",
    "CallStarted",
    "CallTracker",
    "DtmfRecord",
    "LadderEntry",
    "MediaSink",
    "OrphanStream",
    "Party",
    "StreamDirection",
    "StreamRecord",
    "TrackerConfig",
    "TransferRecord",
]
