"""Every dashboard table as a `Table` (title, header, rows), and its CSV and Excel files.

The console pages, the exports and the monthly PDF report all draw from `TABLES`, so a
figure reads the same wherever it is shown. Labels are translated (Japanese by default).
CSV is UTF-8 with a BOM (Excel on Japanese Windows); cells a spreadsheet would evaluate
(``=``, ``+``, ``-``, ``@``) are prefixed with an apostrophe in both formats.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from callscope.analytics import queries
from callscope.analytics.queries import Filters

WEEKDAYS = (gettext_lazy("Mon"), gettext_lazy("Tue"), gettext_lazy("Wed"), gettext_lazy("Thu"),
            gettext_lazy("Fri"), gettext_lazy("Sat"), gettext_lazy("Sun"))  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


SUMMARY_ROWS = (
    ("offered", gettext_lazy("Offered calls"), 0),
    ("answered", gettext_lazy("Answered"), 0),
    ("answer_rate", gettext_lazy("Answer rate (%)"), "%"),
    ("abandoned", gettext_lazy("Abandoned"), 0),
    ("abandoned_short", gettext_lazy("Short abandons"), 0),
    ("abandon_rate", gettext_lazy("Abandon rate (%)"), "%"),
    ("abandoned_ivr", gettext_lazy("Abandoned in the IVR"), 0),
    ("ivr_only", gettext_lazy("Handled by the IVR only"), 0),
    ("busy", gettext_lazy("Busy"), 0),
    ("no_answer", gettext_lazy("No answer"), 0),
    ("wait_mean", gettext_lazy("Waiting time, mean (s)"), 1),
    ("wait_median", gettext_lazy("Waiting time, median (s)"), 1),
    ("wait_p90", gettext_lazy("Waiting time, 90th percentile (s)"), 1),
    ("service_level", gettext_lazy("Service level (%)"), "%"),
    ("ring_mean", gettext_lazy("Ring time, mean (s)"), 1),
    ("talk_mean", gettext_lazy("Talk time, mean (s)"), 1),
    ("talk_median", gettext_lazy("Talk time, median (s)"), 1),
    ("talk_p90", gettext_lazy("Talk time, 90th percentile (s)"), 1),
    ("talk_minutes", gettext_lazy("Talk minutes"), 0),
    ("hold_mean", gettext_lazy("Hold time, mean (s)"), 1),
    ("ended_by_caller", gettext_lazy("Hung up by the caller"), 0),
    ("ended_by_callee", gettext_lazy("Hung up by staff"), 0),
    ("transferred", gettext_lazy("Transferred"), 0),
    ("repeat", gettext_lazy("Repeat callers (7 days)"), 0),
    ("legs_per_call", gettext_lazy("Legs per call"), 2),
)


def _fmt(value: float | None, kind: Any) -> Any:
    if kind == "%":
        return _pct(value)
    return _r(value, kind) if kind else (None if value is None else round(value))


def summary_table(f: Filters, s: dict[str, Any] | None = None) -> Table:
    """The key figures as a table (``s``: `queries.summary(f)` when the caller has it)."""
    s = queries.summary(f) if s is None else s
    rows = [[str(label), _fmt(s[key], kind)] for key, label, kind in SUMMARY_ROWS]
    return Table(_("Key figures"), [_("Figure"), _("Value")], rows)


def compare_table(f: Filters) -> Table:
    changes = queries.compare_periods(f)
    rows = []
    for key, label, kind in SUMMARY_ROWS:
        change = changes.get(key)
        if change is not None:
            rows.append([str(label), _fmt(change.before, kind), _fmt(change.after, kind),
                         _fmt(change.delta, kind), _pct(change.relative)])  # fmt: skip
    header = [_("Figure"), _("Before"), _("After"), _("Change"), _("Change (%)")]
    return Table(_("Before and after"), header, rows)


def trend_table(f: Filters) -> Table:
    rows = [[r["day"].isoformat(), r["offered"], r["answered"], r["abandoned"],
             round(r["talk_minutes"])] for r in queries.trend(f)]  # fmt: skip
    header = [_("Day"), _("Offered calls"), _("Answered"), _("Abandoned"), _("Talk minutes")]
    return Table(_("Calls per day"), header, rows)


def heatmap_table(f: Filters) -> Table:
    grid = queries.heatmap(f)
    rows = [[str(WEEKDAYS[d]), *grid[d]] for d in range(7)]
    return Table(_("Calls by weekday and hour"), [_("Weekday"), *map(str, range(24))], rows)


def units_table(f: Filters) -> Table:
    rows = [[r["top"], r["name"], r["offered"], r["answered"], r["abandoned"],
             _pct(r["abandon_rate"]), _pct(r["service_level"]), _r(r["wait_mean"]),
             _r(r["talk_mean"]), round(r["talk_minutes"])] for r in queries.by_unit(f)]  # fmt: skip
    header = [_("Bureau or ward"), _("Unit"), _("Offered calls"), _("Answered"), _("Abandoned"),
              _("Abandon rate (%)"), _("Service level (%)"), _("Waiting time, mean (s)"),
              _("Talk time, mean (s)"), _("Talk minutes")]  # fmt: skip
    return Table(_("Calls by unit"), header, rows)


def wait_table(f: Filters) -> Table:
    rows = [[label, n] for label, n in queries.distributions(f)["wait"]]
    return Table(_("Waiting time (answered calls)"), [_("Seconds"), _("Calls")], rows)


def talk_table(f: Filters) -> Table:
    rows = [[label, n] for label, n in queries.distributions(f)["talk"]]
    return Table(_("Talk time"), [_("Seconds"), _("Calls")], rows)


def matrix_table(f: Filters) -> Table:
    rows = [[r["caller"], r["callee"], r["calls"], r["answered"], round(r["minutes"])]
            for r in queries.matrix(f)]  # fmt: skip
    header = [_("Caller unit"), _("Callee unit"), _("Calls"), _("Answered"), _("Minutes")]
    return Table(_("Internal calls"), header, rows)


def peak_table(f: Filters) -> Table:
    rows = [[r["day"].isoformat(), r["peak"]] for r in queries.peak_load(f)]
    return Table(_("Peak concurrent calls"), [_("Day"), _("Peak concurrent calls")], rows)


TABLES: dict[str, Callable[[Filters], Table]] = {
    "summary": summary_table,
    "compare": compare_table,
    "trend": trend_table,
    "heatmap": heatmap_table,
    "units": units_table,
    "wait": wait_table,
    "talk": talk_table,
    "matrix": matrix_table,
    "peak": peak_table,
}


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in table.header])
    writer.writerows([safe_cell(v) for v in row] for row in table.rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = table.title[:31]
    sheet.append([safe_cell(h) for h in table.header])
    for row in table.rows:
        sheet.append([safe_cell(v) for v in row])
    for i, header in enumerate(table.header, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(10, len(str(header)) * 2)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
