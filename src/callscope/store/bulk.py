"""Inserting new rows of one model: `QuerySet.bulk_create` for fresh objects, without its
per-value query compiler.

A recorder saves every call it sees, each read's calls together. `bulk_create` builds that
INSERT value by value through the ORM's SQL compiler (expression checks, placeholders,
parameter lists per value): with 40 columns per call it was the largest share of saving a
call. `insert_new` produces the same rows the same way where it matters: every value is
what its field's ``pre_save(obj, add=True)`` (``auto_now_add`` stamps) and
``get_db_prep_save`` (JSON encoding, datetime adaptation, as the ORM does them) give,
related objects are checked as `bulk_create` checks them, one ``INSERT ... RETURNING`` per
batch the backend allows, and the new primary keys are set on the objects, which become
saved instances.

What one model's inserts need is worked out once per database (`InsertPlan`): the column
list, the SQL text per batch size, and per field how a value is prepared. Django prepares a
value in three or four nested calls; a plain field (text, number, flag) given a value of its
own type passes it through unchanged, so such values are taken as they are, an aware
datetime or a dict or list goes straight to the backend's adapter (what the field's own
preparation ends with), and anything else through ``get_db_prep_save`` itself. The
statements run on the DB-API cursor (Django's wrapper rewrites every SQL text's
placeholders with a regular expression), inside Django's error translation.

It serves plain new objects only: an auto-increment primary key not yet set, no field with
a custom SQL placeholder (binary fields take the plain one on SQLite and PostgreSQL), no
``pre_save`` but the plain one or a date's ``auto_now``/``auto_now_add``, values that are
not query expressions. Anything else, or a backend that cannot return rows from a bulk
insert, is handed to `bulk_create`.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import (
    AutoField,
    BigIntegerField,
    BinaryField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    Field,
    FloatField,
    IntegerField,
    JSONField,
    Model,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallIntegerField,
    TextField,
)
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

__all__ = ["InsertPlan", "insert_new", "new_instance"]

M = TypeVar("M", bound=Model)
NONE = type(None)

#: Django's own field classes (exactly these, not subclasses) and the value types each
#: stores unchanged: ``get_prep_value`` returns such a value as it is and the field adds no
#: backend conversion (integers only where the backend adapts none; tests check every
#: pair against ``get_db_prep_save``)
KEPT: dict[type[Field[Any, Any]], tuple[type, ...]] = {
    CharField: (str, NONE),
    TextField: (str, NONE),
    BooleanField: (bool, NONE),
    FloatField: (float, NONE),
}
INTEGER_FIELDS = (IntegerField, SmallIntegerField, BigIntegerField, PositiveIntegerField,
                  PositiveSmallIntegerField, PositiveBigIntegerField)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    """How one field's value becomes a parameter: kept as it is when of a ``kept`` type,
    else ``prepare(value)``."""

    attname: str
    kept: frozenset[type]
    prepare: Callable[[Any], Any]


@dataclass
class InsertPlan:
    """Everything about inserting one model's rows on one database that does not change."""

    fields: list[Field[Any, Any]]
    steps: list[Step]
    stamped: list[Field[Any, Any]]  # dates whose pre_save may set them (auto_now[_add])
    head: str
    returning: str
    returning_params: tuple[Any, ...]
    marks: str
    texts: dict[int, str] = field(default_factory=dict)  # SQL per batch size
    batches: dict[int, int] = field(default_factory=dict)  # the backend's batch size per count

    def sql(self, rows: int) -> str:
        text = self.texts.get(rows)
        if text is None:
            text = self.texts[rows] = (
                f"{self.head}{', '.join([self.marks] * rows)} {self.returning}"
            )
        return text


_PLANS: dict[tuple[type[Model], str, str], InsertPlan | None] = {}


def plan_for(model: type[Model], using: str = DEFAULT_DB_ALIAS) -> InsertPlan | None:
    """The model's `InsertPlan` on that database, or None when `bulk_create` must do it."""
    connection = connections[using]
    key = (model, using, connection.vendor)
    if key not in _PLANS:
        _PLANS[key] = _make_plan(model, using)
    return _PLANS[key]


