"""Call-log KPIs, defined once (docs/kpis.md), as pure functions over conversations.

Two layers share one vocabulary:

- `measures(conversation)` gives the additive counters one conversation contributes
  (offered, answered, sums, histogram buckets). Rollup rows are sums of these, so
  `rollups.apply_call` and `rollups.rebuild` can never drift from the definitions here.
- `summarize(measures)` turns any sum of measures (from calls directly, or from rollup
  rows) into the figures shown: rates, means, service level, approximate percentiles.

`exact_summary` computes the same figures straight from conversations with exact
percentiles; tests compare both paths. Everything here is pure.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from callscope.analytics.conversations import (
    INTERNAL_FLOWS,
    JST,
    Conversation,
    Flow,
    Outcome,
)

# Histogram edges in seconds; bucket i holds lo <= value < hi, the last one is open.
# Service-level targets and the short-abandon threshold are read at these edges.
WAIT_EDGES: tuple[int, ...] = (0, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TALK_EDGES: tuple[int, ...] = (0, 30, 60, 120, 180, 300, 420, 600, 900, 1200, 1800, 3600)

DEFAULT_SERVICE_LEVEL_SECONDS = 20
DEFAULT_SHORT_ABANDON_SECONDS = 5
REPEAT_DAYS = 7  # repeat callers counted in the rollups: another call within 7 days

OUTCOME_MEASURES = {
    Outcome.ANSWERED: "answered",
    Outcome.ABANDONED: "abandoned",
    Outcome.IVR_ONLY: "ivr_only",
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no_answer",
    Outcome.DECLINED: "declined",
    Outcome.FAILED: "failed",
    Outcome.IN_PROGRESS: "in_progress",
}
WAIT_BUCKETS = tuple(f"w{i}" for i in range(len(WAIT_EDGES)))
ABANDON_BUCKETS = tuple(f"a{i}" for i in range(len(WAIT_EDGES)))
TALK_BUCKETS = tuple(f"t{i}" for i in range(len(TALK_EDGES)))
COUNT_MEASURES: tuple[str, ...] = (
    "offered",
    *OUTCOME_MEASURES.values(),
    "abandoned_ivr",
    "legs",
    "ring_n",
    "hold_n",
    "by_caller",
    "by_callee",
    "by_other",
    "transferred",
    "repeat",
    *WAIT_BUCKETS,
    *ABANDON_BUCKETS,
    *TALK_BUCKETS,
)
SUM_MEASURES: tuple[str, ...] = ("wait_sum", "abandon_wait_sum", "ring_sum", "talk_sum", "hold_sum")
MEASURES: tuple[str, ...] = COUNT_MEASURES + SUM_MEASURES


def bucket(edges: tuple[int, ...], value: float) -> int:
    """Index of the histogram bucket holding ``value`` (negative values go to bucket 0)."""
    return max(bisect.bisect_right(edges, value) - 1, 0)


def measures(conv: Conversation, *, repeat: bool = False) -> dict[str, float]:
    """The additive counters one conversation contributes (only the non-zero ones)."""
    m: dict[str, float] = {"offered": 1, OUTCOME_MEASURES[conv.outcome]: 1, "legs": conv.legs}
    if conv.abandoned_in_ivr:
        m["abandoned_ivr"] = 1
    if conv.outcome is Outcome.ANSWERED and conv.wait_seconds is not None:
        m["wait_sum"] = conv.wait_seconds
        m[WAIT_BUCKETS[bucket(WAIT_EDGES, conv.wait_seconds)]] = 1
    if conv.outcome is Outcome.ABANDONED and conv.wait_seconds is not None:
        m["abandon_wait_sum"] = conv.wait_seconds
        m[ABANDON_BUCKETS[bucket(WAIT_EDGES, conv.wait_seconds)]] = 1
    if conv.ring_seconds is not None:
        m["ring_sum"] = conv.ring_seconds
        m["ring_n"] = 1
    if conv.talk_seconds is not None:
        m["talk_sum"] = conv.talk_seconds
        m[TALK_BUCKETS[bucket(TALK_EDGES, conv.talk_seconds)]] = 1
    if conv.hold_seconds:
        m["hold_sum"] = conv.hold_seconds
        m["hold_n"] = 1
    if conv.outcome is Outcome.ANSWERED:
        who = {"caller": "by_caller", "callee": "by_callee"}.get(conv.ended_by or "", "by_other")
        m[who] = 1
    if conv.transferred:
        m["transferred"] = 1
    if repeat:
        m["repeat"] = 1
    return m


def add(total: dict[str, float], part: Mapping[str, float], sign: int = 1) -> dict[str, float]:
    """``total += sign * part``, in place; returns ``total``."""
    for name, value in part.items():
        total[name] = total.get(name, 0) + sign * value
    return total


def total_measures(
    convs: Iterable[Conversation], *, repeats: set[str] | None = None
) -> dict[str, float]:
    """Sum of `measures` over conversations (``repeats``: conversation ids that are repeats)."""
    total: dict[str, float] = dict.fromkeys(MEASURES, 0)
    repeating = repeats or set()
    for conv in convs:
        add(total, measures(conv, repeat=conv.conversation_id in repeating))
    return total


def histogram_quantile(counts: list[float], edges: tuple[int, ...], q: float) -> float | None:
    """Approximate quantile from bucket counts: linear inside the bucket that holds it.

    In the last, open bucket the lower edge is returned (the value is "at least" that).
    """
    n = sum(counts)
    if n <= 0:
        return None
    rank = q * n
    seen = 0.0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lo = edges[i]
            if i + 1 == len(edges):
                return float(lo)
            return lo + (edges[i + 1] - lo) * max(rank - seen, 0) / count
        seen += count
    return float(edges[-1])


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def summarize(
    m: Mapping[str, float],
    *,
    service_level_seconds: int = DEFAULT_SERVICE_LEVEL_SECONDS,
    short_abandon_seconds: int = DEFAULT_SHORT_ABANDON_SECONDS,
) -> dict[str, float | None]:
    """The dashboard figures from a sum of measures; percentiles are from the histograms.

    Both thresholds must be edges of `WAIT_EDGES` (ValueError otherwise).
    """
    if service_level_seconds not in WAIT_EDGES or short_abandon_seconds not in WAIT_EDGES:
        raise ValueError("threshold must be a histogram edge")
    waits = [m.get(name, 0) for name in WAIT_BUCKETS]
    talks = [m.get(name, 0) for name in TALK_BUCKETS]
    abandons = [m.get(name, 0) for name in ABANDON_BUCKETS]
    answered, abandoned = m.get("answered", 0), m.get("abandoned", 0)
    short = sum(abandons[: WAIT_EDGES.index(short_abandon_seconds)])
    within = sum(waits[: WAIT_EDGES.index(service_level_seconds)])
    offered = m.get("offered", 0)
    return {
        "offered": offered,
        "answered": answered,
        "answer_rate": _ratio(answered, offered),
        "abandoned": abandoned,
        "abandoned_short": short,
        "abandon_rate": _ratio(abandoned - short, offered - short),
        "abandoned_ivr": m.get("abandoned_ivr", 0),
        **{name: m.get(name, 0) for name in ("ivr_only", "busy", "no_answer", "declined")},
        "failed": m.get("failed", 0),
        "in_progress": m.get("in_progress", 0),
        "wait_mean": _ratio(m.get("wait_sum", 0), answered),
        "wait_median": histogram_quantile(waits, WAIT_EDGES, 0.5),
        "wait_p90": histogram_quantile(waits, WAIT_EDGES, 0.9),
        "service_level": _ratio(within, answered + abandoned - short),
        "ring_mean": _ratio(m.get("ring_sum", 0), m.get("ring_n", 0)),
        "talk_mean": _ratio(m.get("talk_sum", 0), sum(talks)),
        "talk_median": histogram_quantile(talks, TALK_EDGES, 0.5),
        "talk_p90": histogram_quantile(talks, TALK_EDGES, 0.9),
        "talk_minutes": m.get("talk_sum", 0) / 60,
        "hold_mean": _ratio(m.get("hold_sum", 0), m.get("hold_n", 0)),
        "held": m.get("hold_n", 0),
        "ended_by_caller": m.get("by_caller", 0),
        "ended_by_callee": m.get("by_callee", 0),
        "ended_by_other": m.get("by_other", 0),
        "transferred": m.get("transferred", 0),
        "repeat": m.get("repeat", 0),
        "repeat_rate": _ratio(m.get("repeat", 0), offered),
        "legs_per_call": _ratio(m.get("legs", 0), offered),
    }


def quantile(values: list[float], q: float) -> float | None:
    """Exact quantile, nearest rank: the smallest value with at least ``q`` of values <= it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def exact_summary(
    convs: Iterable[Conversation],
    *,
    service_level_seconds: float = DEFAULT_SERVICE_LEVEL_SECONDS,
    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS,
    repeat_days: int = REPEAT_DAYS,
) -> dict[str, float | None]:
    """The same figures as `summarize`, straight from conversations, percentiles exact.

    Thresholds may be any number of seconds here.
    """
    items = list(convs)
    answered = [c for c in items if c.outcome is Outcome.ANSWERED]
    abandoned = [c for c in items if c.outcome is Outcome.ABANDONED]
    short = [c for c in abandoned if (c.wait_seconds or 0) < short_abandon_seconds]
    waits = [c.wait_seconds for c in answered if c.wait_seconds is not None]
    talks = [c.talk_seconds for c in answered if c.talk_seconds is not None]
    counted_abandoned = len(abandoned) - len(short)
    out = summarize(total_measures(items, repeats=repeat_callers(items, days=repeat_days)))
    out.update(
        abandoned_short=len(short),
        abandon_rate=_ratio(counted_abandoned, len(items) - len(short)),
        wait_median=quantile(waits, 0.5),
        wait_p90=quantile(waits, 0.9),
        service_level=_ratio(
            sum(1 for w in waits if w < service_level_seconds), len(answered) + counted_abandoned
        ),
        talk_median=quantile(talks, 0.5),
        talk_p90=quantile(talks, 0.9),
    )
    return out


