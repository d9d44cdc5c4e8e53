"""The encoder worker: finished spools -> stereo Opus -> encrypted object in the audio store.

Work is claimed through the database (DESIGN: no home-made queue): PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED``, SQLite with a guarded UPDATE under its single writer
lock. A claim is a lease (`claimed_at`): a worker killed mid-encode leaves a stale lease
that the next worker takes over, so every finished call gets its recording.

Order of effects for one recording: encode in memory -> put the encrypted object -> save
the row (wrapped key, status, done) -> delete the spool. A crash before the row is saved
only costs a re-encode; the spool is deleted last.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from callscope.audio import crypto
from callscope.audio.codecs import UnsupportedCodec
from callscope.audio.errors import AudioError
from callscope.audio.mix import interleave
from callscope.audio.opus import OpusSettings, encode_call
from callscope.audio.packets import Direction, PayloadFormat
from callscope.audio.peaks import peaks_per_interval
from callscope.audio.spool import read_spool_file
from callscope.audio.timeline import render_call
from callscope.store import recordings
from callscope.store.audiostore import get_audio_store, object_key
from callscope.store.models import Call, Recording

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 3
#: waveform resolution stored for the console's player
PEAK_BUCKET_MS = 50


def _ready(now: dt.datetime) -> Q:
    return (
        Q(state=Recording.State.PENDING)
        | Q(state=Recording.State.ENCODING, claimed_at__lt=now - LEASE)
    ) & Q(attempts__lt=MAX_ATTEMPTS)


def pending_count(now: dt.datetime | None = None) -> int:
    """How many recordings an encoder could claim now."""
    return Recording.objects.filter(_ready(now or timezone.now())).count()


def claim_next(now: dt.datetime | None = None) -> Recording | None:
    """Take one pending (or abandoned) recording; None when there is no work."""
    now = now or timezone.now()
    with transaction.atomic():
        queue = Recording.objects.filter(_ready(now)).order_by("id")
        if connection.vendor == "postgresql":
            queue = queue.select_for_update(skip_locked=True)
        recording = queue.first()
        if recording is None:
            return None
        claimed = Recording.objects.filter(pk=recording.pk, state=recording.state).update(
            state=Recording.State.ENCODING, claimed_at=now, attempts=recording.attempts + 1
        )
        if not claimed:
            return None
    recording.refresh_from_db()
    return recording


@dataclass(frozen=True)
class EncodeOutcome:
    recording_id: int
    status: str
    seconds: float


def _formats(raw: dict[str, list[Any]]) -> dict[int, PayloadFormat]:
    return {
        int(pt): PayloadFormat(enc, int(clock), int(ch)) for pt, (enc, clock, ch) in raw.items()
    }


def encode_recording(recording: Recording) -> EncodeOutcome:
    """Encode one claimed recording and store it encrypted (see the module docstring)."""
    call: Call = recording.call
    spool_path = Path(recording.spool_path)
    spool = read_spool_file(spool_path)
    maps = recording.payload_types
    caller_map = _formats(maps.get("caller_to_callee", {}))
    callee_map = _formats(maps.get("callee_to_caller", {}))
    audio = render_call(
        spool.packets(Direction.CALLER_TO_CALLEE),
        spool.packets(Direction.CALLEE_TO_CALLER),
        caller_map or callee_map,
        spool.header.started_ns,
        callee_payload_types=callee_map or caller_map,
    )
    if isinstance(audio, UnsupportedCodec):
        return _finish_without_audio(recording, spool_path, Recording.Status.UNSUPPORTED_CODEC)
    if not audio.has_audio:
        return _finish_without_audio(recording, spool_path, Recording.Status.NO_MEDIA)
    opus = OpusSettings(
        narrowband_kbps=settings.CALLSCOPE_OPUS_NARROWBAND_KBPS,
        wideband_kbps=settings.CALLSCOPE_OPUS_WIDEBAND_KBPS,
        narrowband_complexity=settings.CALLSCOPE_OPUS_NARROWBAND_COMPLEXITY,
        wideband_complexity=settings.CALLSCOPE_OPUS_WIDEBAND_COMPLEXITY,
        frame_ms=settings.CALLSCOPE_OPUS_FRAME_MS,
    )
    encoded = encode_call(audio, opus)
    peaks = peaks_per_interval(interleave(audio.caller, audio.callee), audio.sample_rate,
                               bucket_ms=PEAK_BUCKET_MS)  # fmt: skip
    data_key = crypto.new_data_key()
    name = f"{call.pk}-{recording.pk}.ogg.enc"
    key = object_key(call.started_at, name)
    container = crypto.encrypt(encoded.data, data_key, key_id=name)
    get_audio_store().put(key, container)
    key_id, wrapped = recordings.wrap(data_key, name)
    one_way = not (audio.caller_stats.decoded and audio.callee_stats.decoded)
    partial = one_way or call.result == "in_progress" or spool.torn
    status = Recording.Status.PARTIAL if partial else Recording.Status.RECORDED
    recording.status = status
    recording.state = Recording.State.DONE
    recording.storage_key = key
    recording.size = len(container)
    recording.duration_seconds = encoded.duration_seconds
    recording.channels = encoded.channels
    recording.sample_rate = encoded.sample_rate
    recording.pcm_sha256 = encoded.pcm_sha256
    recording.key_id = key_id
    recording.wrapped_key = wrapped
    recording.peaks = b"".join(peaks.channels) if peaks.channels else b""
    recording.encoded_at = timezone.now()
    recording.error = ""
    recording.spool_path = ""
    recording.save()
    _note_on_call(call, recording)
    spool_path.unlink(missing_ok=True)
    return EncodeOutcome(recording.pk, status, encoded.duration_seconds)


def _finish_without_audio(recording: Recording, spool: Path, status: str) -> EncodeOutcome:
    recording.status = status
    recording.state = Recording.State.DONE
    recording.spool_path = ""
    recording.save(update_fields=["status", "state", "spool_path"])
    _note_on_call(recording.call, recording)
    spool.unlink(missing_ok=True)
    return EncodeOutcome(recording.pk, status, 0.0)


def _note_on_call(call: Call, recording: Recording) -> None:
    """Keep the call's contract record's ``recording`` object in step with the row."""
    call.record["recording"] = recording_contract(recording)
    Call.objects.filter(pk=call.pk).update(record=call.record)


def recording_contract(recording: Recording) -> dict[str, Any]:
    return {
        "id": str(recording.pk) if recording.storage_key else None,
        "status": recording.status,
        "duration_seconds": recording.duration_seconds,
        "channels": recording.channels,
        "sample_rate": recording.sample_rate,
    }


def process_one() -> EncodeOutcome | None:
    """One step of the encoder loop: claim, encode, record failures. None when idle."""
    recording = claim_next()
    if recording is None:
        return None
    try:
        return encode_recording(recording)
    except (AudioError, OSError) as exc:
        failed = recording.attempts >= MAX_ATTEMPTS
        Recording.objects.filter(pk=recording.pk).update(
            state=Recording.State.FAILED if failed else Recording.State.PENDING,
            error=f"{type(exc).__name__}: {exc}",
            claimed_at=None,
        )
        log.warning("recording %s failed to encode: %s", recording.pk, exc)
        return EncodeOutcome(recording.pk, "failed", 0.0)


def drain(limit: int | None = None) -> list[EncodeOutcome]:
    """Encode until the queue is empty (or ``limit`` recordings were handled)."""
    outcomes: list[EncodeOutcome] = []
    while limit is None or len(outcomes) < limit:
        outcome = process_one()
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes
