"""Saving call records (the contract's JSON) as rows.

A call leg is identified by its Call-ID and start time, so importing the same capture twice,
or a live recorder restarting and flushing a call it had already saved, updates the row
instead of duplicating it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from callscope.store.bulk import insert_new, new_instance
from callscope.store.models import Call, Direction, OrgUnit, Recording, Stream


@dataclass(frozen=True)
class Placement:
    """Where a call sits in the organisation (from the number directory)."""

    direction: str = Direction.UNKNOWN
    caller_unit: OrgUnit | None = None
    callee_unit: OrgUnit | None = None
    caller_class: str = ""
    callee_class: str = ""
    caller_pseudonym: str = ""
    callee_pseudonym: str = ""


def parse_time(text: str | None) -> dt.datetime | None:
    """The contract's ``2021-03-29T00:15:02.123456Z`` as an aware UTC datetime."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _party(record: dict[str, Any], role: str) -> dict[str, str]:
    party = record.get(role) or {}
    return {
        f"{role}_number": party.get("number") or "",
        f"{role}_uri": (party.get("uri") or "")[:255],
        f"{role}_display": (party.get("display_name") or "")[:128],
    }


def call_fields(record: dict[str, Any], placement: Placement) -> dict[str, Any]:
    """The row of a call record, by attribute name (``caller_unit_id``...)."""
    started = parse_time(record["started_at"])
    if started is None:
        raise ValueError("a call record needs started_at")
    recording = record.get("recording") or {}
    return {
        "call_id": record["call_id"],
        "started_at": started,
        "conversation_id": record.get("conversation_id") or record["call_id"],
        "source": record["source"],
        "transport": record.get("transport") or "unknown",
        **_party(record, "caller"),
        **_party(record, "callee"),
        "direction": record.get("direction") or placement.direction,
        "caller_unit_id": None if placement.caller_unit is None else placement.caller_unit.pk,
        "callee_unit_id": None if placement.callee_unit is None else placement.callee_unit.pk,
        "caller_class": placement.caller_class,
        "callee_class": placement.callee_class,
        "caller_pseudonym": placement.caller_pseudonym,
        "callee_pseudonym": placement.callee_pseudonym,
        "ringing_at": parse_time(record.get("ringing_at")),
        "answered_at": parse_time(record.get("answered_at")),
        "ended_at": parse_time(record.get("ended_at")),
        "result": record["result"],
        "final_code": record.get("final_code"),
        "ended_by": record.get("ended_by"),
        "setup_seconds": record.get("setup_seconds"),
        "ring_seconds": record.get("ring_seconds"),
        "talk_seconds": record.get("talk_seconds"),
        "hold_seconds": record.get("hold_seconds"),
        "early_media": bool(record.get("early_media")),
        "has_dtmf": bool(record.get("dtmf")),
        "transferred": bool(record.get("transfer")),
        "encrypted_media": recording.get("status") == Recording.Status.ENCRYPTED,
        "anomaly_count": sum(int(a.get("count", 0)) for a in record.get("anomalies", ())),
        "record": record,
    }


def stream_rows(call: Call, streams: Iterable[dict[str, Any]]) -> list[Stream]:
    """The stream rows of a saved call (its key set)."""
    return [
        new_instance(Stream, {
            "call_id": call.pk,
            "direction": s.get("direction", "unknown"),
            "media": s.get("media", "audio"),
            "codec": s.get("codec") or "",
            "payload_types": s.get("payload_types", []),
            "src": s["src"],
            "dst": s["dst"],
            "ssrcs": s.get("ssrcs", []),
            "packets": s.get("packets", 0),
            "lost": s.get("lost", 0),
            "duplicates": s.get("duplicates", 0),
            "jitter_ms": s.get("jitter_ms"),
            "first_at": parse_time(s.get("first_at")),
            "last_at": parse_time(s.get("last_at")),
        })
        for s in streams
    ]  # fmt: skip


@dataclass(frozen=True)
class CallToSave:
    """One call record (the contract's JSON) with what is saved beside it."""

    record: dict[str, Any]
    ladder: Sequence[dict[str, Any]] = ()
    placement: Placement = Placement()
    probe: str = ""


@dataclass(frozen=True)
class SavedCall:
    """A saved leg, and the row it replaced when the leg had been saved before."""

    call: Call
    previous: Call | None


def save_calls(items: Sequence[CallToSave]) -> list[SavedCall]:
    """Insert or update call legs with their streams, in one transaction, in few statements.

    New legs are inserted together (one INSERT for the calls, one for all their streams);
    a leg saved before (same Call-ID and start time: a second import, a restarted
    recorder) is updated in place and its streams replaced. Each leg may be given once.
    """
    calls: list[Call] = []
    for item in items:
        fields = call_fields(item.record, item.placement)
        fields["ladder"] = list(item.ladder)
        fields["probe"] = item.probe
        calls.append(new_instance(Call, fields))
    keys = [(call.call_id, call.started_at) for call in calls]
    if len(set(keys)) != len(keys):
        raise ValueError("a call leg was given twice in one save")
    if not calls:
        return []
    # no savepoint: a failure here fails the caller's transaction too (a recorder's read)
    with transaction.atomic(savepoint=False):
        existing = _existing({call.call_id for call in calls})
        previous = [existing.get(key) for key in keys]
        updated = []
        for call, earlier in zip(calls, previous, strict=True):
            if earlier is not None:
                call.pk, call.imported_at = earlier.pk, earlier.imported_at
                call.save(force_update=True)
                updated.append(call)
        insert_new([c for c, p in zip(calls, previous, strict=True) if p is None])
        if updated:
            Stream.objects.filter(call__in=updated).delete()
        insert_new(
            [
                stream
                for item, call in zip(items, calls, strict=True)
                for stream in stream_rows(call, item.record.get("streams", ()))
            ]
        )
    return [SavedCall(c, p) for c, p in zip(calls, previous, strict=True)]


def _existing(call_ids: set[str]) -> dict[tuple[str, dt.datetime], Call]:
    """The rows saved before with these Call-IDs, by Call-ID and start. Usually there are
    none (a live recorder saves each leg once): one plain query says so, and the rows are
    loaded through the ORM only when there are some (the ORM query costs more to build than
    a read's calls cost to insert)."""
    ids = sorted(call_ids)
    sqlite = connection.vendor == "sqlite"
    key = (len(ids) if sqlite else 0, connection.vendor)
    sql = _EXISTING.get(key)
    if sql is None:
        ops = connection.ops
        column = ops.quote_name(str(Call._meta.get_field("call_id").column))
        where = f"IN ({', '.join(['?'] * len(ids))})" if sqlite else "= ANY(%s)"
        sql = _EXISTING[key] = (
            f"SELECT 1 FROM {ops.quote_name(Call._meta.db_table)} "  # noqa: S608
            f"WHERE {column} {where} LIMIT 1"
        )
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, ids if sqlite else [ids])
            if cursor.fetchone() is None:
                return {}
        finally:
            cursor.close()
    return {(row.call_id, row.started_at): row for row in Call.objects.filter(call_id__in=ids)}


#: the existence query's text by number of Call-IDs (SQLite) and database
_EXISTING: dict[tuple[int, str], str] = {}


def save_call(
    record: dict[str, Any],
    *,
    ladder: Sequence[dict[str, Any]] = (),
    placement: Placement | None = None,
    probe: str = "",
) -> Call:
    """Insert or update one call leg with its streams, in one transaction."""
    item = CallToSave(record, ladder, placement or Placement(), probe)
    (saved,) = save_calls([item])
    return saved.call
