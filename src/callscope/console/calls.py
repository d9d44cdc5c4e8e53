"""Call search (with htmx partial updates and CSV/Excel export) and the call detail page.

Every view authorizes through `callscope.accounts.access`; numbers are shown in full only to
users with the full-number right, masked otherwise (the templates use ``{% phone %}``).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from callscope.accounts.access import (
    audit,
    audit_all,
    get_call_for_user,
    numbers_shown,
    require_staff,
)
from callscope.console import exports
from callscope.console.ladder import build_ladder, parse_time
from callscope.console.playback import LISTENABLE
from callscope.console.search import (
    COLUMN_SORTS,
    UNBOUNDED_SORT_DAYS,
    CursorError,
    SearchForm,
    find_calls,
    implied_start,
    iter_rows,
    page_of,
)
from callscope.console.templatetags.console import seconds, shown_number
from callscope.store.audit import Event
from callscope.store.models import Call, Direction, LegalHold, OrgUnit, Recording, Result


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One line of the result table, formatted once in Python (a template lookup per cell
    and row cost more than the query)."""

    url: str
    started: str
    direction: str
    caller: str
    caller_unit: str
    callee: str
    callee_unit: str
    result: str
    result_label: str
    wait: str
    talk: str
    dtmf: bool
    recording: str


def result_rows(calls: list[Call], user: Any) -> list[ResultRow]:
    """The result table's lines for ``user`` (numbers masked or full as they may see them)."""
    url = reverse("console:call_detail", args=[987654321]).replace("987654321", "{}")
    directions = {k: str(v) for k, v in Direction.choices}
    results = {k: str(v) for k, v in Result.choices}
    statuses = {k: str(v) for k, v in Recording.Status.choices}
    rows = []
    for call in calls:
        recording = getattr(call, "recording", None)
        rows.append(
            ResultRow(
                url=url.format(call.pk),
                started=timezone.localtime(call.started_at).strftime("%Y-%m-%d %H:%M:%S"),
                direction=directions.get(call.direction, call.direction),
                caller=shown_number(user, call.caller_number),
                caller_unit=call.caller_unit.name if call.caller_unit else "",
                callee=shown_number(user, call.callee_number),
                callee_unit=call.callee_unit.name if call.callee_unit else "",
                result=call.result,
                result_label=results.get(call.result, call.result),
                wait=seconds(call.setup_seconds),
                talk=seconds(call.talk_seconds),
                dtmf=call.has_dtmf,
                recording=statuses.get(recording.status or "", "") if recording else "",
            )
        )
    return rows


def rows_html(rows: list[ResultRow], yes: str) -> SafeString:
    """The result table's body. Written here in one pass: as a template loop it cost a
    third of the search page's CPU (a dozen lookups and escapes per cell and row)."""
    out = []
    for row in rows:
        caller_unit = f"<br><small>{escape(row.caller_unit)}</small>" if row.caller_unit else ""
        callee_unit = f"<br><small>{escape(row.callee_unit)}</small>" if row.callee_unit else ""
        out.append(
            f'<tr><td><a href="{escape(row.url)}">{row.started}</a></td>'
            f"<td>{escape(row.direction)}</td>"
            f'<td><span class="number">{escape(row.caller)}</span>{caller_unit}</td>'
            f'<td><span class="number">{escape(row.callee)}</span>{callee_unit}</td>'
            f'<td><span class="result result-{escape(row.result)}">'
            f"{escape(row.result_label)}</span></td>"
            f'<td class="num">{row.wait}</td><td class="num">{row.talk}</td>'
            f"<td>{escape(yes) if row.dtmf else ''}</td><td>{escape(row.recording)}</td></tr>"
        )
    return SafeString("\n".join(out))


#: columns a result list never shows: the whole record, the SIP ladder, the waveform
_HEAVY = ("record", "ladder", "recording__peaks", "recording__wrapped_key")


def _filters(form: SearchForm) -> dict[str, Any]:
    """The filters actually set, JSON-friendly, for the audit trail."""
    return {
        k: (v.isoformat() if isinstance(v, dt.datetime) else v)
        for k, v in form.cleaned_data.items()
        if v not in (None, "")
    }


