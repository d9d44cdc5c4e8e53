"""Call search: the filter form, the query it builds and keyset pagination.

Keyset (seek) pagination instead of OFFSET: a page is "the next 50 rows after this row" in
the sort order, so page 1,000 costs what page 1 costs. The default order (newest first)
walks the ``call_started_desc`` index (started_at DESC, id DESC); the other orders are
tie-broken by id. A cursor names the last (or first) row of a page as ``<value>_<id>``.

The search is addressable by URL (the dashboards' matrix links to it): ``start``/``end`` (Japan
time, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM``, end exclusive; ``from``/``to`` are accepted as
aliases), ``unit`` with ``side`` (caller, callee or either), ``caller_unit`` and
``callee_unit`` (both sides at once, a unit includes its sections), ``number``,
``direction``, ``result``, ``talk_min``/``talk_max``, ``wait_min``/``wait_max`` (seconds),
``recording`` and ``dtmf`` (yes/no), ``sort``.

Phone numbers are searched through their keyed pseudonym (`callscope.store.masking`), which is
indexed on both parties and never shows the number: users without the full-number right
search by number and still see it masked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, F, FloatField, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from callscope.console.widgets import PlainSelect
from callscope.store.masking import pseudonym
from callscope.store.models import Call, Direction, OrgUnit, Recording, Result

PAGE_SIZE = 50
#: sorting by a duration, or filtering on what no index covers (durations, DTMF, recording),
#: reads every call of the period: without a period, the last days are used
UNBOUNDED_SORT_DAYS = 31
SCANNING_FILTERS = ("talk_min", "talk_max", "wait_min", "wait_max", "recording", "dtmf")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LISTENABLE = (Recording.Status.RECORDED, Recording.Status.PARTIAL)
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


class CursorError(ValueError):
    """A pagination cursor that does not parse (a hand-edited URL)."""


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort order: the column, its direction, and how a cursor value is written."""

    field: str
    descending: bool
    label: Any
    nullable: bool = False

    @property
    def is_time(self) -> bool:
        return self.field == "started_at"

    @property
    def attr(self) -> str:
        """The attribute (plain or annotated) the rows are ordered by."""
        return self.field if self.is_time else "sort_value"

    def annotate(self, qs: QuerySet[Call]) -> QuerySet[Call]:
        if self.is_time:
            return qs
        # NULL (not answered: no talk time) sorts as -1 so that keyset comparisons work.
        return qs.annotate(
            sort_value=Coalesce(F(self.field), Value(-1.0), output_field=FloatField())
        )

    def ordering(self, *, reverse: bool = False) -> list[Any]:
        desc = self.descending != reverse
        column = F(self.attr)
        ident = F("id")
        if desc:
            return [column.desc(), ident.desc()]
        return [column.asc(), ident.asc()]

    def after(self, cursor: Cursor, *, reverse: bool = False) -> Q:
        """Rows strictly after ``cursor`` in this order (before it when ``reverse``)."""
        desc = self.descending != reverse
        op = "lt" if desc else "gt"
        eq = "lte" if desc else "gte"
        # written as (v <= c) AND (v < c OR id < i) so that the index range is used
        return Q(**{f"{self.attr}__{eq}": cursor.value}) & (
            Q(**{f"{self.attr}__{op}": cursor.value}) | Q(**{f"id__{op}": cursor.id})
        )

    def encode(self, row: Call) -> str:
        value = getattr(row, self.attr)
        if self.is_time:
            micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
            return f"{micros}_{row.pk}"
        return f"{float(value)!r}_{row.pk}"

    def decode(self, text: str) -> Cursor:
        raw_value, sep, raw_id = text.rpartition("_")
        try:
            ident = int(raw_id)
            value: Any = (
                _EPOCH + dt.timedelta(microseconds=int(raw_value))
                if self.is_time
                else float(raw_value)
            )
        except (ValueError, OverflowError) as exc:
            raise CursorError("malformed cursor") from exc
        if not sep:
            raise CursorError("malformed cursor")
        return Cursor(value, ident)


@dataclass(frozen=True, slots=True)
class Cursor:
    value: Any
    id: int


