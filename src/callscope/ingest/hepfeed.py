"""The HEP collector as a feed of the live recorder (`callscope capture --hep ADDR:PORT`).

Wires a `HepListener` to the daemon: the listener's policy comes from the settings
(``CALLSCOPE_HEP_AUTH_KEY``, ``CALLSCOPE_HEP_CAPTURE_IDS``), its counters become the
feed's health samples (packets, bytes, kernel drops of the UDP socket; packets refused as
malformed, with a wrong key or from an agent not allowed count as application drops), and
refusals are logged once per health sample with their reasons, so that a misconfigured
agent shows up in the log and on the capture health page without flooding either.
Agent timestamps more than `MAX_CLOCK_SKEW_NS` off this machine's clock are replaced by the
arrival time (the tracker's timers run on this clock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from callscope.capture.hepdecode import HepCounters
from callscope.capture.hepsource import HepListener
from callscope.core import Endpoint
from callscope.ingest.daemon import Feed, SourceHealth

log = logging.getLogger(__name__)

__all__ = ["hep_feed", "hep_summary"]

K = TypeVar("K")

#: an agent timestamp further than this from the arrival time is replaced by the arrival
#: time: the tracker's timers run on this machine's clock (see `HepDecoder`)
MAX_CLOCK_SKEW_NS = 10_000_000_000


def hep_feed(address: Endpoint, *, name: str | None = None) -> tuple[Feed, HepListener]:
    """A listener on ``address`` (UDP and TCP) as a daemon `Feed`; raises OSError when the
    port cannot be bound."""
    listener = HepListener(
        address,
        auth_key=settings.CALLSCOPE_HEP_AUTH_KEY or None,
        capture_ids=settings.CALLSCOPE_HEP_CAPTURE_IDS or None,
        max_skew_ns=MAX_CLOCK_SKEW_NS,
    )
    feed = Feed(listener, name or f"hep:{listener.address}", "hep", _health(listener))
    return feed, listener


def _health(listener: HepListener) -> Callable[[], SourceHealth]:
    last = [_Refusals.of(HepCounters())]

    def health() -> SourceHealth:
        counters = listener.counters
        stats = listener.stats()
        now = _Refusals.of(counters)
        if now.total > last[0].total:
            log.warning("HEP packets refused since the last sample: %s", now.since(last[0]))
        last[0] = now
        return SourceHealth(
            packets=counters.packets,
            bytes=counters.bytes,
            kernel_drops=stats.udp_drops,
            app_drops=counters.rejected,
        )

    return health


@dataclass(frozen=True)
class _Refusals:
    """A copy of the refusal counters at one moment."""

    malformed: dict[str, int]
    auth: int
    agents: dict[int, int]
    total: int

    @classmethod
    def of(cls, counters: HepCounters) -> _Refusals:
        return cls(
            dict(counters.malformed),
            counters.auth_failures,
            dict(counters.unknown_agents),
            counters.rejected,
        )

    def since(self, earlier: _Refusals) -> dict[str, object]:
        return {
            "malformed": _grown(self.malformed, earlier.malformed),
            "wrong_auth_key": self.auth - earlier.auth,
            "capture_ids_not_allowed": _grown(self.agents, earlier.agents),
        }


def _grown(now: Mapping[K, int], then: Mapping[K, int]) -> dict[K, int]:
    return {key: value - then.get(key, 0) for key, value in now.items() if value > then.get(key, 0)}


def hep_summary(listener: HepListener) -> str:
    """One line for the operator at shutdown: what the collector received."""
    counters, stats = listener.counters, listener.stats()
    types = ", ".join(f"{kind}: {count}" for kind, count in sorted(counters.by_type.items()))
    return (
        f"HEP {listener.address}: {counters.packets} packets, {counters.sip} SIP messages, "
        f"by type {{{types}}}, {counters.duplicates} duplicates, "
        f"{counters.clock_skew} with the arrival time for a skewed agent clock, "
        f"{sum(counters.malformed.values())} malformed, {counters.auth_failures} wrong key, "
        f"{sum(counters.unknown_agents.values())} from agents not allowed, "
        f"{stats.udp_drops} dropped by the kernel, {stats.tcp_accepted} TCP connections"
    )