def _unit_pair(data: dict[str, Any]) -> tuple[str, str] | None:
    """Names of the caller and callee units of a matrix drill-down, if the search is one."""
    caller, callee = data.get("caller_unit"), data.get("callee_unit")
    if not caller and not callee:
        return None
    names = dict(OrgUnit.objects.filter(pk__in=[caller, callee]).values_list("pk", "name"))
    return names.get(caller or 0, "*"), names.get(callee or 0, "*")


def _query(request: HttpRequest, **changes: str | None) -> str:
    """The current query string without paging cursors, with ``changes`` applied."""
    params = request.GET.copy()
    for key in ("after", "before", *changes):
        params.pop(key, None)
    for key, value in changes.items():
        if value:
            params[key] = value
    return params.urlencode()


def _column_links(request: HttpRequest, current: str) -> dict[str, dict[str, str]]:
    """For each sortable column: the link that sorts by it and its aria-sort state."""
    links = {}
    for column, (desc, asc) in COLUMN_SORTS.items():
        state = "descending" if current == desc else "ascending" if current == asc else "none"
        target = asc if current == desc else desc
        links[column] = {"query": _query(request, sort=target), "state": state}
    return links


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """The search page; with htmx, only the result table is rendered."""
    require_staff(request)
    form = SearchForm(request.GET)
    context: dict[str, Any] = {"form": form, "searched": False}
    if form.is_valid():
        context["pair"] = _unit_pair(form.cleaned_data)
        data = form.cleaned_data
        sort = data.get("sort") or "-started"
        calls = (
            find_calls(data)
            .select_related("caller_unit", "callee_unit", "recording")
            .defer(*_HEAVY)
        )
        try:
            page = page_of(
                calls, sort, after=request.GET.get("after"), before=request.GET.get("before")
            )
        except CursorError as exc:
            raise Http404 from exc
        first_page = not request.GET.get("after") and not request.GET.get("before")
        audit_all(
            request,
            [
                Event("search", detail={"filters": _filters(form)}) if first_page else None,
                numbers_shown(request, [f"call:{call.pk}" for call in page.rows]),
            ],
            views=True,
        )
        context.update(
            searched=True,
            page=page,
            rows_html=rows_html(result_rows(page.rows, request.user), gettext("Yes")),
            sort=sort,
            columns=_column_links(request, sort),
            next_query=_query(request, after=page.next_cursor) if page.next_cursor else "",
            prev_query=_query(request, before=page.prev_cursor) if page.prev_cursor else "",
            export_query=_query(request),
            implied_start=implied_start(data),
            unbounded_days=UNBOUNDED_SORT_DAYS,
        )
    htmx: Any = getattr(request, "htmx", None)  # set by django_htmx's HtmxMiddleware
    partial = bool(htmx) and not htmx.history_restore_request
    template = "console/calls/_results.html" if partial else "console/calls/search.html"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The whole search result (up to `exports.EXPORT_LIMIT` rows) as CSV or Excel; audited."""
    user = require_staff(request)
    if fmt not in exports.FORMATS:
        raise Http404
    form = SearchForm(request.GET)
    if not form.is_valid():
        return render(request, "console/calls/search.html", {"form": form}, status=400)
    sort = form.cleaned_data.get("sort") or "-started"
    rows = iter_rows(
        find_calls(form.cleaned_data)
        .select_related("caller_unit", "callee_unit", "recording")
        .defer(*_HEAVY),
        sort,
        limit=exports.EXPORT_LIMIT,
    )
    writer, content_type = exports.FORMATS[fmt]
    body, count = writer(rows, user=user)
    audit(
        request,
        "export",
        detail={
            "what": "calls",
            "format": fmt,
            "rows": count,
            "truncated": count >= exports.EXPORT_LIMIT,
            "full_numbers": user.may_see_numbers,
            "filters": _filters(form),
        },
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="calls-{stamp}.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _call_end(call: Call) -> dt.datetime:
    return call.ended_at or call.answered_at or call.ringing_at or call.started_at


def _phases(call: Call) -> list[dict[str, Any]]:
    """Waiting, ringing and talk as shares of the call's length, for the timeline bar."""
    end = _call_end(call)
    total = (end - call.started_at).total_seconds()
    if total <= 0:
        return []
    marks = [
        ("waiting", call.started_at, call.ringing_at or call.answered_at or end),
        ("ringing", call.ringing_at, call.answered_at or end),
        ("talk", call.answered_at, end),
    ]
    phases = []
    for name, start, stop in marks:
        if start is None or stop is None or stop <= start:
            continue
        offset = (start - call.started_at).total_seconds()
        length = (stop - start).total_seconds()
        phases.append(
            {
                "name": name,
                "left": 100 * offset / total,
                "width": 100 * length / total,
                "seconds": length,
            }
        )
    return phases