SORTS: dict[str, SortKey] = {
    "-started": SortKey("started_at", True, _("Newest first")),
    "started": SortKey("started_at", False, _("Oldest first")),
    "-talk": SortKey("talk_seconds", True, _("Longest talk first"), nullable=True),
    "talk": SortKey("talk_seconds", False, _("Shortest talk first"), nullable=True),
    "-wait": SortKey("setup_seconds", True, _("Longest wait first"), nullable=True),
    "wait": SortKey("setup_seconds", False, _("Shortest wait first"), nullable=True),
}
#: column header -> (descending sort, ascending sort), for sortable table headers
COLUMN_SORTS = {"started": ("-started", "started"), "talk": ("-talk", "talk"),
                "wait": ("-wait", "wait")}  # fmt: skip

#: query-string names other pages may use for the period
_ALIASES = {"from": "start", "to": "end"}
YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
SIDES = [("", _("Caller or callee")), ("caller", _("Caller")), ("callee", _("Callee"))]


def unit_choices() -> list[tuple[str, str]]:
    """Organisation units for the filter, grouped under their bureau or ward (cached)."""
    cached: list[tuple[str, str]] | None = cache.get("console:unit_choices")
    if cached is None:
        units = OrgUnit.objects.select_related("top").order_by("top__code", "code", "valid_from")
        cached = []
        for unit in units:
            top = unit.top
            prefix = f"{top.name} / " if top is not None and top.pk != unit.pk else ""
            ended = f" (-{unit.valid_to:%Y-%m-%d})" if unit.valid_to else ""
            cached.append((str(unit.pk), f"{prefix}{unit.name}{ended}"))
        cache.set("console:unit_choices", cached, 300)
    return [("", str(_("All sections"))), *cached]


def _datetime_field(label: Any) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


def _seconds_field(label: Any) -> forms.FloatField:
    return forms.FloatField(
        label=label, required=False, min_value=0, widget=forms.NumberInput(attrs={"step": "1"})
    )


class SearchForm(forms.Form):
    """The call search filters (times are entered and shown in Japan time)."""

    start = _datetime_field(_("Period start"))
    end = _datetime_field(_("Period end"))
    unit = forms.ChoiceField(label=_("Section"), required=False, widget=PlainSelect)
    side = forms.ChoiceField(label=_("Section is"), required=False, choices=SIDES)
    number = forms.CharField(label=_("Phone number"), required=False, max_length=64)
    direction = forms.ChoiceField(
        label=_("Direction"), required=False, choices=[("", _("Any")), *Direction.choices]
    )
    result = forms.ChoiceField(
        label=_("Result"), required=False, choices=[("", _("Any")), *Result.choices]
    )
    talk_min = _seconds_field(_("Talk time from (s)"))
    talk_max = _seconds_field(_("Talk time to (s)"))
    wait_min = _seconds_field(_("Waiting time from (s)"))
    wait_max = _seconds_field(_("Waiting time to (s)"))
    recording = forms.ChoiceField(label=_("Recording"), required=False, choices=YES_NO)
    dtmf = forms.ChoiceField(label=_("DTMF"), required=False, choices=YES_NO)
    caller_unit = forms.IntegerField(required=False, widget=forms.HiddenInput)
    callee_unit = forms.IntegerField(required=False, widget=forms.HiddenInput)
    sort = forms.ChoiceField(
        label=_("Order"),
        required=False,
        choices=[(key, sort.label) for key, sort in SORTS.items()],
    )

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if data is not None and any(alias in data for alias in _ALIASES):
            data = data.copy()
            for alias, name in _ALIASES.items():
                if alias in data and not data.get(name):
                    data[name] = data[alias]
        super().__init__(data, *args, **kwargs)
        unit = self.fields["unit"]
        assert isinstance(unit, forms.ChoiceField)
        unit.choices = unit_choices()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for low, high in (("start", "end"), ("talk_min", "talk_max"), ("wait_min", "wait_max")):
            if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
                self.add_error(high, _("Must not be before the lower bound."))
        return data