def repeat_callers(convs: Iterable[Conversation], *, days: int = REPEAT_DAYS) -> set[str]:
    """Inbound conversations whose caller (pseudonym) had another inbound conversation that
    started in the ``days`` days before it. Withheld callers (no pseudonym) never repeat."""
    last_seen: dict[str, dt.datetime] = {}
    repeats: set[str] = set()
    window = dt.timedelta(days=days)
    inbound = (c for c in convs if c.flow == Flow.INBOUND and c.caller_pseudonym)
    for conv in sorted(inbound, key=lambda c: (c.started_at, c.conversation_id)):
        previous = last_seen.get(conv.caller_pseudonym)
        if previous is not None and conv.started_at - previous <= window:
            repeats.add(conv.conversation_id)
        last_seen[conv.caller_pseudonym] = conv.started_at
    return repeats


def peak_concurrent(convs: Iterable[Conversation]) -> int:
    """Most conversations in progress at one instant (a call ending as another starts at the
    same instant does not overlap it). Conversations without an end are left out."""
    events: list[tuple[dt.datetime, int]] = []
    for conv in convs:
        if conv.ended_at is not None:
            events += [(conv.started_at, 1), (conv.ended_at, -1)]
    events.sort()  # at equal times -1 sorts before +1
    peak = active = 0
    for _at, step in events:
        active += step
        peak = max(peak, active)
    return peak


