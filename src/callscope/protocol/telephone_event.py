"""RFC 4733 telephone events (DTMF in RTP) and a per-stream digit detector.

Theory of operation of `DigitDetector`
--------------------------------------
RFC 4733 2.5.1.3: every packet of one event carries the RTP timestamp of the event's
start; only the duration grows. The End bit is set on the last packets, which are sent
three times (2.5.1.4), sometimes with the same sequence number. The marker bit marks the
first packet but is lost with it, and some senders set it wrongly, so the detector keys
events on the RTP timestamp alone:

* a packet with a timestamp not seen before starts an event (and first settles the event
  in progress if that never saw an End packet: its End packets were lost);
* the first End packet of the event in progress reports it; later End copies and any
  packet of an already reported timestamp are ignored;
* `flush()` at the end of the stream reports an event still in progress.

A long event is split into segments of at most 0xFFFF timestamp units (2.5.1.3): a new
timestamp without the marker bit, carrying the same event code while the previous segment
had not ended, continues that event instead of starting a new one.

Each event is reported once as a `DetectedEvent`; ``digit`` is set for DTMF events 0-15
(0-9, *, #, A-D) and None for the others (flash, tones), which callers may count apart.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from callscope.protocol.errors import RtpParseError

__all__ = ["DTMF_DIGITS", "EVENT_FLASH", "DetectedEvent", "DigitDetector", "TelephoneEvent"]

#: RFC 4733 3.2: event codes 0-15 are the DTMF digits.
DTMF_DIGITS = "0123456789*#ABCD"
#: RFC 4733 3.2: hook flash.
EVENT_FLASH = 16

_EVENT = struct.Struct("!BBH")
_MSG_SHORT = "telephone-event payload shorter than 4 octets"
_NO_EVENTS: tuple[DetectedEvent, ...] = ()
_REMEMBERED = 16  # reported event timestamps kept to ignore late copies


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 2.3 event block: event code, End bit, volume (-dBm0), duration
    (RTP timestamp units since the event's timestamp). ``reserved`` keeps the R bit so that
    ``bytes(event)`` is the exact inverse of the 4 octets parsed.
    """

    event: int
    end: bool
    volume: int
    duration: int
    reserved: bool = False

    @property
    def digit(self) -> str | None:
        """The DTMF digit of events 0-15, else None."""
        return DTMF_DIGITS[self.event] if self.event < 16 else None

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first event block of an RTP payload; raises `RtpParseError`."""
        if len(payload) < 4:
            raise RtpParseError(_MSG_SHORT)
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, flags >= 0x80, flags & 0x3F, duration, bool(flags & 0x40))

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | (0x40 if self.reserved else 0) | self.volume
        return _EVENT.pack(self.event, flags, self.duration)


@dataclass(frozen=True, slots=True)
class DetectedEvent:
    """One telephone event as reported once by `DigitDetector`.

    ``at`` is the arrival of its first packet seen (int ns), ``end_at`` that of its first End
    packet (None when the End packets were lost). ``duration`` is the largest duration seen,
    in RTP timestamp units, summed over segments of a long event.
    """

    event: int
    digit: str | None
    at: int
    end_at: int | None
    rtp_timestamp: int
    duration: int
    volume: int

    @property
    def ended(self) -> bool:
        """Whether an End packet was seen (False: settled because its End packets were lost)."""
        return self.end_at is not None


class DigitDetector:
    """Sans-IO detector for one RTP stream's telephone-event packets (see module docs).

    Feed it only the packets whose payload type is telephone-event (from the SDP rtpmap).
    """

    __slots__ = (
        "_at",
        "_base_duration",
        "_duration",
        "_event",
        "_recent",
        "_reported",
        "_segment_timestamp",
        "_timestamp",
        "_volume",
    )

    def __init__(self) -> None:
        self._timestamp: int | None = None  # RTP timestamp of the event in progress
        self._segment_timestamp = 0  # timestamp of its current segment
        self._event = 0
        self._at = 0
        self._duration = 0  # within the current segment
        self._base_duration = 0  # of the segments before it
        self._volume = 0
        self._reported = True
        self._recent: deque[int] = deque(maxlen=_REMEMBERED)

    def receive(
        self, at: int, rtp_timestamp: int, sequence: int, marker: bool, payload: bytes
    ) -> tuple[DetectedEvent, ...]:
        """Process one packet; returns the events it settles (usually none, at most two).

        ``sequence`` is accepted for symmetry with the other per-stream state and ignored:
        RFC 4733 End copies may repeat it. Raises `RtpParseError` for a short payload.
        """
        block = TelephoneEvent.parse(payload)
        if rtp_timestamp == self._segment_timestamp and self._timestamp is not None:
            return self._update(at, block)
        if rtp_timestamp in self._recent:
            return _NO_EVENTS  # a late copy of an event already reported
        if self._continues(rtp_timestamp, marker, block):
            self._base_duration += (rtp_timestamp - self._segment_timestamp) & 0xFFFFFFFF
            self._recent.append(self._segment_timestamp)
            self._segment_timestamp = rtp_timestamp
            self._duration = 0
            return self._update(at, block)
        settled = self.flush()
        self._timestamp = self._segment_timestamp = rtp_timestamp
        self._event, self._at, self._reported = block.event, at, False
        self._duration = self._base_duration = 0
        reported = self._update(at, block)
        return settled + reported if settled else reported

    def flush(self) -> tuple[DetectedEvent, ...]:
        """Report the event in progress if it never saw an End packet (end of stream, or a
        new event began). Safe to call at any time."""
        if self._reported or self._timestamp is None:
            return _NO_EVENTS
        self._reported = True
        self._recent.append(self._segment_timestamp)
        return (self._report(None),)

    def _continues(self, rtp_timestamp: int, marker: bool, block: TelephoneEvent) -> bool:
        """RFC 4733 2.5.1.3: a later segment of a long event has a new timestamp, no marker."""
        if self._reported or self._timestamp is None or marker or block.event != self._event:
            return False
        step = (rtp_timestamp - self._segment_timestamp) & 0xFFFFFFFF
        return 0 < step <= 0xFFFF

    def _update(self, at: int, block: TelephoneEvent) -> tuple[DetectedEvent, ...]:
        if self._reported:
            return _NO_EVENTS  # End copies after the first
        self._duration = max(self._duration, block.duration)
        self._volume = block.volume
        if not block.end:
            return _NO_EVENTS
        self._reported = True
        self._recent.append(self._segment_timestamp)
        return (self._report(at),)

    def _report(self, end_at: int | None) -> DetectedEvent:
        assert self._timestamp is not None
        return DetectedEvent(
            event=self._event,
            digit=DTMF_DIGITS[self._event] if self._event < 16 else None,
            at=self._at,
            end_at=end_at,
            rtp_timestamp=self._timestamp,
            duration=self._base_duration + self._duration,
            volume=self._volume,
        )