def _unit_ids(unit_pk: int) -> list[int]:
    return list(
        OrgUnit.objects.filter(
            Q(pk=unit_pk) | Q(top_id=unit_pk) | Q(department_id=unit_pk) | Q(parent_id=unit_pk)
        ).values_list("pk", flat=True)
    )


def _yes_no(value: str, q: Q) -> Q | None:
    return {"yes": q, "no": ~q}.get(value)


_RANGE_FILTERS: dict[str, str] = {
    "talk_min": "talk_seconds__gte",
    "talk_max": "talk_seconds__lte",
    "wait_min": "setup_seconds__gte",
    "wait_max": "setup_seconds__lte",
}


def implied_start(data: dict[str, Any], now: dt.datetime | None = None) -> dt.datetime | None:
    """The period start used when a search without a period would read every call: sorted
    by a duration, or filtered on a column no index covers (`SCANNING_FILTERS`). Such a
    search covers the last `UNBOUNDED_SORT_DAYS` days, and the page says so."""
    if data.get("start") is not None or data.get("end") is not None:
        return None
    sort = SORTS.get(data.get("sort") or "-started", SORTS["-started"])
    scanning = any(data.get(name) not in (None, "") for name in SCANNING_FILTERS)
    if sort.is_time and not scanning:
        return None
    return (now or timezone.now()) - dt.timedelta(days=UNBOUNDED_SORT_DAYS)


def _other_filters(data: dict[str, Any], now: dt.datetime | None) -> QuerySet[Call]:
    """Every filter but the organisation units."""
    qs = Call.objects.all()
    start, end = data.get("start") or implied_start(data, now), data.get("end")
    if start is not None:
        qs = qs.filter(started_at__gte=start)
    if end is not None:
        qs = qs.filter(started_at__lt=end)
    if data.get("number"):
        token = pseudonym(data["number"], settings.PSEUDONYM_KEY)
        qs = qs.filter(Q(caller_pseudonym=token) | Q(callee_pseudonym=token))
    for name in ("direction", "result"):
        if data.get(name):
            qs = qs.filter(**{name: data[name]})
    for name, lookup in _RANGE_FILTERS.items():
        if data.get(name) is not None:
            qs = qs.filter(**{lookup: data[name]})
    listenable = Exists(Recording.objects.filter(call=OuterRef("pk"), status__in=_LISTENABLE))
    recording = _yes_no(data.get("recording") or "", Q(listenable))
    if recording is not None:
        qs = qs.filter(recording)
    dtmf = _yes_no(data.get("dtmf") or "", Q(has_dtmf=True))
    if dtmf is not None:
        qs = qs.filter(dtmf)
    return qs


def _unit_sides(data: dict[str, Any]) -> list[tuple[list[str], list[int]]]:
    """The unit filters as (columns, unit ids): a row matches a filter when one of the
    columns holds one of the ids; every filter must match."""
    filters = []
    if data.get("unit"):
        side = data.get("side") or ""
        columns = [side] if side in {"caller", "callee"} else ["caller", "callee"]
        filters.append(([f"{c}_unit_id" for c in columns], _unit_ids(int(data["unit"]))))
    for name in ("caller_unit", "callee_unit"):
        if data.get(name):
            filters.append(([f"{name}_id"], _unit_ids(int(data[name]))))
    return filters


def _any_of(columns: list[str], ids: list[int]) -> Q:
    q = Q()
    for column in columns:
        q |= Q(**{f"{column}__in": ids})
    return q


@dataclass(frozen=True, slots=True)
class CallQuery:
    """A search as one or more querysets whose union is the result.

    A unit filter (``caller_unit_id IN (...) OR callee_unit_id IN (...)``) cannot be read in
    time order from any one index, so the database collects and sorts every call of the
    unit (0.5-1 s for a busy bureau over a year). Split per unit and side instead, each
    branch walks the (unit, started_at) index in order and stops after a page;
    `page_of` merges the branches' pages (of ids only, then fetches the page's rows).
    """

    branches: tuple[QuerySet[Call], ...]
    related: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()

    def select_related(self, *fields: str) -> CallQuery:
        return CallQuery(self.branches, (*self.related, *fields), self.deferred)

    def defer(self, *fields: str) -> CallQuery:
        return CallQuery(self.branches, self.related, (*self.deferred, *fields))

    def rows(self, qs: QuerySet[Call]) -> QuerySet[Call]:
        """``qs`` loading what the caller asked for (related rows, deferred columns)."""
        return qs.select_related(*self.related).defer(*self.deferred)