def _make_plan(model: type[Model], using: str) -> InsertPlan | None:
    opts = model._meta
    connection = connections[using]
    ops: Any = connection.ops  # return_insert_columns: not in the stubs
    fields: list[Field[Any, Any]] = [
        f for f in opts.concrete_fields if not isinstance(f, AutoField)
    ]
    if (
        not connection.features.can_return_rows_from_bulk_insert
        or not isinstance(opts.pk, AutoField)
        or list(opts.db_returning_fields) != [opts.pk]
        or not all(_plain_placeholder(f, ops) for f in fields)
        or not all(_plain_pre_save(f) for f in fields)
    ):
        return None
    marks = "?" if connection.vendor == "sqlite" else "%s"  # the DB-API cursor's
    returning, returning_params = ops.return_insert_columns([opts.pk])
    return InsertPlan(
        fields=fields,
        steps=[_step(f, connection) for f in fields],
        stamped=[
            f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        ],
        head=(
            f"INSERT INTO {ops.quote_name(opts.db_table)} "  # noqa: S608 - names from the model
            f"({', '.join(ops.quote_name(str(f.column)) for f in fields)}) VALUES "
        ),
        returning=returning.replace("%s", marks),
        returning_params=tuple(returning_params),
        marks="(" + ", ".join([marks] * len(fields)) + ")",
    )


def _step(f: Field[Any, Any], connection: Any) -> Step:
    ops = connection.ops
    kind = type(f)
    if kind is DateTimeField:  # None passes DateTimeField's preparation as it is
        return Step(str(f.attname), frozenset({NONE}), _datetime_preparer(f, connection))
    if kind is JSONField:  # so does None a JSONField's
        return Step(str(f.attname), frozenset({NONE}), _json_preparer(f, connection))
    kept = KEPT.get(kind, ())
    if kind in INTEGER_FIELDS and (
        type(ops).adapt_integerfield_value is BaseDatabaseOperations.adapt_integerfield_value
    ):
        kept = (int, NONE)
    return Step(str(f.attname), frozenset(kept), _preparer(f, connection))


def _preparer(f: Field[Any, Any], connection: Any) -> Callable[[Any], Any]:
    def prepare(value: Any) -> Any:
        return f.get_db_prep_save(value, connection)

    return prepare


def _datetime_preparer(f: Field[Any, Any], connection: Any) -> Callable[[Any], Any]:
    """An aware datetime passes DateTimeField's checks as it is: only the backend's adapter
    (text in UTC on SQLite) remains. On SQLite with the connection in UTC, a datetime in UTC
    is that text at once: ``str`` of the naive datetime is its ISO text with a space and
    without the offset (``make_naive`` and ``str`` in four calls otherwise)."""
    adapt = connection.ops.adapt_datetimefield_value
    utc_text = connection.vendor == "sqlite" and connection.timezone is dt.UTC

    def prepare(value: Any) -> Any:
        if type(value) is dt.datetime and value.tzinfo is not None:
            if utc_text and value.tzinfo is dt.UTC:
                return value.isoformat(" ")[:-6]  # drops "+00:00"
            return adapt(value)
        return f.get_db_prep_save(value, connection)

    return prepare


def _json_preparer(f: Field[Any, Any], connection: Any) -> Callable[[Any], Any]:
    """A JSONField's preparation of a dict or list ends with the backend's adapter. With the
    field's default encoder the text is made by orjson (the same JSON without the blanks,
    non-ASCII text as UTF-8; a float NaN, which JSON lacks, as null); a value orjson refuses
    (keys that are not strings, integers beyond 64 bits) takes the adapter's ``json.dumps``."""
    adapt, encoder = connection.ops.adapt_json_value, f.encoder  # type: ignore[attr-defined]
    fast: Callable[[Any], Any] | None = None
    if encoder is None:
        fast = _jsonb if connection.vendor == "postgresql" else _json_text

    def prepare(value: Any) -> Any:
        if type(value) in (dict, list):
            if fast is not None:
                try:
                    return fast(value)
                except TypeError:  # orjson.JSONEncodeError
                    pass
            return adapt(value, encoder)
        return f.get_db_prep_save(value, connection)

    return prepare


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb  # noqa: PLC0415 - PostgreSQL only

    return Jsonb(orjson.dumps(value), dumps=_already_dumped)


def _already_dumped(value: bytes) -> bytes:
    return value


