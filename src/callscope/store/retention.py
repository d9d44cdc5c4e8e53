"""Retention: audio is deleted RETENTION_DAYS after the call, the call log after
METADATA_RETENTION_DAYS; recordings under an active `LegalHold` are never touched.

Theory of operation. Deleting a recording's audio takes four steps, each committed before
the next, so that a crash anywhere leaves a state the next run finishes:

1. mark intent: ``deleted_at`` is set (under a row lock, after re-checking holds; placing a
   hold takes the same lock and refuses a recording marked for deletion),
2. destroy the data key: ``wrapped_key`` = NULL (from here the audio is unrecoverable,
   AES-256-GCM without its key),
3. delete the stored object (deleting a missing object succeeds),
4. mark done: status ``deleted``, ``storage_key`` and derived data (waveform peaks) cleared.

A recording is a candidate while any remnant is left (a wrapped key, a storage key or
peaks): a run interrupted after step 1, 2 or 3 is picked up again, as is audio an encoder
wrote late for an old call. Work goes in batches of ``batch_size`` rows, each its own short
transaction, so a large backlog never holds a lock for long; ``max_batches`` bounds one run.
Running `purge` twice in a row changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from callscope.store import audit
from callscope.store.audiostore import AudioStore, AudioStoreError, get_audio_store
from callscope.store.models import Call, LegalHold, Recording

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    """Counts of one retention run (logged, audited, printed by `callscope purge`)."""

    recordings_deleted: int = 0
    objects_deleted: int = 0
    held_kept: int = 0
    store_errors: int = 0
    calls_deleted: int = 0
    batches: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.recordings_deleted or self.calls_deleted or self.store_errors)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _active_hold() -> Exists:
    return Exists(LegalHold.objects.filter(recording=OuterRef("pk"), released_at__isnull=True))


def _remnant() -> Q:
    return Q(wrapped_key__isnull=False) | ~Q(storage_key="") | Q(peaks__isnull=False)


def audio_candidates(cutoff: dt.datetime) -> QuerySet[Recording]:
    """Recordings whose audio (or what is left of it) must go: old and not held."""
    old_unheld = Q(call__started_at__lt=cutoff) & ~_active_hold()
    interrupted = Q(deleted_at__isnull=False)
    return Recording.objects.filter(_remnant()).filter(old_unheld | interrupted).order_by("pk")


def _mark_batch(cutoff: dt.datetime, now: dt.datetime, batch_size: int) -> list[int]:
    """Step 1 for one batch: lock candidates, re-check holds, set deleted_at."""
    with transaction.atomic():
        ids = list(
            audio_candidates(cutoff)
            .select_for_update(of=("self",))
            .values_list("pk", flat=True)[:batch_size]
        )
        held = set(
            LegalHold.objects.filter(recording_id__in=ids, released_at__isnull=True).values_list(
                "recording_id", flat=True
            )
        )
        marked = [pk for pk in ids if pk not in held]
        Recording.objects.filter(pk__in=marked, deleted_at__isnull=True).update(deleted_at=now)
    return marked


def _delete_audio(ids: list[int], store: AudioStore, report: PurgeReport) -> None:
    """Steps 2-4 for recordings already marked."""
    Recording.objects.filter(pk__in=ids).update(wrapped_key=None)  # step 2: shred
    done = []
    for pk, key in Recording.objects.filter(pk__in=ids).values_list("pk", "storage_key"):
        if key:
            try:
                store.delete(key)  # step 3
            except (AudioStoreError, OSError) as exc:
                report.store_errors += 1
                log.warning(
                    "audio object not deleted",
                    extra={"recording": pk, "storage_key": key, "error": str(exc)},
                )
                continue
            report.objects_deleted += 1
        done.append(pk)
    Recording.objects.filter(pk__in=done).update(  # step 4
        status=Recording.Status.DELETED, storage_key="", peaks=None
    )
    report.recordings_deleted += len(done)


def metadata_candidates(cutoff: dt.datetime) -> QuerySet[Call]:
    """Old calls with no active hold and no audio left (audio always goes first)."""
    held = Exists(
        LegalHold.objects.filter(recording__call=OuterRef("pk"), released_at__isnull=True)
    )
    audio_left = Exists(
        Recording.objects.filter(call=OuterRef("pk")).filter(
            Q(wrapped_key__isnull=False) | ~Q(storage_key="")
        )
    )
    return Call.objects.filter(started_at__lt=cutoff).filter(~held, ~audio_left).order_by("pk")


def _delete_calls(cutoff: dt.datetime, batch_size: int) -> int:
    with transaction.atomic():
        ids = list(
            metadata_candidates(cutoff)
            .select_for_update(of=("self",))
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        # Released holds are part of the call's record and go with it (the audit trail
        # keeps the history); an active hold blocks the deletion (re-checked under lock).
        active = set(
            LegalHold.objects.filter(
                recording__call_id__in=ids, released_at__isnull=True
            ).values_list("recording__call_id", flat=True)
        )
        ids = [pk for pk in ids if pk not in active]
        LegalHold.objects.filter(recording__call_id__in=ids).delete()
        Call.objects.filter(pk__in=ids).delete()
    return len(ids)


def purge(
    now: dt.datetime,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    store: AudioStore | None = None,
    retention_days: int | None = None,
    metadata_retention_days: int | None = None,
    audit_empty: bool = False,
) -> PurgeReport:
    """Apply audio and call-log retention as of ``now``; idempotent and crash-safe."""
    batch_size = batch_size or settings.CALLSCOPE_PURGE_BATCH_SIZE
    store = store or get_audio_store()
    days = retention_days or settings.CALLSCOPE_RETENTION_DAYS
    meta_days = metadata_retention_days or settings.CALLSCOPE_METADATA_RETENTION_DAYS
    report = PurgeReport()
    cutoff = now - dt.timedelta(days=days)
    while max_batches is None or report.batches < max_batches:
        marked = _mark_batch(cutoff, now, batch_size)
        if not marked:
            break
        report.batches += 1
        _delete_audio(marked, store, report)
        if report.store_errors:
            break  # the store is failing: leave the rest to the next run
    meta_cutoff = now - dt.timedelta(days=meta_days)
    while max_batches is None or report.batches < max_batches:
        deleted = _delete_calls(meta_cutoff, batch_size)
        if not deleted:
            break
        report.batches += 1
        report.calls_deleted += deleted
    report.held_kept = (
        Recording.objects.filter(call__started_at__lt=cutoff).filter(_active_hold()).count()
    )
    log.info("retention run", extra={"retention": report.as_dict()})
    if report.changed or audit_empty:
        audit.record(
            "retention_run",
            target="retention",
            detail={
                **report.as_dict(),
                "audio_cutoff": cutoff.isoformat(),
                "metadata_cutoff": meta_cutoff.isoformat(),
            },
        )
    return report
