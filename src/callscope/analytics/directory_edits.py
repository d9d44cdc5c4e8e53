"""Changes to one number of the directory: add, change from a date, end its validity.

History is never deleted. A change from a date ends the entry on the day before and adds an
entry from that date with the new section, kind and label, so calls before the date stay
counted under the old section. A change dated on the entry's own first day corrects the
entry in place (the audit entry keeps the old values). The rules are the CSV import's
(`callscope.analytics.directory`): a valid number, a unit in force over the whole period, no
two periods of one number overlapping.

Every `do_*` action changes the rows and writes its audit entry in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext_noop

from callscope.analytics import orgindex
from callscope.analytics.directory import VALID_NUMBER_CLASSES
from callscope.core import CallscopeError
from callscope.store import audit
from callscope.store.models import DirectoryEntry, OrgUnit
from callscope.store.numbering import classify_number, normalise_number


class EntryRefused(CallscopeError):
    """The change breaks a directory rule; ``code`` names the rule, the message is fixed."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "number": gettext_noop("This is not a valid phone number or extension."),
        "order": gettext_noop("The end date is before the start date."),
        "unit": gettext_noop("The unit is not in force over the whole period."),
        "overlap": gettext_noop("The number already has an entry in this period."),
        "outside": gettext_noop("The date is outside the period of the entry."),
        "unchanged": gettext_noop("Nothing would change."),
    }

    def __init__(self, code: str) -> None:
        super().__init__(self.MESSAGES[code])
        self.code = code


@dataclass(frozen=True, slots=True)
class EntryValues:
    """What a number says about its owner: section, kind and label."""

    unit: OrgUnit
    kind: str
    label: str


def target_of(number: str) -> str:
    """The audit target of a directory number."""
    return f"directory:{number}"


def _snapshot(entry: DirectoryEntry) -> dict[str, Any]:
    return {
        "number": entry.number,
        "unit": entry.unit.code,
        "kind": entry.kind,
        "label": entry.label,
        "valid_from": entry.valid_from.isoformat(),
        "valid_to": entry.valid_to.isoformat() if entry.valid_to else None,
    }


def _check_period(start: dt.date, end: dt.date | None) -> None:
    if end is not None and end < start:
        raise EntryRefused("order")


def _check_unit(unit: OrgUnit, start: dt.date, end: dt.date | None) -> None:
    ends_inside = unit.valid_to is None or (end is not None and end <= unit.valid_to)
    if not (unit.valid_from <= start and ends_inside):
        raise EntryRefused("unit")


def _check_free(number: str, start: dt.date, end: dt.date | None, *, besides: int = 0) -> None:
    others = DirectoryEntry.objects.filter(number=number).exclude(pk=besides)
    others = others.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=start))
    if end is not None:
        others = others.filter(valid_from__lte=end)
    if others.exists():
        raise EntryRefused("overlap")


def _locked(entry: DirectoryEntry) -> DirectoryEntry:
    return DirectoryEntry.objects.select_for_update().select_related("unit").get(pk=entry.pk)


def do_add_entry(
    number: str,
    values: EntryValues,
    valid_from: dt.date,
    valid_to: dt.date | None,
    *,
    acting_user: Any,
    address: str = "",
) -> DirectoryEntry:
    """Add a number (any spelling; stored normalised) for a period."""
    normal = normalise_number(number)
    if not normal or classify_number(normal) not in VALID_NUMBER_CLASSES:
        raise EntryRefused("number")
    _check_period(valid_from, valid_to)
    _check_unit(values.unit, valid_from, valid_to)
    with transaction.atomic():
        _check_free(normal, valid_from, valid_to)
        entry = DirectoryEntry.objects.create(
            number=normal,
            unit=values.unit,
            kind=values.kind,
            label=values.label,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        audit.record(
            "directory.entry_add",
            actor=acting_user,
            address=address,
            target=target_of(normal),
            detail={"entry": entry.pk, "new": _snapshot(entry)},
        )
        transaction.on_commit(orgindex.invalidate)
    return entry


def do_change_entry(
    entry: DirectoryEntry,
    values: EntryValues,
    from_day: dt.date,
    *,
    acting_user: Any,
    address: str = "",
) -> DirectoryEntry:
    """New section, kind or label from ``from_day``; the entry in force from that day."""
    with transaction.atomic():
        entry = _locked(entry)
        if from_day < entry.valid_from or (entry.valid_to and from_day > entry.valid_to):
            raise EntryRefused("outside")
        old = (entry.unit_id, entry.kind, entry.label)
        if old == (values.unit.pk, values.kind, values.label):
            raise EntryRefused("unchanged")
        _check_unit(values.unit, from_day, entry.valid_to)
        before = _snapshot(entry)
        if from_day == entry.valid_from:  # a correction of the entry itself
            current = entry
        else:
            entry.valid_to, end = from_day - dt.timedelta(days=1), entry.valid_to
            entry.save(update_fields=["valid_to"])
            current = DirectoryEntry(number=entry.number, valid_from=from_day, valid_to=end)
        current.unit, current.kind, current.label = values.unit, values.kind, values.label
        current.save()
        audit.record(
            "directory.entry_change",
            actor=acting_user,
            address=address,
            target=target_of(entry.number),
            detail={"entry": entry.pk, "before": before, "new": _snapshot(current),
                    "corrected": current is entry},
        )  # fmt: skip
        transaction.on_commit(orgindex.invalidate)
    return current


def do_end_entry(
    entry: DirectoryEntry, valid_to: dt.date, *, acting_user: Any, address: str = ""
) -> DirectoryEntry:
    """Set the last day on which the number belongs to its section (history is kept)."""
    with transaction.atomic():
        entry = _locked(entry)
        if valid_to == entry.valid_to:
            raise EntryRefused("unchanged")
        _check_period(entry.valid_from, valid_to)
        _check_unit(entry.unit, entry.valid_from, valid_to)
        _check_free(entry.number, entry.valid_from, valid_to, besides=entry.pk)
        before = entry.valid_to
        entry.valid_to = valid_to
        entry.save(update_fields=["valid_to"])
        audit.record(
            "directory.entry_end",
            actor=acting_user,
            address=address,
            target=target_of(entry.number),
            detail={"entry": entry.pk, "valid_to": valid_to.isoformat(),
                    "previous_valid_to": before.isoformat() if before else None},
        )  # fmt: skip
        transaction.on_commit(orgindex.invalidate)
    return entry
