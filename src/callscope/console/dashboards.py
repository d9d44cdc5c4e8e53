"""Dashboards: call volumes, waiting, talk time, abandons and the internal call matrix.

Every panel reads the analytics rollups (`callscope.analytics.queries`), never the calls,
so a page costs O(days x sections) however many years are stored. Charts are drawn in the
browser by plotly.js, served from the installed plotly package (no CDN). Every table can be
downloaded as CSV or Excel, and the manager's monthly report as PDF.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from callscope.accounts.access import audit, require_staff
from callscope.analytics import kpis, monthly_report, orgindex, queries, tables
from callscope.analytics.models import Rollup
from callscope.console.widgets import PlainSelect

FLOWS = [
    ("inbound", gettext_lazy("Inbound (citizens)")),
    ("outbound", gettext_lazy("Outbound")),
    ("internal", gettext_lazy("Internal (same side)")),
    ("ward_hq", gettext_lazy("Internal, ward and HQ")),
    ("all", gettext_lazy("All calls")),
]
LEVELS = [
    ("top", gettext_lazy("Bureau or ward")),
    ("department", gettext_lazy("Department")),
    ("section", gettext_lazy("Section")),
]
PAGES = [
    ("console:dashboards", gettext_lazy("Overview")),
    ("console:dashboard_units", gettext_lazy("Sections")),
    ("console:dashboard_distributions", gettext_lazy("Waiting and talk time")),
    ("console:dashboard_matrix", gettext_lazy("Internal call matrix")),
]
EXPORT_TYPES = {
    "csv": ("text/csv; charset=utf-8", tables.to_csv),
    "xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        tables.to_xlsx,
    ),
}


def unit_choices() -> list[tuple[str, str]]:
    """Bureaus, wards, departments and sections of every period, bureau/ward first."""
    info = orgindex.current_index().info
    order = {"bureau": 0, "ward": 1, "department": 2, "section": 3}
    units = sorted(info.values(), key=lambda u: (order.get(u.level, 4), u.top_id, u.code))
    choices = [("", str(_("Whole city")))]
    for unit in units:
        top = info.get(unit.top_id)
        prefix = f"{top.name} / " if top is not None and top.id != unit.id else ""
        choices.append((str(unit.id), f"{prefix}{unit.name}"))
    return choices


def latest_day() -> dt.date:
    """The last day with calls: one index seek per flow (a MAX over every flow's day rows
    read them all, 4-5 ms a page)."""
    table = Rollup._meta.db_table
    per_flow = " UNION ALL ".join(
        f"SELECT MAX(day) AS day FROM {table} WHERE grain = 'd' AND scope = 't' AND flow = %s"  # noqa: S608
        for _flow in queries.ALL_FLOWS
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(day) FROM ({per_flow}) AS flows", queries.ALL_FLOWS)  # noqa: S608
        (day,) = cursor.fetchone()
    if isinstance(day, str):  # SQLite: MAX over a subquery loses the column's type
        day = dt.date.fromisoformat(day)
    return day or timezone.localdate()


class DashboardForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
    end = forms.DateField(label=gettext_lazy("To"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
    unit = forms.ChoiceField(label=gettext_lazy("Organisation"), required=False,
                             widget=PlainSelect)  # fmt: skip
    level = forms.ChoiceField(label=gettext_lazy("Group by"), required=False, choices=LEVELS)
    flow = forms.ChoiceField(label=gettext_lazy("Calls"), required=False, choices=FLOWS)
    marker = forms.DateField(label=gettext_lazy("Before/after date"), required=False,
                             widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unit = self.fields["unit"]
        assert isinstance(unit, forms.ChoiceField)
        unit.choices = unit_choices()

    def filters(self, *, default_level: str = "section") -> queries.Filters:
        data = self.cleaned_data if self.is_valid() else {}
        end = data.get("end") or latest_day()
        start = data.get("start") or end - dt.timedelta(days=29)
        if start > end:
            start, end = end, start
        flow = data.get("flow") or "inbound"
        flows: tuple[str, ...] = () if flow == "all" else (flow,)
        marker = data.get("marker")
        if marker is not None and not start < marker <= end:
            marker = None
        unit = data.get("unit")
        return queries.Filters(start, end, int(unit) if unit else None, flows,
                               data.get("level") or default_level, marker)  # fmt: skip


def _context(request: HttpRequest, page: str, f: queries.Filters, form: DashboardForm,
             **extra: Any) -> dict[str, Any]:  # fmt: skip
    params = {"start": f.start.isoformat(), "end": f.end.isoformat(), "level": f.level,
              "flow": f.flows[0] if f.flows else "all"}  # fmt: skip
    if f.unit_id:
        params["unit"] = str(f.unit_id)
    if f.marker:
        params["marker"] = f.marker.isoformat()
    query = urlencode(params)
    return {
        "form": form, "filters": f, "query": query, "page": page,
        "pages": [(reverse(name), label, name == page) for name, label in PAGES],
        "export_formats": list(EXPORT_TYPES), **extra,
    }  # fmt: skip


def _render(request: HttpRequest, template: str, page: str, *, default_level: str = "section",
            build: Any) -> HttpResponse:  # fmt: skip
    require_staff(request)
    form = DashboardForm(request.GET or None)
    f = form.filters(default_level=default_level)
    if not form.is_bound:  # the fields show the period and grouping in force
        form = DashboardForm(initial={"start": f.start, "end": f.end, "level": f.level,
                                      "flow": f.flows[0] if f.flows else "all"})  # fmt: skip
    return render(request, template, _context(request, page, f, form, **build(f)))


def _overview(f: queries.Filters) -> dict[str, Any]:
    summary = queries.summary(f)
    trend = queries.trend(f)
    mix = queries.mix(f)
    peak = queries.peak_load(f)
    labels = dict(FLOWS)
    return {
        "summary": tables.summary_table(f, summary),
        "kpi": summary,
        "compare": tables.compare_table(f) if f.marker else None,
        "charts": {
            "trend": {
                "x": [r["day"].isoformat() for r in trend],
                "series": [
                    (str(_("Offered calls")), [r["offered"] for r in trend]),
                    (str(_("Answered")), [r["answered"] for r in trend]),
                    (str(_("Abandoned")), [r["abandoned"] for r in trend]),
                ],
                "marker": f.marker.isoformat() if f.marker else None,
                "marker_label": str(_("Change")),
            },
            "heatmap": {
                "z": queries.heatmap(f),
                "x": [f"{h}時" for h in range(24)],
                "y": [str(d) for d in tables.WEEKDAYS],
            },
            "mix": {"labels": [str(labels.get(k, k)) for k in mix], "values": list(mix.values())},
            "peak": {
                "x": [r["day"].isoformat() for r in peak],
                "y": [r["peak"] for r in peak],
            },
        },
    }


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return _render(request, "console/dashboards/overview.html", "console:dashboards",
                   build=_overview)  # fmt: skip


def _units(f: queries.Filters) -> dict[str, Any]:
    rows = queries.by_unit(f)
    top_calls = rows[:15]
    top_minutes = sorted(rows, key=lambda r: -r["talk_minutes"])[:15]
    abandon = sorted((r for r in rows if r["offered"] >= 20),
                     key=lambda r: -(r["abandon_rate"] or 0))[:15]  # fmt: skip
    return {
        "units": tables.units_table(f),
        "charts": {
            "calls": _bar(top_calls, "offered"),
            "minutes": _bar(top_minutes, "talk_minutes"),
            "abandon": _bar(abandon, "abandon_rate", scale=100),
        },
    }


def _bar(rows: list[dict[str, Any]], key: str, scale: float = 1) -> dict[str, Any]:
    names = [f"{r['top']} {r['name']}" if r["top"] != r["name"] else r["name"] for r in rows]
    return {"y": names[::-1], "x": [round((r[key] or 0) * scale, 1) for r in rows][::-1]}


@login_required
@require_GET
def units(request: HttpRequest) -> HttpResponse:
    return _render(request, "console/dashboards/units.html", "console:dashboard_units",
                   build=_units)  # fmt: skip


def _distributions(f: queries.Filters) -> dict[str, Any]:
    d = queries.distributions(f)
    s = queries.summary(f)
    return {
        "wait": tables.wait_table(f),
        "talk": tables.talk_table(f),
        "kpi": s,
        "charts": {
            "wait": {"x": [label for label, _n in d["wait"]], "y": [n for _l, n in d["wait"]]},
            "talk": {"x": [label for label, _n in d["talk"]], "y": [n for _l, n in d["talk"]]},
        },
        "service_level_seconds": kpis.DEFAULT_SERVICE_LEVEL_SECONDS,
    }


@login_required
@require_GET
def distributions(request: HttpRequest) -> HttpResponse:
    return _render(request, "console/dashboards/distributions.html",
                   "console:dashboard_distributions", build=_distributions)  # fmt: skip


def drill_down_url(caller_id: int, callee_id: int, f: queries.Filters) -> str:
    """The call search for one cell of the matrix (the search applies number masking)."""
    params = {"caller_unit": caller_id, "callee_unit": callee_id,
              "from": f.start.isoformat(), "to": f.end.isoformat()}  # fmt: skip
    return f"{reverse('console:search')}?{urlencode(params)}"


def matrix_filters(f: queries.Filters) -> queries.Filters:
    """Internal flows; a city-wide matrix stops at departments (a section x section grid of
    the whole city is unreadable and the slowest panel): pick a bureau or ward for sections."""
    level = "department" if f.level == "section" and f.unit_id is None else f.level
    return queries.Filters(f.start, f.end, f.unit_id, tuple(queries.INTERNAL), level, f.marker)


def _matrix(f: queries.Filters) -> dict[str, Any]:
    f = matrix_filters(f)
    rows = queries.matrix(f)[:400]
    callers = sorted({(r["caller"], r["caller_id"]) for r in rows})
    callees = sorted({(r["callee"], r["callee_id"]) for r in rows})
    col = {uid: i for i, (_name, uid) in enumerate(callees)}
    row_index = {uid: i for i, (_name, uid) in enumerate(callers)}
    z: list[list[int | None]] = [[None] * len(callees) for _ in callers]
    links: list[list[str]] = [[""] * len(callees) for _ in callers]
    for r in rows:
        i, j = row_index[r["caller_id"]], col[r["callee_id"]]
        z[i][j] = r["calls"]
        links[i][j] = drill_down_url(r["caller_id"], r["callee_id"], f)
    for r in rows:
        r["url"] = drill_down_url(r["caller_id"], r["callee_id"], f)
    return {
        "matrix_rows": rows[:100],
        "charts": {
            "matrix": {
                "z": z,
                "x": [n for n, _ in callees],
                "y": [n for n, _ in callers],
                "links": links,
            }
        },
    }


@login_required
@require_GET
def matrix(request: HttpRequest) -> HttpResponse:
    return _render(request, "console/dashboards/matrix.html", "console:dashboard_matrix",
                   default_level="top", build=_matrix)  # fmt: skip


@login_required
@require_GET
def export(request: HttpRequest, table: str, fmt: str) -> HttpResponse:
    """One dashboard table as CSV or Excel (audited)."""
    require_staff(request)
    if table not in tables.TABLES or fmt not in EXPORT_TYPES:
        raise Http404
    form = DashboardForm(request.GET or None)
    f = form.filters(default_level="top" if table == "matrix" else "section")
    if table == "matrix":
        f = matrix_filters(f)
    content_type, write = EXPORT_TYPES[fmt]
    data = write(tables.TABLES[table](f))
    detail = {"start": f.start, "end": f.end, "unit": f.unit_id, "flows": list(f.flows)}
    audit(request, "dashboard.export", target=f"{table}.{fmt}", detail=detail)
    response = HttpResponse(data, content_type=content_type)
    name = f"callscope-{table}-{f.start:%Y%m%d}-{f.end:%Y%m%d}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_GET
def report(request: HttpRequest) -> HttpResponse:
    """The manager's monthly report as PDF (``?month=YYYY-MM``, default the last month)."""
    require_staff(request)
    text = request.GET.get("month", "")
    try:
        month = dt.date.fromisoformat(f"{text}-01") if text else None
    except ValueError as exc:
        raise Http404 from exc
    if month is None:
        last = latest_day()
        month = (last.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        if last.day == monthly_report.month_end(last).day:
            month = last.replace(day=1)
    unit = request.GET.get("unit")
    data = monthly_report.build(month, unit_id=int(unit) if unit and unit.isdigit() else None)
    audit(request, "dashboard.report", target=f"{month:%Y-%m}")
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="callscope-{month:%Y-%m}.pdf"'
    return response
