"""Rollup tables: what dashboards read instead of calls (O(days x sections), never O(calls)).

`Rollup` holds sums of `kpis.measures` per bucket of time, organisation unit and flow. One
table serves every grain so that `rollups.apply_call` updates all of a conversation's rows
in one statement:

========  =======================================  ====================================
grain     bucket                                    used for
========  =======================================  ====================================
``h``     one JST hour of one day (``day, hour``)   intraday, heatmaps over partial months
``d``     one JST day                               trends, periods not on month edges
``m``     one month (``day`` = the 1st)             long periods
``p``     one month by weekday and hour             weekday x hour heatmaps
========  =======================================  ====================================

Each bucket exists at two scopes: ``u`` per unit (with its section, department and bureau
or ward denormalised, as in force on the call's date) and ``t`` per bureau/ward only (unit
columns 0), so that city-wide and bureau-level panels read few rows. Unit ids are plain
integers (0 = not in the directory), not foreign keys: rollups outlive directory edits.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from callscope.analytics import kpis


def _measure_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        name: models.IntegerField(default=0, db_default=0) for name in kpis.COUNT_MEASURES
    }
    fields.update(
        {name: models.FloatField(default=0.0, db_default=0.0) for name in kpis.SUM_MEASURES}
    )
    return fields


# The measure columns come from kpis.MEASURES: one definition for Python and SQL.
Measures = type(
    "Measures",
    (models.Model,),
    {
        "__module__": __name__,
        "Meta": type("Meta", (), {"abstract": True}),
        **_measure_fields(),
    },
)


class Grain(models.TextChoices):
    HOUR = "h", "hour"
    DAY = "d", "day"
    MONTH = "m", "month"
    PROFILE = "p", "month by weekday and hour"


class Scope(models.TextChoices):
    UNIT = "u", "unit"
    TOP = "t", "bureau or ward"


class Rollup(Measures):  # type: ignore[valid-type,misc]
    grain = models.CharField(max_length=1, choices=Grain.choices)
    scope = models.CharField(max_length=1, choices=Scope.choices)
    day = models.DateField()  # JST date; the 1st of the month for grains m and p
    hour = models.SmallIntegerField(default=0)  # JST hour (grains h and p)
    weekday = models.SmallIntegerField(default=0)  # Monday 0 (grains h, d, p)
    unit_id = models.IntegerField(default=0)
    section_id = models.IntegerField(default=0)
    department_id = models.IntegerField(default=0)
    top_id = models.IntegerField(default=0)
    flow = models.CharField(max_length=8)

    class Meta:
        # flow right after grain and scope: a panel reads one flow's rows as one range
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "scope", "flow", "day", "hour", "weekday", "unit_id", "top_id"],
                name="rollup_bucket_by_flow",
            )
        ]
        indexes = [
            models.Index(
                fields=["grain", "scope", "section_id", "flow", "day"], name="rollup_section_flow"
            ),
            models.Index(
                fields=["grain", "scope", "department_id", "flow", "day"],
                name="rollup_department_flow",
            ),
            models.Index(
                fields=["grain", "scope", "top_id", "flow", "day"], name="rollup_top_flow"
            ),
        ]


class MatrixRollup(models.Model):
    """Internal calls: caller unit x callee unit per day or month (counts and minutes), at
    scope ``u`` (unit pairs), ``d`` (department pairs, unit columns 0) and ``t``
    (bureau/ward pairs)."""

    grain = models.CharField(max_length=1, choices=Grain.choices)  # d or m
    scope = models.CharField(max_length=1, choices=Scope.choices)
    day = models.DateField()
    caller_unit_id = models.IntegerField(default=0)
    caller_section_id = models.IntegerField(default=0)
    caller_department_id = models.IntegerField(default=0)
    caller_top_id = models.IntegerField(default=0)
    callee_unit_id = models.IntegerField(default=0)
    callee_section_id = models.IntegerField(default=0)
    callee_department_id = models.IntegerField(default=0)
    callee_top_id = models.IntegerField(default=0)
    flow = models.CharField(max_length=8)
    calls = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)
    talk_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "grain",
                    "scope",
                    "day",
                    "caller_unit_id",
                    "caller_department_id",
                    "caller_top_id",
                    "callee_unit_id",
                    "callee_department_id",
                    "callee_top_id",
                    "flow",
                ],
                name="matrix_bucket_departments",
            )
        ]
        indexes = [  # one bureau or ward's calls, either side; one section's
            models.Index(fields=["grain", "scope", "caller_top_id", "day"], name="matrix_caller"),
            models.Index(fields=["grain", "scope", "callee_top_id", "day"], name="matrix_callee"),
            models.Index(
                fields=["grain", "scope", "caller_unit_id", "day"], name="matrix_caller_unit"
            ),
            models.Index(
                fields=["grain", "scope", "callee_unit_id", "day"], name="matrix_callee_unit"
            ),
        ]


class LoadMinute(models.Model):
    """Conversations active at some moment of one UTC minute (peak concurrent calls)."""

    minute = models.DateTimeField(unique=True)
    active = models.IntegerField(default=0)


class LoadHour(models.Model):
    """The peak of `LoadMinute` over one UTC hour, with its JST day for period filters."""

    hour = models.DateTimeField(unique=True)
    day = models.DateField(db_index=True)
    peak = models.IntegerField(default=0)


class UnitMap(models.Model):
    """Unit -> section, department, bureau/ward and ward flag, for the SQL rebuild."""

    unit_id = models.IntegerField(primary_key=True)
    section_id = models.IntegerField(default=0)
    department_id = models.IntegerField(default=0)
    top_id = models.IntegerField(default=0)
    is_ward = models.BooleanField(default=False)