def minute_of(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def peak_concurrent_by_minute(convs: Iterable[Conversation]) -> dict[dt.datetime, int]:
    """Conversations active at some moment of each UTC minute (the rollups' resolution)."""
    active: Counter[dt.datetime] = Counter()
    for conv in convs:
        if conv.ended_at is None:
            continue
        minute, last = minute_of(conv.started_at), minute_of(conv.ended_at)
        while minute <= last:
            active[minute] += 1
            minute += dt.timedelta(minutes=1)
    return dict(active)


def external_internal_mix(convs: Iterable[Conversation]) -> dict[str, int]:
    """Conversations by flow: inbound, outbound, internal, ward_hq, unknown."""
    mix = dict.fromkeys((f.value for f in Flow), 0)
    for conv in convs:
        mix[conv.flow] = mix.get(conv.flow, 0) + 1
    mix["external"] = mix[Flow.INBOUND] + mix[Flow.OUTBOUND]
    mix["internal_total"] = sum(mix[f] for f in INTERNAL_FLOWS)
    return mix


# -- grouping -----------------------------------------------------------------------------

Key = Callable[[Conversation], Hashable]


def by_hour(conv: Conversation) -> int:
    return conv.jst_start.hour


def by_weekday(conv: Conversation) -> int:
    return conv.jst_start.weekday()  # Monday 0


def by_day(conv: Conversation) -> dt.date:
    return conv.jst_start.date()


def by_unit(level_of: Mapping[int, int]) -> Key:
    """Group by an organisation level: ``level_of`` maps a unit id to its section,
    department or bureau/ward id (e.g. from `directory.OrgIndex`); unknown units give None."""

    def key(conv: Conversation) -> int | None:
        return None if conv.unit_id is None else level_of.get(conv.unit_id)

    return key


def grouped(
    convs: Iterable[Conversation], key: Key, **options: float
) -> dict[Hashable, dict[str, float | None]]:
    """`exact_summary` per group (section, department, bureau/ward, hour, weekday, day)."""
    groups: dict[Hashable, list[Conversation]] = defaultdict(list)
    for conv in convs:
        groups[key(conv)].append(conv)
    return {k: exact_summary(v, **options) for k, v in groups.items()}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Change:
    """One figure before and after (for example a new FAQ page), and the change."""

    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        if self.delta is None or not self.before:
            return None
        return self.delta / self.before


def compare(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, Change]:
    """Figure by figure comparison of two summaries (two periods)."""
    return {name: Change(before.get(name), after.get(name)) for name in before}


def jst_date(at: dt.datetime) -> dt.date:
    return at.astimezone(JST).date()
