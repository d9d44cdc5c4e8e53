"""The SIP ladder diagram of a call (INVITE, 18x, 200, re-INVITE/hold, REFER, BYE ...),
laid out on the server and drawn as inline SVG by the call detail template (no JS library).

`Call.ladder` holds one JSON object per SIP message, in capture order::

    {"at": "2024-04-01T00:15:02.123456Z",   # UTC packet time (contract time format)
     "src": "10.0.0.5:5060", "dst": "10.0.0.9:5060",
     "label": "INVITE" | "180 Ringing" | ...,  # first line in short form
     "method": "INVITE", "status": 180,        # optional, for colouring
     "direction": "caller_to_callee",          # optional when src/dst are given
     "detail": "sendonly (hold)"}              # optional note shown under the arrow

Only ``label`` is required: lanes come from ``src``/``dst`` in order of appearance (the
first sender is the caller), or from ``direction`` when addresses are missing. Each event's
offset from the call start is kept so that the player can mark the playback position on the
ladder (the recording's sample 0 is the INVITE, see `callscope.audio.timeline`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: at most this many messages are drawn (a pathological dialog must not make a huge page)
MAX_ROWS = 300
TIME_COLUMN = 150
LANE_MIN_SPACING = 170
DIAGRAM_MIN_WIDTH = 760
HEADER_HEIGHT = 48
ROW_HEIGHT = 30
LANE_MARGIN = 90

_DIRECTION_LANES = {
    "caller_to_callee": ("caller", "callee"),
    "callee_to_caller": ("callee", "caller"),
}


@dataclass(frozen=True, slots=True)
class Lane:
    """A vertical line: one SIP endpoint (address) or, lacking addresses, a party."""

    key: str
    x: int
    role: str  # "caller", "callee" or "" (a proxy or another hop)

    @property
    def address(self) -> str:
        """The endpoint's address, empty for a lane that only names a party."""
        return "" if self.key in _DIRECTION_LANES["caller_to_callee"] else self.key


@dataclass(frozen=True, slots=True)
class Arrow:
    """One SIP message drawn from ``x1`` to ``x2`` at height ``y``."""

    y: int
    src: Lane
    dst: Lane
    label: str
    detail: str
    kind: str  # request, provisional, success, failure
    at: dt.datetime | None
    offset: float | None  # seconds after the call start

    @property
    def x1(self) -> int:
        return self.src.x

    @property
    def x2(self) -> int:
        return self.dst.x

    @property
    def text_x(self) -> int:
        """Where the label is centred."""
        return (self.x1 + self.x2) // 2 if self.x1 != self.x2 else self.x1 + 40

    @property
    def is_loop(self) -> bool:
        return self.x1 == self.x2


@dataclass(frozen=True, slots=True)
class Ladder:
    lanes: tuple[Lane, ...]
    arrows: tuple[Arrow, ...]
    width: int
    height: int
    omitted: int  # messages beyond MAX_ROWS, not drawn

    @property
    def lane_bottom(self) -> int:
        return self.height - 10


def parse_time(text: object) -> dt.datetime | None:
    """An event's ``at`` as an aware UTC datetime (None when absent or malformed)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def message_kind(event: Mapping[str, Any]) -> str:
    """request, provisional (1xx), success (2xx) or failure (3xx-6xx), for colouring."""
    status = event.get("status")
    if not isinstance(status, int):
        head = str(event.get("label", "")).split(" ", 1)[0]
        status = int(head) if head.isdigit() else None
    if status is None:
        return "request"
    if status < 200:
        return "provisional"
    return "success" if status < 300 else "failure"


def _endpoints(event: Mapping[str, Any]) -> tuple[str, str] | None:
    src, dst = event.get("src"), event.get("dst")
    if isinstance(src, str) and isinstance(dst, str) and src and dst:
        return src, dst
    return _DIRECTION_LANES.get(str(event.get("direction", "")))


def _lane_keys(events: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for event in events:
        pair = _endpoints(event)
        for key in pair or ():
            if key not in keys:
                keys.append(key)
    # Parties without addresses always read caller -> callee, left to right.
    if set(keys) == {"caller", "callee"}:
        keys = ["caller", "callee"]
    return keys


def _lanes(keys: Sequence[str], width: int) -> tuple[Lane, ...]:
    if not keys:
        return ()
    usable = width - TIME_COLUMN - 2 * LANE_MARGIN
    spacing = usable // max(1, len(keys) - 1) if len(keys) > 1 else 0
    lanes = []
    for index, key in enumerate(keys):
        if key in {"caller", "callee"}:
            role = key
        else:
            role = "caller" if index == 0 else ("callee" if index == len(keys) - 1 else "")
        lanes.append(Lane(key, TIME_COLUMN + LANE_MARGIN + index * spacing, role))
    return tuple(lanes)


def build_ladder(events: Iterable[Mapping[str, Any]], call_start: dt.datetime) -> Ladder:
    """Lay out ``events`` (the `Call.ladder` list) for drawing."""
    rows = [e for e in events if isinstance(e, Mapping) and e.get("label") and _endpoints(e)]
    omitted = max(0, len(rows) - MAX_ROWS)
    rows = rows[:MAX_ROWS]
    keys = _lane_keys(rows)
    needed = TIME_COLUMN + 2 * LANE_MARGIN + LANE_MIN_SPACING * (len(keys) - 1)
    width = max(DIAGRAM_MIN_WIDTH, needed)
    lanes = _lanes(keys, width)
    lane_of = {lane.key: lane for lane in lanes}
    arrows = []
    for index, event in enumerate(rows):
        src, dst = _endpoints(event) or ("", "")
        at = parse_time(event.get("at"))
        arrows.append(
            Arrow(
                y=HEADER_HEIGHT + 20 + index * ROW_HEIGHT,
                src=lane_of[src],
                dst=lane_of[dst],
                label=str(event["label"])[:60],
                detail=str(event.get("detail") or "")[:80],
                kind=message_kind(event),
                at=at,
                offset=(at - call_start).total_seconds() if at else None,
            )
        )
    height = HEADER_HEIGHT + 20 + len(arrows) * ROW_HEIGHT + 10
    return Ladder(lanes, tuple(arrows), width, height, omitted)
