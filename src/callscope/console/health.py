"""Capture health: what each capture source saw per minute, the spool and the audio disk.

The figures come from `CaptureSample` rows (one per source and interval, written by the
capture workers), the audio store's file system, recording sizes and the audit trail (the
last retention run). `warnings` is what the banner on every page shows; it is cached for
`WARNING_CACHE_SECONDS` per process so the banner costs nothing on most requests.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Max, Sum
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from callscope.store.audiostore import FilesystemAudioStore, get_audio_store
from callscope.store.models import AuditEntry, Call, CaptureSample, Recording, Result

WINDOW_MINUTES = 60
#: drops within this many minutes raise the banner; a source silent this long is stale
RECENT_MINUTES = 5
DISK_WARN_FRACTION = 0.90
#: fewer days of audio than this left on the disk also raises the banner
DISK_WARN_DAYS = 2.0
WARNING_CACHE_SECONDS = 30
_SIZE_DAYS = 7
_WARNING_KEY = "console:capture_warnings"


@dataclass(slots=True)
class Minute:
    at: dt.datetime
    packets: int
    drops: int


@dataclass(slots=True)
class SourceHealth:
    """One capture source over the window, oldest minute first."""

    source: str
    kind: str
    minutes: list[Minute] = field(default_factory=list)
    last_at: dt.datetime | None = None
    calls_in_progress: int = 0
    spool_backlog: int = 0
    anomalies: int = 0

    @property
    def packets(self) -> int:
        return sum(m.packets for m in self.minutes)

    @property
    def drops(self) -> int:
        return sum(m.drops for m in self.minutes)

    @property
    def drop_ratio(self) -> float:
        total = self.packets + self.drops
        return self.drops / total if total else 0.0

    @property
    def peak_packets(self) -> int:
        return max((m.packets for m in self.minutes), default=0)


@dataclass(frozen=True, slots=True)
class Disk:
    total: int
    used: int
    free: int
    bytes_per_day: float | None

    @property
    def used_fraction(self) -> float:
        """Share of the disk that is not free for writing (reserved blocks count as used)."""
        return 1 - self.free / self.total if self.total else 0.0

    @property
    def days_left(self) -> float | None:
        """Days of audio the free space still holds at the recent daily volume."""
        if not self.bytes_per_day:
            return None
        return self.free / self.bytes_per_day


def sources(now: dt.datetime, minutes: int = WINDOW_MINUTES) -> list[SourceHealth]:
    """Every source that reported in the last ``minutes``, with its per-sample series."""
    since = now - dt.timedelta(minutes=minutes)
    found: dict[str, SourceHealth] = {}
    samples = CaptureSample.objects.filter(at__gte=since, at__lte=now).order_by("source", "at")
    for sample in samples:
        health = found.setdefault(sample.source, SourceHealth(sample.source, sample.kind))
        drops = sample.kernel_drops + sample.app_drops
        health.minutes.append(Minute(sample.at, sample.packets, drops))
        health.last_at = sample.at
        health.calls_in_progress = sample.calls_in_progress
        health.spool_backlog = sample.spool_backlog
        health.anomalies += sample.anomalies
    return list(found.values())


def audio_root() -> Path | None:
    """The audio directory when recordings are kept on the local file system."""
    store = get_audio_store()
    return store.root if isinstance(store, FilesystemAudioStore) else None


def disk(now: dt.datetime) -> Disk | None:
    """Space on the audio disk and the recent audio volume (None for an object store)."""
    root = audio_root()
    if root is None:
        return None
    probe = root if root.exists() else settings.DATA_DIR
    usage = shutil.disk_usage(probe)
    since = now - dt.timedelta(days=_SIZE_DAYS)
    total = Recording.objects.filter(call__started_at__gte=since).aggregate(s=Sum("size"))["s"]
    per_day = total / _SIZE_DAYS if total else None
    return Disk(usage.total, usage.total - usage.free, usage.free, per_day)


def calls_in_progress() -> int:
    return Call.objects.filter(result=Result.IN_PROGRESS).count()


def last_retention_run() -> AuditEntry | None:
    return AuditEntry.objects.filter(action="retention_run").order_by("-sequence").first()


def _minutes_since(then: dt.datetime, now: dt.datetime) -> int:
    return int((now - then).total_seconds() // 60)


def _capture_warnings(now: dt.datetime) -> list[str]:
    """Sources that dropped packets in the last minutes, or went silent (aggregates only)."""
    messages = []
    recent = now - dt.timedelta(minutes=RECENT_MINUTES)
    drops = (
        CaptureSample.objects.filter(at__gte=recent, at__lte=now)
        .values("source")
        .annotate(drops=Sum(F("kernel_drops") + F("app_drops")))
        .filter(drops__gt=0)
        .order_by("source")
    )
    for dropped in drops:
        messages.append(
            _("Capture source %(source)s dropped %(drops)s packets in the last minutes.")
            % {"source": dropped["source"], "drops": dropped["drops"]}
        )
    silent = (
        CaptureSample.objects.filter(at__gte=now - dt.timedelta(days=1), at__lte=now)
        .values("source")
        .annotate(last=Max("at"))
        .filter(last__lt=recent)
        .order_by("source")
    )
    for quiet in silent:
        messages.append(
            _("Capture source %(source)s has not reported for %(minutes)s minutes.")
            % {"source": quiet["source"], "minutes": _minutes_since(quiet["last"], now)}
        )
    return messages


def _compute_warnings(now: dt.datetime) -> list[str]:
    messages = _capture_warnings(now)
    space = disk(now)
    if space is not None:
        days = space.days_left
        short = days is not None and days < DISK_WARN_DAYS
        if space.used_fraction >= DISK_WARN_FRACTION or short:
            messages.append(
                _("The audio disk is nearly full (%(percent)s%% used).")
                % {"percent": round(space.used_fraction * 100)}
            )
    return messages


def warnings(now: dt.datetime) -> list[str]:
    """Problems to show on every page (cached briefly; computed in the active language)."""
    key = f"{_WARNING_KEY}:{get_language()}"
    cached: list[str] | None = cache.get(key)
    if cached is None:
        cached = _compute_warnings(now)
        cache.set(key, cached, WARNING_CACHE_SECONDS)
    return cached


def sparkline(health: SourceHealth, width: int = 300, height: int = 40) -> dict[str, object]:
    """SVG bar geometry of packets per sample (drops drawn in red on top)."""
    count = max(1, len(health.minutes))
    bar = width / count
    top = max(1, max((m.packets + m.drops for m in health.minutes), default=1))
    bars = []
    for index, minute in enumerate(health.minutes):
        packets_h = height * minute.packets / top
        # drops are rare and small next to the packets: at least 3 px so they are seen
        drops_h = max(3.0, height * minute.drops / top) if minute.drops else 0.0
        bars.append(
            {
                "x": round(index * bar, 2),
                "w": round(max(bar - 0.5, 0.5), 2),
                "packets_y": round(height - packets_h, 2),
                "packets_h": round(packets_h, 2),
                "drops_y": round(max(0.0, height - packets_h - drops_h), 2),
                "drops_h": round(drops_h, 2),
            }
        )
    return {"width": width, "height": height, "bars": bars}
