"""The manager's monthly report (PDF, A4, Japanese): key figures, charts and tables.

Drawn with reportlab from the same tables as the console (`tables.TABLES`). The Japanese
font is IPAexGothic (TrueType outlines, which reportlab embeds as a subset; the OpenType/CFF
Noto CJK fonts cannot be embedded by reportlab). It comes from the ``japanize-matplotlib``
package (a dependency that ships ``ipaexg.ttf``) or Debian's ``fonts-ipaexfont-gothic``;
`FontMissing` says so when neither is installed.
"""

from __future__ import annotations

import calendar
import datetime as dt
import importlib.util
import io
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _
from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from callscope.analytics import queries, tables
from callscope.analytics.queries import Filters

FONT = "IPAexGothic"
DEBIAN_FONTS = (
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"),
)
BLUE = colors.HexColor("#1f5fa8")


class FontMissing(RuntimeError):
    """No TrueType Japanese font to embed; ``searched`` lists the paths tried."""

    def __init__(self, searched: list[Path]) -> None:
        super().__init__(
            "no Japanese TrueType font: install the japanize-matplotlib package "
            "or the Debian package fonts-ipaexfont-gothic"
        )
        self.searched = searched


def font_path() -> Path:
    """ipaexg.ttf from the japanize-matplotlib package, else from Debian's package."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("japanize_matplotlib")  # located, never imported
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "fonts" / "ipaexg.ttf")
    candidates += DEBIAN_FONTS
    for path in candidates:
        if path.is_file():
            return path
    raise FontMissing(candidates)


def register_font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT, str(font_path())))
    return FONT


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=FONT, fontSize=9, leading=13)
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=18, leading=24, spaceAfter=6),
        "h2": ParagraphStyle(
            "h2", parent=base, fontSize=12, leading=17, spaceBefore=8, spaceAfter=4, textColor=BLUE
        ),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=10),
    }


def _table(table: tables.Table, widths: list[float] | None = None, limit: int = 25) -> Table:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    data = [table.header, *[[cell(v) for v in row] for row in table.rows[:limit]]]
    t = Table(data, colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), FONT, 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0b8c4")),
        ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))  # fmt: skip
    return t


def _bars(labels: list[str], values: list[float], title: str, *, horizontal: bool = False,
          width: float = 170 * mm, height: float = 60 * mm) -> Drawing:  # fmt: skip
    drawing = Drawing(width, height)
    chart = HorizontalBarChart() if horizontal else VerticalBarChart()
    chart.x, chart.y = (45 * mm, 8 * mm) if horizontal else (12 * mm, 12 * mm)
    chart.width = width - chart.x - 5 * mm
    chart.height = height - chart.y - 10 * mm
    chart.data = [values or [0]]
    chart.bars[0].fillColor = BLUE
    chart.bars[0].strokeColor = None
    axis = chart.categoryAxis
    axis.categoryNames = labels or [""]
    axis.labels.fontName = FONT
    axis.labels.fontSize = 6
    if not horizontal:
        step = max(1, len(labels) // 16)
        axis.categoryNames = [lab if i % step == 0 else "" for i, lab in enumerate(labels)]
        axis.labels.angle = 45 if len(labels) > 16 else 0
        axis.labels.boxAnchor = "ne" if len(labels) > 16 else "n"
    chart.valueAxis.labels.fontName = FONT
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    drawing.add(chart)
    drawing.add(String(0, height - 5 * mm, title, fontName=FONT, fontSize=9, fillColor=BLUE))
    return drawing


def _heatmap(grid: list[list[int]]) -> Table:
    peak = max((max(row) for row in grid), default=0) or 1
    data = [["", *[str(h) for h in range(7, 20)]]]
    style = [("FONT", (0, 0), (-1, -1), FONT, 6.5), ("ALIGN", (0, 0), (-1, -1), "CENTER"),
             ("GRID", (0, 0), (-1, -1), 0.25, colors.white)]  # fmt: skip
    for d, row in enumerate(grid):
        data.append([str(tables.WEEKDAYS[d]), *[f"{v:,}" for v in row[7:20]]])
        for h, value in enumerate(row[7:20]):
            shade = 1 - 0.75 * value / peak
            fill = colors.Color(shade, shade * 0.9 + 0.1, 1)
            style.append(("BACKGROUND", (h + 1, d + 1), (h + 1, d + 1), fill))
    t = Table(data, colWidths=[12 * mm] + [12.5 * mm] * 13)
    t.setStyle(TableStyle(style))
    return t


def build(month: dt.date, *, unit_id: int | None = None) -> bytes:
    """The report for ``month`` (any day in it) as PDF bytes."""
    register_font()
    first = month.replace(day=1)
    f = Filters(first, month_end(first), unit_id, queries.DEFAULT_FLOWS, "section")
    s = _styles()
    unit = f.unit
    scope = unit.name if unit else _("Whole city")
    story: list[Any] = [
        Paragraph(_("Monthly call report") + f" {first:%Y年%m月}", s["title"]),
        Paragraph(
            f"{scope} / " + _("Inbound (citizens)") + f" / {f.start:%Y-%m-%d} – {f.end:%Y-%m-%d}",
            s["body"],
        ),
        Spacer(1, 4 * mm),
    ]
    summary = tables.summary_table(f)
    story.append(KeepTogether([Paragraph(summary.title, s["h2"]),
                               _table(summary, [70 * mm, 35 * mm], limit=40)]))  # fmt: skip
    trend = queries.trend(f)
    story.append(_bars([r["day"].strftime("%d") for r in trend], [r["offered"] for r in trend],
                       _("Calls per day")))  # fmt: skip
    story += [PageBreak(), Paragraph(_("Calls by weekday and hour"), s["h2"]),
              _heatmap(queries.heatmap(f))]  # fmt: skip
    rows = queries.by_unit(f)[:12]
    story.append(Spacer(1, 4 * mm))
    story.append(_bars([f"{r['top'][:4]} {r['name']}"[:14] for r in rows][::-1],
                       [r["offered"] for r in rows][::-1], _("Sections with the most calls"),
                       horizontal=True, height=80 * mm))  # fmt: skip
    dist = queries.distributions(f)
    story.append(_bars([lab for lab, _n in dist["wait"]], [n for _l, n in dist["wait"]],
                       _("Waiting time (answered calls)"), height=50 * mm))  # fmt: skip
    story.append(_bars([lab for lab, _n in dist["talk"]], [n for _l, n in dist["talk"]],
                       _("Talk time"), height=50 * mm))  # fmt: skip
    units = tables.units_table(f)
    story += [PageBreak(), Paragraph(units.title, s["h2"]),
              _table(units, limit=30)]  # fmt: skip
    internal = Filters(f.start, f.end, unit_id, queries.INTERNAL, "top")
    matrix = tables.matrix_table(internal)
    story += [Paragraph(matrix.title + " (" + _("Bureau or ward") + ")", s["h2"]),
              _table(matrix, [55 * mm, 55 * mm, 20 * mm, 20 * mm, 20 * mm], limit=20),
              Spacer(1, 3 * mm),
              Paragraph(_("Definitions of every figure: docs/kpis.md. Percentiles are read "
                          "from fixed histograms."), s["small"])]  # fmt: skip
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm,
                            title=f"callscope {first:%Y-%m}", author="callscope")  # fmt: skip
    doc.build(story)
    return out.getvalue()