def insert_new(objs: Sequence[Model], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert new objects of one model (see the module docs); their ``pk`` is set."""
    if not objs:
        return
    model = type(objs[0])
    plan = plan_for(model, using)
    if plan is None or any(type(obj) is not model or obj.pk is not None for obj in objs):
        model._default_manager.db_manager(using).bulk_create(objs)
        return
    for obj in objs:
        if obj._state.fields_cache:  # a related object was assigned: bulk_create's check
            checked: Any = obj  # (not in the stubs)
            checked._prepare_related_fields_for_save(operation_name="bulk_create")
    connection = connections[using]
    ops: Any = connection.ops
    batch = plan.batches.get(len(objs))
    if batch is None:
        batch = plan.batches[len(objs)] = max(1, ops.bulk_batch_size(plan.fields, objs))
    with transaction.atomic(using=using, savepoint=False), connection.wrap_database_errors:
        connection.validate_no_broken_transaction()
        cursor = connection.connection.cursor()
        try:
            for start in range(0, len(objs), batch):
                chunk = objs[start : start + batch]
                cursor.execute(
                    plan.sql(len(chunk)), (*_params(plan, chunk), *plan.returning_params)
                )
                rows = ops.fetch_returned_insert_rows(cursor)
                if len(rows) != len(chunk):
                    raise RuntimeError("the database did not return one key per inserted row")
                for obj, (pk,) in zip(chunk, rows, strict=True):
                    obj.pk = pk
                    obj._state.adding = False
                    obj._state.db = using
        finally:
            cursor.close()


def _params(plan: InsertPlan, chunk: Sequence[Model]) -> list[Any]:
    params: list[Any] = []
    append = params.append
    for obj in chunk:
        for stamped in plan.stamped:
            stamped.pre_save(obj, True)
        values = obj.__dict__
        for step in plan.steps:
            value = values[step.attname] if step.attname in values else getattr(obj, step.attname)
            if type(value) in step.kept:
                append(value)
            elif hasattr(value, "resolve_expression"):
                raise TypeError(f"insert_new takes plain values, not {value!r}")
            else:
                append(step.prepare(value))
    return params


def new_instance(model: type[M], values: Mapping[str, Any]) -> M:
    """``model(**values)`` for values by attribute name (``call_id`` for a foreign key);
    fields not given take their defaults.

    Built as ``Model.__init__`` builds it from positional values, less its per-field
    ``setattr``: the values go into the instance's ``__dict__`` at once where that is all
    the attributes' setters would do (a plain field's, a foreign key's on a new object) and
    no ``pre_init``/``post_init`` receiver is connected; otherwise by ``model(*values)``."""
    shape = _shape(model)
    fields = shape.fields
    if not values.keys() <= fields.keys():
        unknown = sorted(values.keys() - fields.keys())
        raise TypeError(f"{model.__name__} has no field {unknown[0]!r}")
    row = [values[n] if n in values else f.get_default() for n, f in fields.items()]
    if not shape.plain or pre_init.receivers or post_init.receivers:
        return model(*row)
    obj = model.__new__(model)
    obj._state = ModelState()
    obj.__dict__.update(zip(fields, row, strict=True))
    return obj


@dataclass(frozen=True)
class _Shape:
    fields: dict[str, Field[Any, Any]]  # concrete fields by attribute name, in their order
    plain: bool  # every attribute set by storing it in __dict__


_SHAPES: dict[type[Model], _Shape] = {}


def _shape(model: type[Model]) -> _Shape:
    shape = _SHAPES.get(model)
    if shape is None:
        fields = {str(f.attname): f for f in model._meta.concrete_fields}
        plain = not model._meta.abstract and all(
            _stored_as_is(inspect.getattr_static(model, name, None)) for name in fields
        )
        shape = _SHAPES[model] = _Shape(fields, plain)
    return shape


def _stored_as_is(attribute: object) -> bool:
    """Does setting this attribute on a new instance only store the value in __dict__?"""
    kind = type(attribute)
    return kind in (DeferredAttribute, ForeignKeyDeferredAttribute) or not hasattr(kind, "__set__")


def _plain_pre_save(f: Field[Any, Any]) -> bool:
    """Does ``pre_save`` only read the attribute, or set it to now (``auto_now[_add]``)?"""
    return type(f).pre_save in (Field.pre_save, DateField.pre_save, DateTimeField.pre_save)


def _plain_placeholder(f: Field[Any, Any], ops: Any) -> bool:
    """Does the field take a plain ``%s`` (binary fields do, except on MySQL)?"""
    if not hasattr(f, "get_placeholder"):
        return True
    return isinstance(f, BinaryField) and ops.binary_placeholder_sql(b"") == "%s"
