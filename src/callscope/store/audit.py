"""Appending to the hash-chained audit trail.

Every entry's hash covers its canonical JSON content and the previous entry's hash
(`entry_hash = SHA-256(previous_hash || canonical)`), so editing, deleting or reordering
any entry breaks every later link. Appends are serialised: an advisory transaction lock on
PostgreSQL, the database-wide write lock on SQLite (IMMEDIATE transactions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from callscope.store.models import AuditEntry

GENESIS = "0" * 64
_ADVISORY_KEY = 0x0CA11A0D17  # arbitrary constant naming the audit chain's lock

log = logging.getLogger("callscope.audit")


def canonical(
    *,
    sequence: int,
    at: dt.datetime,
    actor_id: int | None,
    actor_name: str,
    address: str,
    action: str,
    target: str,
    detail: dict[str, Any],
) -> bytes:
    """The bytes an entry's hash covers (stable key order, UTC microseconds)."""
    content = {
        "sequence": sequence,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "address": address,
        "action": action,
        "target": target,
        "detail": detail,
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def chain_hash(previous_hash: str, content: bytes) -> str:
    return hashlib.sha256(previous_hash.encode("ascii") + content).hexdigest()


def entry_content(entry: AuditEntry) -> bytes:
    return canonical(
        sequence=entry.sequence,
        at=entry.at,
        actor_id=entry.actor_id,
        actor_name=entry.actor_name,
        address=entry.address,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
    )


@dataclass(frozen=True)
class Event:
    """One entry to append: what happened, to what, with which details."""

    action: str
    target: str = ""
    detail: dict[str, Any] | None = None


def record(
    action: str,
    *,
    actor: Any = None,
    address: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry (inside the caller's transaction when there is one)."""
    return record_many([Event(action, target, detail)], actor=actor, address=address)[0]


def record_many(
    events: Sequence[Event], *, actor: Any = None, address: str = "", views: bool = False
) -> list[AuditEntry]:
    """Append several entries of one actor in one transaction (one lock, one read of the
    chain's end): what a page that is audited twice, e.g. a search that shows full numbers,
    writes. Inside the caller's transaction when there is one.

    ``views``: the entries record pages looked at, not changes. On PostgreSQL their own
    transaction then commits without waiting for the WAL to reach the disk
    (``synchronous_commit = off``): the chain's lock is held for the inserts, not for a disk
    flush (up to 300 ms on a busy virtual disk, while every other audited page waits). The
    entries are in the chain and survive a crash of callscope or PostgreSQL; only a crash
    of the machine itself in the next fraction of a second (3 x wal_writer_delay) could
    lose them, the durability SQLite's WAL mode with synchronous=NORMAL gives every commit.
    """
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    actor_name = actor.get_username() if actor_id is not None else ""
    entries: list[AuditEntry] = []
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if views and own_transaction:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_KEY])
        last = AuditEntry.objects.order_by("-sequence").only("sequence", "entry_hash").first()
        sequence = 0 if last is None else last.sequence
        previous = GENESIS if last is None else last.entry_hash
        # Stored at microsecond precision on every backend; hash what is stored.
        at = timezone.now()
        for event in events:
            sequence += 1
            entry = AuditEntry(
                sequence=sequence,
                at=at,
                actor_id=actor_id,
                actor_name=actor_name,
                address=address,
                action=event.action,
                target=event.target,
                detail=json.loads(json.dumps(event.detail or {}, default=str)),  # as stored
                previous_hash=previous,
            )
            entry.entry_hash = chain_hash(previous, entry_content(entry))
            entry.save(force_insert=True)
            previous = entry.entry_hash
            entries.append(entry)
    for entry in entries:
        log.info(
            "audit",
            extra={
                "audit_action": entry.action,
                "audit_actor": actor_name,
                "audit_target": entry.target,
            },
        )
    return entries