def _offset(call: Call, text: object) -> float | None:
    at = parse_time(text)
    return (at - call.started_at).total_seconds() if at else None


def _record_lists(call: Call) -> dict[str, Any]:
    record = call.record or {}
    dtmf = [
        {**d, "offset": _offset(call, d.get("at"))}
        for d in record.get("dtmf") or ()
        if isinstance(d, dict)
    ]
    transfer = record.get("transfer") if isinstance(record.get("transfer"), dict) else None
    related: list[Call] = []
    if transfer and transfer.get("related_call_ids"):
        related = list(
            Call.objects.filter(call_id__in=list(transfer["related_call_ids"])[:20]).order_by(
                "started_at"
            )
        )
    anomalies = [a for a in record.get("anomalies") or () if isinstance(a, dict)]
    return {"dtmf": dtmf, "transfer": transfer, "related": related, "anomalies": anomalies}


#: the waveform strip needs no more buckets per channel than a wide screen has pixels
OVERVIEW_BUCKETS = 1600


def overview_peaks(peaks: bytes, channels: int, limit: int = OVERVIEW_BUCKETS) -> bytes:
    """Channel-major peak bytes reduced to at most ``limit`` buckets per channel (the
    loudest of each group), so an hour-long call does not put 140 KB into the page."""
    per = len(peaks) // max(1, channels)
    if per <= limit:
        return peaks
    group = -(-per // limit)
    count = -(-per // group)
    table = np.zeros((channels, count * group), dtype=np.uint8)
    table[:, :per] = np.frombuffer(peaks[: per * channels], dtype=np.uint8).reshape(channels, per)
    reduced: bytes = table.reshape(channels, count, group).max(axis=2).tobytes()
    return reduced


def _player(call: Call, recording: Recording | None) -> dict[str, Any] | None:
    if recording is None or recording.status not in LISTENABLE:
        return None
    if recording.state != Recording.State.DONE or recording.deleted_at or not recording.storage_key:
        return None
    channels = recording.channels or 2
    peaks = overview_peaks(bytes(recording.peaks or b""), channels)
    return {
        "url": reverse("console:call_audio", args=[call.pk]),
        "peaks": base64.b64encode(peaks).decode("ascii"),
        "channels": channels,
        "duration": recording.duration_seconds or 0,
    }


@login_required
@require_GET
def call_detail(request: HttpRequest, call_id: int) -> HttpResponse:
    """One call: timings, SIP ladder, quality, DTMF, transfers, legs, anomalies, recording."""
    call, can_listen = get_call_for_user(request, call_id)
    recording = getattr(call, "recording", None)
    streams = list(call.streams.all())
    for stream in streams:
        total = stream.packets + stream.lost
        stream.loss_percent = 100 * stream.lost / total if total else 0.0  # type: ignore[attr-defined]
    legs = list(
        Call.objects.filter(conversation_id=call.conversation_id)
        .exclude(pk=call.pk)
        .select_related("caller_unit", "callee_unit")
        .order_by("started_at")[:50]
    )
    lists = _record_lists(call)
    holds = (
        list(LegalHold.objects.filter(recording=recording, released_at__isnull=True))
        if recording
        else []
    )
    audit_all(
        request,
        [
            Event("call_view", target=f"call:{call.pk}"),
            numbers_shown(request, [f"call:{c.pk}" for c in (call, *legs, *lists["related"])]),
        ],
        views=True,
    )
    context = {
        "call": call,
        "ladder": build_ladder(call.ladder or [], call.started_at),
        "phases": _phases(call),
        "call_length": (_call_end(call) - call.started_at).total_seconds(),
        "streams": streams,
        "legs": legs,
        "recording": recording,
        "holds": holds,
        "player": _player(call, recording) if can_listen else None,
        "can_listen": can_listen,
        **lists,
    }
    return render(request, "console/calls/detail.html", context)
