"""Console views: home, capture health, liveness. Call search, call detail and playback are
in `callscope.console.calls` and `callscope.console.playback`. Every page authorizes through
`callscope.accounts.access`."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from callscope.accounts.access import require_staff
from callscope.console import health as capture_health
from callscope.store.models import Call, Result, Source


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Today's calls at a glance (Japan day) and the ways into the console."""
    require_staff(request)
    now = timezone.localtime()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = midnight + dt.timedelta(days=1)
    today = Call.objects.filter(started_at__gte=midnight, started_at__lt=tomorrow)
    counts = today.aggregate(
        total=Count("id"),
        answered=Count("id", filter=Q(result=Result.ANSWERED)),
        in_progress=Count("id", filter=Q(result=Result.IN_PROGRESS)),
    )
    return render(request, "console/home.html", {"counts": counts, "today": midnight})


@login_required
@require_GET
def health(request: HttpRequest) -> HttpResponse:
    """Capture sources per minute, calls in progress, spool, disk and the last retention."""
    require_staff(request)
    now = timezone.now()
    kinds = dict(Source.choices)
    rows = []
    for source in capture_health.sources(now):
        total = source.packets + source.drops
        rows.append(
            {
                "health": source,
                "kind_label": kinds.get(source.kind, source.kind),
                "spark": capture_health.sparkline(source),
                "drop_percent": 100 * source.drops / total if total else 0.0,
            }
        )
    disk = capture_health.disk(now)
    context = {
        "now": now,
        "window": capture_health.WINDOW_MINUTES,
        "sources": rows,
        "in_progress": capture_health.calls_in_progress(),
        "disk": disk,
        "disk_used_percent": round(disk.used_fraction * 100) if disk else None,
        "disk_warning": bool(disk and disk.used_fraction >= capture_health.DISK_WARN_FRACTION),
        "retention": capture_health.last_retention_run(),
        "retention_days": settings.CALLSCOPE_RETENTION_DAYS,
    }
    return render(request, "console/health.html", context)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for monitoring: the process answers and the database is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