#: more branches than this and one combined query is cheaper
MAX_BRANCHES = 40


def find_calls(data: dict[str, Any], *, now: dt.datetime | None = None) -> CallQuery:
    """The calls matching the cleaned form ``data``, as index-friendly branches."""
    qs = _other_filters(data, now)
    sides = _unit_sides(data)
    if not sides:
        return CallQuery((qs,))
    (columns, ids), rest = sides[0], sides[1:]
    for other_columns, other_ids in rest:
        qs = qs.filter(_any_of(other_columns, other_ids))
    if len(columns) * len(ids) > MAX_BRANCHES:
        return CallQuery((qs.filter(_any_of(columns, ids)),))
    return CallQuery(tuple(qs.filter(**{c: i}) for c in columns for i in ids))


def filter_calls(data: dict[str, Any], *, now: dt.datetime | None = None) -> QuerySet[Call]:
    """The calls matching the cleaned form ``data`` as one queryset (not yet ordered)."""
    qs = _other_filters(data, now)
    for columns, ids in _unit_sides(data):
        qs = qs.filter(_any_of(columns, ids))
    return qs


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Call]
    next_cursor: str | None
    prev_cursor: str | None


def _collect(
    query: CallQuery, sort: SortKey, cond: Q | None, size: int, *, reverse: bool
) -> list[Call]:
    """The first ``size`` rows after ``cond`` over every branch, in order."""
    ordering = sort.ordering(reverse=reverse)
    if len(query.branches) == 1:
        qs = sort.annotate(query.branches[0])
        qs = qs.filter(cond) if cond is not None else qs
        return list(query.rows(qs).order_by(*ordering)[:size])
    # Several branches: merge their (sort value, id) pages, then load only the winners.
    keys: set[tuple[Any, int]] = set()
    for branch in query.branches:
        qs = sort.annotate(branch)
        qs = qs.filter(cond) if cond is not None else qs
        keys.update(qs.order_by(*ordering).values_list(sort.attr, "pk")[:size])
    top = sorted(keys, reverse=sort.descending != reverse)[:size]
    found = {row.pk: row for row in query.rows(sort.annotate(Call.objects.filter(
        pk__in=[pk for _value, pk in top])))}  # fmt: skip
    return [found[pk] for _value, pk in top if pk in found]


def page_of(
    qs: QuerySet[Call] | CallQuery,
    sort_name: str,
    *,
    after: str | None = None,
    before: str | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of ``qs`` in the order ``sort_name``, after or before a cursor."""
    sort = SORTS.get(sort_name or "-started", SORTS["-started"])
    query = qs if isinstance(qs, CallQuery) else CallQuery((qs,))
    if before:
        cursor = sort.decode(before)
        found = _collect(query, sort, sort.after(cursor, reverse=True), size + 1, reverse=True)
        more_before = len(found) > size
        rows = found[:size][::-1]
        return Page(
            rows,
            sort.encode(rows[-1]) if rows else None,
            sort.encode(rows[0]) if rows and more_before else None,
        )
    cond = sort.after(sort.decode(after)) if after else None
    found = _collect(query, sort, cond, size + 1, reverse=False)
    rows = found[:size]
    return Page(
        rows,
        sort.encode(rows[-1]) if len(found) > size else None,
        sort.encode(rows[0]) if rows and after else None,
    )


def iter_rows(
    qs: QuerySet[Call] | CallQuery, sort_name: str, *, limit: int, batch: int = 2000
) -> Iterator[Call]:
    """Up to ``limit`` rows of ``qs`` in order, fetched ``batch`` at a time by keyset (for
    exports: constant memory per batch, no OFFSET)."""
    cursor: str | None = None
    remaining = limit
    while remaining > 0:
        page = page_of(qs, sort_name, after=cursor, size=min(batch, remaining))
        yield from page.rows
        remaining -= len(page.rows)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
