"""The manager's audit trail page (filters, newest first, keyset pages) and its CSV export."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from callscope.accounts.access import audit, require_manager
from callscope.accounts.audittrail import ACTIONS, AuditFilter, csv_lines
from callscope.accounts.forms import AuditFilterForm
from callscope.store.models import AuditEntry

PAGE_SIZE = 100


def _day_start(day: dt.date | None) -> dt.datetime | None:
    if day is None:
        return None
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _filter(form: AuditFilterForm) -> AuditFilter:
    if not form.is_valid():
        return AuditFilter()
    data = form.cleaned_data
    until = data.get("until")
    return AuditFilter(
        action=data.get("action") or "",
        actor=data.get("actor") or "",
        target=data.get("target") or "",
        since=_day_start(data.get("since")),
        # the "until" day is included: filter before the start of the next day
        until=_day_start(until + dt.timedelta(days=1)) if until else None,
    )


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    form = AuditFilterForm(request.GET or None)
    entries = _filter(form).apply(AuditEntry.objects.all()).order_by("-sequence")
    before = request.GET.get("before", "")
    if before.isdigit():
        entries = entries.filter(sequence__lt=int(before))
    page = list(entries[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "entries": page,
        "labels": ACTIONS,
        "next_before": page[-1].sequence if more and page else None,
        "query": query.urlencode(),
    }
    return render(request, "accounts/audit_trail.html", context)


@login_required
def audit_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered trail as CSV (UTF-8 with BOM); the export itself is audited."""
    require_manager(request)
    form = AuditFilterForm(request.GET or None)
    query = _filter(form)
    entries = query.apply(AuditEntry.objects.all())
    audit(
        request,
        "audit_export",
        target="audit",
        detail={"entries": entries.count(), "filter": request.GET.dict()},
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(csv_lines(entries), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
