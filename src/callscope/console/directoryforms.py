"""Forms of the number directory pages (labels are English msgids, Japanese in the catalogue)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from callscope.analytics.directory import LEVEL_ORDER
from callscope.store.models import DirectoryEntry, OrgUnit


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def unit_choices(since: dt.date | None = None) -> list[tuple[str, str]]:
    """Units not ended before ``since`` (all when None), grouped under their bureau or ward."""
    units = OrgUnit.objects.select_related("top")
    if since is not None:
        units = units.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=since))

    def key(unit: OrgUnit) -> tuple[str, int, str, dt.date]:
        top = unit.top or unit
        return top.code, LEVEL_ORDER.get(unit.level, 9), unit.code, unit.valid_from

    choices = [("", "---------")]
    for unit in sorted(units, key=key):
        top = unit.top if unit.top and unit.top_id != unit.pk else None
        name = f"{top.name} / {unit.name}" if top else unit.name
        end = unit.valid_to.isoformat() if unit.valid_to else ""
        choices.append((str(unit.pk), f"{name} ({unit.code}, {unit.valid_from.isoformat()}–{end})"))
    return choices


class _UnitField(forms.TypedChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(label=_("Unit"), coerce=int, **kwargs)


class _EntryValuesForm(forms.Form):
    unit = _UnitField()
    kind = forms.ChoiceField(label=_("kind"), choices=DirectoryEntry.Kind.choices)
    label = forms.CharField(label=_("label"), max_length=200, required=False)

    def __init__(self, *args: Any, since: dt.date | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["unit"]).choices = unit_choices(since)

    def clean_unit(self) -> OrgUnit:
        unit = OrgUnit.objects.filter(pk=self.cleaned_data["unit"]).first()
        if unit is None:
            raise ValidationError(_("Select a unit."))
        return unit


class DirectoryFilter(forms.Form):
    on = forms.DateField(label=_("In force on"), required=False, widget=_date_input())
    q = forms.CharField(label=_("Number or unit name"), max_length=100, required=False)
    history = forms.BooleanField(label=_("Every period (history)"), required=False)
    unit = forms.IntegerField(required=False, widget=forms.HiddenInput)


class EntryForm(_EntryValuesForm):
    number = forms.CharField(label=_("Number or extension"), max_length=32)
    valid_from = forms.DateField(label=_("valid from"), widget=_date_input())
    valid_to = forms.DateField(
        label=_("valid to"),
        required=False,
        widget=_date_input(),
        help_text=_("Empty: still in force."),
    )
    field_order = ["number", "unit", "kind", "label", "valid_from", "valid_to"]  # noqa: RUF012


class ChangeForm(_EntryValuesForm):
    from_day = forms.DateField(label=_("In force from"), widget=_date_input())


class EndForm(forms.Form):
    valid_to = forms.DateField(label=_("Last day in force"), widget=_date_input())


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("Directory file (CSV)"),
        help_text=_("UTF-8 or Shift_JIS, the columns of the export."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
