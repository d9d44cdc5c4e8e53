"""The organisation and number directory as one CSV file: validation, import, export.

One row per record. ``record`` is ``unit`` (an organisation unit over a period) or ``number``
(a phone number or extension of a unit over a period)::

    record,code,name,level,parent,number,kind,label,valid_from,valid_to
    unit,KODOMO,こども家庭局,bureau,,,,,2024-04-01,
    unit,KODOMO-HOIKU,保育課,section,KODOMO,,,,2024-04-01,2025-03-31
    number,KODOMO-HOIKU,,,,0783225111,group,保育課 代表,2024-04-01,

Units are keyed by (code, valid_from), numbers by (number, valid_from): importing updates
the rows with the same key and adds the others (rows absent from the file are kept). A
``parent`` or a number's ``code`` names the unit with that code in force over the whole
period of the row. The import is all-or-nothing: any bad row rejects the file, and every
bad row is reported with its line, column and reason in Japanese and English. Files may be
UTF-8 (with or without BOM) or Shift_JIS (cp932, as Excel saves them); exports are UTF-8
with a BOM so that Excel opens them. Imports are written to the audit trail.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from callscope.analytics import orgindex
from callscope.store import audit
from callscope.store.models import DirectoryEntry, OrgUnit
from callscope.store.numbering import NumberClass, classify_number, normalise_number

COLUMNS = ("record", "code", "name", "level", "parent", "number", "kind", "label",
           "valid_from", "valid_to")  # fmt: skip
# Japanese headers are accepted as well (the export writes the English ones).
HEADER_ALIASES = {
    "種別": "record", "コード": "code", "名称": "name", "階層": "level", "上位コード": "parent",
    "番号": "number", "番号種別": "kind", "表示名": "label", "開始日": "valid_from",
    "終了日": "valid_to",
}  # fmt: skip

# reason code -> (Japanese, English); fixed texts, the row and column are attributes.
REASONS: dict[str, tuple[str, str]] = {
    "header": ("見出し行に必要な列がありません", "the header lacks required columns"),
    "encoding": ("文字コードが UTF-8 でも Shift_JIS でもありません",
                 "the file is neither UTF-8 nor Shift_JIS"),
    "record": ("種別は unit か number です", "record must be unit or number"),
    "required": ("必須項目が空です", "a required value is empty"),
    "date": ("日付は YYYY-MM-DD 形式で入力してください", "dates are written YYYY-MM-DD"),
    "order": ("終了日が開始日より前です", "valid_to is before valid_from"),
    "level": ("階層は bureau, ward, department, section のいずれかです",
              "level must be bureau, ward, department or section"),
    "nesting": ("この階層はその上位組織の下に置けません",
                "this level cannot sit under that parent"),
    "top_parent": ("局・区役所に上位組織は指定できません", "a bureau or ward has no parent"),
    "parent": ("上位組織がこの期間に存在しません",
               "no parent unit with this code covers the period"),
    "unit": ("所属組織がこの期間に存在しません", "no unit with this code covers the period"),
    "number": ("電話番号または内線番号として正しくありません",
               "not a valid phone number or extension"),
    "kind": ("番号種別は staff, group, ivr, fax のいずれかです",
             "kind must be staff, group, ivr or fax"),
    "duplicate": ("同じキー（コードまたは番号と開始日）の行が重複しています",
                  "the same key (code or number and valid_from) appears twice"),
    "overlap": ("同じコードまたは番号の期間が重なっています",
                "the period overlaps another of the same code or number"),
}  # fmt: skip

TOP_LEVELS = {OrgUnit.Level.BUREAU, OrgUnit.Level.WARD}
ALLOWED_PARENTS = {
    OrgUnit.Level.DEPARTMENT: TOP_LEVELS,
    OrgUnit.Level.SECTION: TOP_LEVELS | {OrgUnit.Level.DEPARTMENT},
}
VALID_NUMBER_CLASSES = {
    NumberClass.EXTENSION,
    NumberClass.FIXED,
    NumberClass.MOBILE,
    NumberClass.IP_PHONE,
    NumberClass.TOLL_FREE,
    NumberClass.NAVI_DIAL,
}


class DirectoryError(Exception):
    """The file was rejected; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("the directory file has errors")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1 = the header line
    column: str
    reason: str  # a key of REASONS

    def describe(self) -> str:
        """``3行目 valid_from: 日付は… / line 3, valid_from: dates are…``"""
        ja, en = REASONS[self.reason]
        col = self.column or "-"
        return f"{self.line}行目 {col}: {ja} / line {self.line}, {col}: {en}"


