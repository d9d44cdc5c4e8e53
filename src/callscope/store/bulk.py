"""Inserting new rows of one model: `QuerySet.bulk_create` for fresh objects, without its
per-value query compiler.

A recorder saves every call it sees, each read's calls together. `bulk_create` builds that
INSERT value by value through the ORM's SQL compiler (expression checks, placeholders,
parameter lists per value): with 40 columns per call it was the largest share of saving a
call. `insert_new` produces the same rows the same way where it matters: every value goes
through its field's ``pre_save(obj, add=True)`` (``auto_now_add`` stamps) and
``get_db_prep_save`` (JSON encoding, datetime adaptation, as the ORM does them), related
objects are checked as `bulk_create` checks them, one ``INSERT ... RETURNING`` per batch the
backend allows, and the new primary keys are set on the objects, which become saved instances.

It serves plain new objects only: an auto-increment primary key not yet set, no field with
a custom SQL placeholder (binary fields take the plain one on SQLite and PostgreSQL), values
that are not query expressions. Anything else, or a backend
that cannot return rows from a bulk insert, is handed to `bulk_create`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import AutoField, BinaryField, Field, Model

__all__ = ["insert_new"]


def insert_new(objs: Sequence[Model], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert new objects of one model (see the module docs); their ``pk`` is set."""
    if not objs:
        return
    model = type(objs[0])
    opts = model._meta
    connection = connections[using]
    fields: list[Field[Any, Any]] = [
        f for f in opts.concrete_fields if not isinstance(f, AutoField)
    ]
    if (
        not connection.features.can_return_rows_from_bulk_insert
        or not isinstance(opts.pk, AutoField)
        or list(opts.db_returning_fields) != [opts.pk]
        or not all(_plain_placeholder(f, connection.ops) for f in fields)
        or any(type(obj) is not model or obj.pk is not None for obj in objs)
    ):
        model._default_manager.db_manager(using).bulk_create(objs)
        return
    for obj in objs:
        checked: Any = obj  # bulk_create's check of related objects (not in the stubs)
        checked._prepare_related_fields_for_save(operation_name="bulk_create")
    ops: Any = connection.ops  # return_insert_columns, fetch_returned_insert_rows: neither
    head = (
        f"INSERT INTO {ops.quote_name(opts.db_table)} "  # noqa: S608 - names from the model
        f"({', '.join(ops.quote_name(str(f.column)) for f in fields)}) VALUES "
    )
    returning, returning_params = ops.return_insert_columns([opts.pk])
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    batch = max(1, ops.bulk_batch_size(fields, objs))
    with transaction.atomic(using=using, savepoint=False), connection.cursor() as cursor:
        for start in range(0, len(objs), batch):
            chunk = objs[start : start + batch]
            params = []
            for obj in chunk:
                for field in fields:
                    value = field.pre_save(obj, True)
                    if hasattr(value, "resolve_expression"):
                        raise TypeError(f"insert_new takes plain values, not {value!r}")
                    params.append(field.get_db_prep_save(value, connection))
            sql = f"{head}{', '.join([row] * len(chunk))} {returning}"
            cursor.execute(sql, (*params, *returning_params))
            rows = ops.fetch_returned_insert_rows(cursor)
            if len(rows) != len(chunk):
                raise RuntimeError("the database did not return one key per inserted row")
            for obj, (pk,) in zip(chunk, rows, strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = using


def _plain_placeholder(field: Field[Any, Any], ops: Any) -> bool:
    """Does the field take a plain ``%s`` (binary fields do, except on MySQL)?"""
    if not hasattr(field, "get_placeholder"):
        return True
    return isinstance(field, BinaryField) and ops.binary_placeholder_sql(b"") == "%s"
