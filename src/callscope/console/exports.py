"""CSV and Excel files of a call search result (numbers as the user may see them).

CSV is UTF-8 with a byte-order mark so that Excel on Japanese Windows opens it correctly.
Cells that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) are
prefixed with an apostrophe (OWASP "CSV injection"), in both formats.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook

from callscope.console.templatetags.console import shown_number
from callscope.store.models import Call

#: most rows one export may hold; the audit entry says when a result was cut
EXPORT_LIMIT = 100_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def header() -> list[str]:
    return [
        _("Started (JST)"),
        _("Ended (JST)"),
        _("Direction"),
        _("Caller"),
        _("Caller section"),
        _("Callee"),
        _("Callee section"),
        _("Result"),
        _("Final response"),
        _("Waiting time (s)"),
        _("Ring time (s)"),
        _("Talk time (s)"),
        _("Hold time (s)"),
        _("DTMF"),
        _("Transferred"),
        _("Recording"),
    ]


def _local(value: dt.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _num(value: float | None) -> float | str:
    return round(value, 3) if value is not None else ""


def safe_cell(value: Any) -> Any:
    """A value a spreadsheet shows as text, never evaluates."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def row(call: Call, *, user: Any) -> list[Any]:
    recording = getattr(call, "recording", None)
    cells: list[Any] = [
        _local(call.started_at),
        _local(call.ended_at),
        call.get_direction_display(),
        shown_number(user, call.caller_number),
        call.caller_unit.name if call.caller_unit else "",
        shown_number(user, call.callee_number),
        call.callee_unit.name if call.callee_unit else "",
        call.get_result_display(),
        call.final_code if call.final_code is not None else "",
        _num(call.setup_seconds),
        _num(call.ring_seconds),
        _num(call.talk_seconds),
        _num(call.hold_seconds),
        _("Yes") if call.has_dtmf else "",
        _("Yes") if call.transferred else "",
        recording.get_status_display() if recording and recording.status else "",
    ]
    return [safe_cell(c) for c in cells]


def to_csv(calls: Iterable[Call], *, user: Any) -> tuple[bytes, int]:
    """The CSV file's bytes and its number of data rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header())
    count = 0
    for call in calls:
        writer.writerow(row(call, user=user))
        count += 1
    return buffer.getvalue().encode("utf-8-sig"), count


def to_xlsx(calls: Iterable[Call], *, user: Any) -> tuple[bytes, int]:
    """The Excel workbook's bytes (write-only mode: constant memory per row) and its rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=_("Calls")[:31])
    sheet.append(header())
    count = 0
    for call in calls:
        sheet.append(row(call, user=user))
        count += 1
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue(), count


FORMATS = {
    "csv": (to_csv, "text/csv; charset=utf-8"),
    "xlsx": (to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