@dataclass(slots=True)
class _Period:
    valid_from: dt.date
    valid_to: dt.date | None

    def within(self, outer: _Period) -> bool:
        ends_inside = outer.valid_to is None or (
            self.valid_to is not None and self.valid_to <= outer.valid_to
        )
        return outer.valid_from <= self.valid_from and ends_inside

    def overlaps(self, other: _Period) -> bool:
        return (other.valid_to is None or self.valid_from <= other.valid_to) and (
            self.valid_to is None or other.valid_from <= self.valid_to
        )


@dataclass(slots=True)
class UnitRow:
    line: int
    code: str
    name: str
    level: str
    parent: str
    period: _Period


@dataclass(slots=True)
class NumberRow:
    line: int
    number: str
    code: str
    kind: str
    label: str
    period: _Period


@dataclass(slots=True)
class Parsed:
    units: list[UnitRow] = field(default_factory=list)
    numbers: list[NumberRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _period(row: dict[str, str], line: int, errors: list[RowError]) -> _Period | None:
    start_text, end_text = row["valid_from"], row["valid_to"]
    if not start_text:
        errors.append(RowError(line, "valid_from", "required"))
        return None
    start, end = _date(start_text), _date(end_text) if end_text else None
    if start is None:
        errors.append(RowError(line, "valid_from", "date"))
    if end_text and end is None:
        errors.append(RowError(line, "valid_to", "date"))
    if start is None or (end_text and end is None):
        return None
    if end is not None and end < start:
        errors.append(RowError(line, "valid_to", "order"))
        return None
    return _Period(start, end)


def _required(row: dict[str, str], line: int, names: Iterable[str], errors: list[RowError]) -> bool:
    missing = [name for name in names if not row[name]]
    errors.extend(RowError(line, name, "required") for name in missing)
    return not missing


def _unit_row(row: dict[str, str], line: int, parsed: Parsed) -> None:
    ok = _required(row, line, ("code", "name", "level"), parsed.errors)
    level = row["level"]
    if level and level not in OrgUnit.Level.values:
        parsed.errors.append(RowError(line, "level", "level"))
        ok = False
    elif level in TOP_LEVELS and row["parent"]:
        parsed.errors.append(RowError(line, "parent", "top_parent"))
        ok = False
    elif level in ALLOWED_PARENTS and not row["parent"]:
        parsed.errors.append(RowError(line, "parent", "required"))
        ok = False
    period = _period(row, line, parsed.errors)
    if ok and period is not None:
        parsed.units.append(UnitRow(line, row["code"], row["name"], level, row["parent"], period))


def _number_row(row: dict[str, str], line: int, parsed: Parsed) -> None:
    ok = _required(row, line, ("code", "number"), parsed.errors)
    number = normalise_number(row["number"]) if row["number"] else ""
    if number and classify_number(number) not in VALID_NUMBER_CLASSES:
        parsed.errors.append(RowError(line, "number", "number"))
        ok = False
    kind = row["kind"] or DirectoryEntry.Kind.STAFF
    if kind not in DirectoryEntry.Kind.values:
        parsed.errors.append(RowError(line, "kind", "kind"))
        ok = False
    period = _period(row, line, parsed.errors)
    if ok and period is not None:
        parsed.numbers.append(NumberRow(line, number, row["code"], kind, row["label"], period))


def parse(text: str) -> Parsed:
    """Read and check every row on its own (references are checked by `validate`)."""
    parsed = Parsed()
    reader = csv.reader(io.StringIO(text))
    header = [HEADER_ALIASES.get(h.strip(), h.strip()) for h in next(reader, [])]
    if not {"record", "code", "valid_from"} <= set(header):
        parsed.errors.append(RowError(1, "", "header"))
        return parsed
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        row = dict.fromkeys(COLUMNS, "")
        row.update({h: v.strip() for h, v in zip(header, values, strict=False) if h in row})
        record = row["record"].lower()
        if record == "unit":
            _unit_row(row, line, parsed)
        elif record == "number":
            _number_row(row, line, parsed)
        else:
            parsed.errors.append(RowError(line, "record", "record"))
    return parsed


def _existing_units() -> dict[tuple[str, dt.date], tuple[str, _Period]]:
    return {
        (u.code, u.valid_from): (u.level, _Period(u.valid_from, u.valid_to))
        for u in OrgUnit.objects.all()
    }


def validate(parsed: Parsed) -> None:
    """Check keys, overlaps and references against the file and the database."""
    errors = parsed.errors
    units = _existing_units()
    seen: set[tuple[str, dt.date]] = set()
    for row in parsed.units:
        key = (row.code, row.period.valid_from)
        if key in seen:
            errors.append(RowError(row.line, "code", "duplicate"))
        seen.add(key)
        units[key] = (row.level, row.period)
    by_code: dict[str, list[tuple[dt.date, str, _Period]]] = {}
    for (code, start), (level, period) in units.items():
        by_code.setdefault(code, []).append((start, level, period))

    def covering(code: str, period: _Period) -> str | None:
        for _start, level, outer in by_code.get(code, ()):
            if period.within(outer):
                return level
        return None

    for row in parsed.units:
        others = [p for s, _lvl, p in by_code[row.code] if s != row.period.valid_from]
        if any(row.period.overlaps(p) for p in others):
            errors.append(RowError(row.line, "valid_from", "overlap"))
        if row.parent:
            parent_level = covering(row.parent, row.period)
            if parent_level is None:
                errors.append(RowError(row.line, "parent", "parent"))
            elif parent_level not in ALLOWED_PARENTS.get(row.level, set()):  # type: ignore[call-overload]
                errors.append(RowError(row.line, "level", "nesting"))
    _validate_numbers(parsed, covering)
    errors.sort(key=lambda e: (e.line, COLUMNS.index(e.column) if e.column in COLUMNS else -1))


def _validate_numbers(parsed: Parsed, covering: Any) -> None:
    existing: dict[str, list[tuple[dt.date, _Period]]] = {}
    for number, start, end in DirectoryEntry.objects.values_list(
        "number", "valid_from", "valid_to"
    ):
        existing.setdefault(number, []).append((start, _Period(start, end)))
    seen: set[tuple[str, dt.date]] = set()
    for row in parsed.numbers:
        key = (row.number, row.period.valid_from)
        if key in seen:
            parsed.errors.append(RowError(row.line, "number", "duplicate"))
        seen.add(key)
        existing[row.number] = [e for e in existing.get(row.number, []) if e[0] != key[1]]
    for row in parsed.numbers:
        others = existing.get(row.number, [])
        if any(row.period.overlaps(p) for _s, p in others):
            parsed.errors.append(RowError(row.line, "valid_from", "overlap"))
        existing.setdefault(row.number, []).append((row.period.valid_from, row.period))
        if covering(row.code, row.period) is None:
            parsed.errors.append(RowError(row.line, "code", "unit"))


# -- import -------------------------------------------------------------------------------

LEVEL_ORDER: dict[str, int] = {
    OrgUnit.Level.BUREAU: 0,
    OrgUnit.Level.WARD: 0,
    OrgUnit.Level.DEPARTMENT: 1,
    OrgUnit.Level.SECTION: 2,
}


@dataclass(frozen=True, slots=True)
class ImportReport:
    units_created: int
    units_updated: int
    numbers_created: int
    numbers_updated: int


def _covering_unit(code: str, period: _Period) -> OrgUnit:
    for unit in OrgUnit.objects.filter(code=code, valid_from__lte=period.valid_from):
        if period.within(_Period(unit.valid_from, unit.valid_to)):
            return unit
    raise LookupError(code)  # validate() made sure this cannot happen


def _save_unit(row: UnitRow) -> bool:
    parent = _covering_unit(row.parent, row.period) if row.parent else None
    unit, created = OrgUnit.objects.update_or_create(
        code=row.code,
        valid_from=row.period.valid_from,
        defaults={
            "name": row.name,
            "level": row.level,
            "valid_to": row.period.valid_to,
            "parent": parent,
            "is_ward": row.level == OrgUnit.Level.WARD or bool(parent and parent.is_ward),
        },
    )
    if parent is None:
        unit.top, unit.department = unit, None
    else:
        unit.top = parent.top or parent
        is_dept = parent.level == OrgUnit.Level.DEPARTMENT
        unit.department = parent if is_dept else parent.department
        if row.level == OrgUnit.Level.DEPARTMENT:
            unit.department = None
    unit.save(update_fields=["top", "department"])
    return created


#: rows per query when numbers are read or written in bulk (SQLite allows 32,766 variables)
BATCH = 500


def _save_numbers(rows: list[NumberRow]) -> tuple[int, int]:
    """Add or update the numbers in a few queries per thousand rows; (created, updated).

    One query per row made a city's 50,000 numbers take minutes, too long for an upload.
    """
    units: dict[str, list[OrgUnit]] = {}
    for unit in OrgUnit.objects.filter(code__in={row.code for row in rows}):
        units.setdefault(unit.code, []).append(unit)

    def covering(code: str, period: _Period) -> OrgUnit:
        for unit in units.get(code, ()):
            if period.within(_Period(unit.valid_from, unit.valid_to)):
                return unit
        raise LookupError(code)  # validate() made sure this cannot happen

    numbers = sorted({row.number for row in rows})
    existing: dict[tuple[str, dt.date], DirectoryEntry] = {}
    for start in range(0, len(numbers), BATCH):
        chunk = numbers[start : start + BATCH]
        for entry in DirectoryEntry.objects.filter(number__in=chunk):
            existing[(entry.number, entry.valid_from)] = entry
    new: list[DirectoryEntry] = []
    changed: list[DirectoryEntry] = []
    updated = 0
    for row in rows:
        unit = covering(row.code, row.period)
        found = existing.get((row.number, row.period.valid_from))
        if found is None:
            new.append(
                DirectoryEntry(number=row.number, valid_from=row.period.valid_from, unit=unit,
                               kind=row.kind, label=row.label, valid_to=row.period.valid_to)
            )  # fmt: skip
            continue
        updated += 1
        values = (unit.pk, row.kind, row.label, row.period.valid_to)
        if (found.unit_id, found.kind, found.label, found.valid_to) != values:
            found.unit = unit
            found.kind, found.label, found.valid_to = row.kind, row.label, row.period.valid_to
            changed.append(found)
    DirectoryEntry.objects.bulk_create(new, batch_size=BATCH)
    DirectoryEntry.objects.bulk_update(
        changed, ["unit", "kind", "label", "valid_to"], batch_size=BATCH
    )
    return len(new), updated


def check_directory(data: bytes) -> Parsed:
    """Decode, parse and validate a directory CSV without changing anything."""
    text = decode(data)
    if text is None:
        return Parsed(errors=[RowError(1, "", "encoding")])
    parsed = parse(text)
    validate(parsed)
    return parsed


def import_directory(
    data: bytes, *, actor: Any = None, source: str = "", address: str = ""
) -> ImportReport:
    """Validate and apply a directory CSV in one transaction (DirectoryError if any row is bad)."""
    parsed = check_directory(data)
    if parsed.errors:
        raise DirectoryError(parsed.errors)
    counts = {"units_created": 0, "units_updated": 0, "numbers_created": 0, "numbers_updated": 0}
    with transaction.atomic():
        for row in sorted(parsed.units, key=lambda r: (LEVEL_ORDER[r.level], r.period.valid_from)):
            counts["units_created" if _save_unit(row) else "units_updated"] += 1
        created, updated = _save_numbers(parsed.numbers)
        counts["numbers_created"], counts["numbers_updated"] = created, updated
        audit.record(
            "directory.import", actor=actor, address=address, target=source[:255], detail=counts
        )
    orgindex.invalidate()
    return ImportReport(**counts)


def _dates(start: dt.date, end: dt.date | None) -> tuple[str, str]:
    return start.isoformat(), end.isoformat() if end else ""


def in_force(queryset: Any, on: dt.date | None) -> Any:
    """The units or numbers of ``queryset`` valid on ``on`` (all of them when None)."""
    if on is None:
        return queryset
    return queryset.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=on), valid_from__lte=on)


def export_directory(on: dt.date | None = None) -> bytes:
    """The directory as CSV (UTF-8 with BOM), units first, parents before children.

    With ``on``, only the units and numbers in force on that day (with their own validity
    dates, so that importing the file again changes nothing).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    units = in_force(OrgUnit.objects.select_related("parent"), on)
    for u in sorted(units, key=lambda u: (LEVEL_ORDER[u.level], u.valid_from, u.code)):
        parent = u.parent.code if u.parent else ""
        writer.writerow(
            ["unit", u.code, u.name, u.level, parent, "", "", "", *_dates(u.valid_from, u.valid_to)]
        )
    entries = in_force(DirectoryEntry.objects.select_related("unit"), on)
    for e in entries.order_by("valid_from", "number"):
        writer.writerow(
            ["number", e.unit.code, "", "", "", e.number, e.kind, e.label,
             *_dates(e.valid_from, e.valid_to)]
        )  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")
