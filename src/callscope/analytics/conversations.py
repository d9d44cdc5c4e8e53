"""From call legs to conversations: the unit every KPI counts (see docs/kpis.md).

A citizen's call can produce several SIP legs: a ringing group (代表番号) forks one INVITE to
several desks, a B2BUA PBX shows a trunk leg and an extension leg, an IVR answers first and
transfers. All legs of one conversation share ``conversation_id``; `conversation_of` folds
them into one `Conversation` so that offered calls are counted once, an IVR's automatic
200 OK is not a staff answer, and ring time is never counted as talk time.

Pure: rows in, values out, no database and no clock.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # Japan has no daylight saving time

IVR_CLASS = "ivr"  # DirectoryEntry.Kind.IVR, as stored in callee_class


class Outcome(StrEnum):
    """What happened to a conversation, from the citizen's side (mutually exclusive)."""

    ANSWERED = "answered"  # a person answered (not an IVR)
    ABANDONED = "abandoned"  # the caller gave up before a person answered
    IVR_ONLY = "ivr_only"  # only an IVR answered and the IVR side ended the call
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"


class Flow(StrEnum):
    """Direction of a conversation, with internal calls between a ward and HQ apart."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"  # both parties in the directory, same side (HQ-HQ or ward-ward)
    WARD_HQ = "ward_hq"  # internal, one party in a ward office and the other in HQ
    UNKNOWN = "unknown"


INTERNAL_FLOWS = frozenset({Flow.INTERNAL, Flow.WARD_HQ})

_UNANSWERED: dict[str, Outcome] = {
    "cancelled": Outcome.ABANDONED,
    "busy": Outcome.BUSY,
    "no_answer": Outcome.NO_ANSWER,
    "declined": Outcome.DECLINED,
    "failed": Outcome.FAILED,
    "in_progress": Outcome.IN_PROGRESS,
    "answered": Outcome.IN_PROGRESS,  # answered by nobody we count: cannot happen
}


@dataclass(frozen=True, slots=True)
class Leg:
    """One call leg as analytics needs it (a `store.Call` row, or a dict with these keys).

    ``flow`` is the `Flow` of the leg (the stored direction refined with the ward/HQ side of
    both units); ``callee_class`` is ``"ivr"`` when the callee number is an IVR.
    """

    call_id: str
    conversation_id: str
    started_at: dt.datetime
    ringing_at: dt.datetime | None
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    result: str
    ended_by: str | None = None
    flow: str = Flow.UNKNOWN
    caller_unit_id: int | None = None
    callee_unit_id: int | None = None
    callee_class: str = ""
    caller_pseudonym: str = ""
    hold_seconds: float | None = None
    transferred: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Leg:
        """A leg from a dict row (``values()`` of `store.Call` plus ``flow``)."""
        return cls(**{name: row[name] for name in cls.__slots__ if name in row})

    @property
    def staff_answered(self) -> bool:
        return self.answered_at is not None and self.callee_class != IVR_CLASS


@dataclass(frozen=True, slots=True)
class Conversation:
    """One citizen's (or colleague's) call, however many legs it took. Times are UTC.

    ``wait_seconds`` runs from the first INVITE to the first staff answer (answered) or to
    the end (not answered); ``talk_seconds`` from the first staff answer to the last leg's
    end; ``ring_seconds`` from the first 18x of the deciding leg to its answer or end.
    """

    conversation_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    flow: str
    unit_id: int | None  # the section the call is counted under (callee, or caller if outbound)
    caller_unit_id: int | None
    callee_unit_id: int | None
    outcome: Outcome
    abandoned_in_ivr: bool
    wait_seconds: float | None
    ring_seconds: float | None
    talk_seconds: float | None
    hold_seconds: float | None
    ended_by: str | None
    transferred: bool
    legs: int
    caller_pseudonym: str

    @property
    def jst_start(self) -> dt.datetime:
        return self.started_at.astimezone(JST)


def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    """``end - start`` in seconds, rounded to the millisecond (as the SQL rollups do)."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _leg_order(leg: Leg) -> tuple[dt.datetime, str]:
    return (leg.started_at, leg.call_id)


def _deciding_leg(legs: list[Leg]) -> Leg:
    """The leg that decides the outcome, in this order: the first staff answer; else the
    first leg towards staff (not an IVR: the call reached a desk or a queue); else the first
    leg an IVR answered; else the first leg."""
    staff = [leg for leg in legs if leg.staff_answered]
    if staff:
        return min(staff, key=lambda leg: (leg.answered_at, leg.started_at, leg.call_id))
    towards_staff = [leg for leg in legs if leg.callee_class != IVR_CLASS]
    if towards_staff:
        return towards_staff[0]
    ivr = [leg for leg in legs if leg.answered_at is not None]
    if ivr:
        return min(ivr, key=lambda leg: (leg.answered_at, leg.started_at, leg.call_id))
    return legs[0]


def _outcome(deciding: Leg) -> tuple[Outcome, bool]:
    if deciding.staff_answered:
        return Outcome.ANSWERED, False
    if deciding.callee_class != IVR_CLASS or deciding.answered_at is None:
        return _UNANSWERED.get(deciding.result, Outcome.FAILED), False
    # only an IVR answered and the call never went on to staff
    if deciding.ended_by == "caller":
        return Outcome.ABANDONED, True
    if deciding.ended_at is None:
        return Outcome.IN_PROGRESS, False
    return Outcome.IVR_ONLY, False


def conversation_of(legs: Iterable[Leg]) -> Conversation:
    """Fold the legs of one conversation (at least one) into a `Conversation`."""
    ordered = sorted(legs, key=_leg_order)
    primary = ordered[0]
    deciding = _deciding_leg(ordered)
    outcome, in_ivr = _outcome(deciding)
    ends = [leg.ended_at for leg in ordered]
    ended_at = None if any(end is None for end in ends) else max(e for e in ends if e)
    answered = outcome is Outcome.ANSWERED
    flow = primary.flow
    callee_unit = (
        deciding.callee_unit_id if deciding.callee_unit_id is not None else primary.callee_unit_id
    )
    unit = primary.caller_unit_id if flow == Flow.OUTBOUND else callee_unit
    wait_end = deciding.answered_at if answered else ended_at
    ring_end = deciding.answered_at if deciding.answered_at is not None else deciding.ended_at
    return Conversation(
        conversation_id=primary.conversation_id,
        started_at=primary.started_at,
        ended_at=ended_at,
        flow=flow,
        unit_id=unit,
        caller_unit_id=primary.caller_unit_id,
        callee_unit_id=callee_unit,
        outcome=outcome,
        abandoned_in_ivr=in_ivr,
        wait_seconds=seconds(primary.started_at, wait_end),
        ring_seconds=seconds(deciding.ringing_at, ring_end),
        talk_seconds=seconds(deciding.answered_at, ended_at) if answered else None,
        hold_seconds=deciding.hold_seconds if answered else None,
        ended_by=deciding.ended_by if answered else None,
        transferred=any(leg.transferred for leg in ordered),
        legs=len(ordered),
        caller_pseudonym=primary.caller_pseudonym,
    )


def conversations(legs: Iterable[Leg]) -> list[Conversation]:
    """Group legs by ``conversation_id``; conversations in order of their first INVITE."""
    groups: dict[str, list[Leg]] = defaultdict(list)
    for leg in legs:
        groups[leg.conversation_id].append(leg)
    folded = [conversation_of(group) for group in groups.values()]
    folded.sort(key=lambda c: (c.started_at, c.conversation_id))
    return folded
