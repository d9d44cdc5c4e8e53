"""Retention: old unheld audio is destroyed (key, object, peaks), held and young audio is
untouched, interrupted runs are finished, and the call log has its own, longer retention."""

import contextlib
import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.db.models import Exists, OuterRef
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscope.accounts.models import Role, User
from callscope.store.audiostore import AudioStoreError, FilesystemAudioStore
from callscope.store.models import AuditEntry, Call, LegalHold, Recording
from callscope.store.retention import purge

NOW = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
DAYS, META_DAYS = 14, 30


class MemoryStore:
    """An audio store in a dict; ``fail_at`` makes the n-th delete fail (1-based)."""

    def __init__(self, fail_at=None, error=AudioStoreError):
        self.objects = {}
        self.deletes = 0
        self.fail_at = fail_at
        self.error = error

    def put(self, key, data):
        self.objects[key] = data

    def exists(self, key):
        return key in self.objects

    def delete(self, key):
        self.deletes += 1
        if self.fail_at is not None and self.deletes == self.fail_at:
            raise self.error("simulated failure")
        self.objects.pop(key, None)


@pytest.fixture
def holder(db):
    user = User.objects.create_user("kanri-ret", password="x" * 16)
    user.role = Role.MANAGER
    user.save()
    return user


def make_recording(store, n, age_days, *, holder, hold="none", stage="intact"):
    call = Call.objects.create(
        call_id=f"ret-{n}",
        conversation_id=f"ret-{n}",
        source="pcap",
        started_at=NOW - dt.timedelta(days=age_days, hours=1),
        result="answered",
    )
    key = f"2026/10/01/rec-{n}.ogg.enc"
    store.put(key, b"ciphertext")
    recording = Recording.objects.create(
        call=call,
        status=Recording.Status.RECORDED,
        state=Recording.State.DONE,
        storage_key=key,
        key_id=f"rec-{n}",
        wrapped_key=b"wrapped-" + bytes([n % 256]),
        peaks=b"\x01\x02",
    )
    if hold != "none":
        LegalHold.objects.create(
            recording=recording,
            reason="abusive caller",
            case_reference=f"case-{n}",
            placed_by=holder,
            released_at=NOW if hold == "released" else None,
        )
    # states a crashed earlier run leaves behind (steps 1, 2, 3 of four done)
    if stage in {"marked", "key_destroyed", "object_deleted"}:
        Recording.objects.filter(pk=recording.pk).update(deleted_at=NOW - dt.timedelta(days=1))
    if stage in {"key_destroyed", "object_deleted"}:
        Recording.objects.filter(pk=recording.pk).update(wrapped_key=None)
    if stage == "object_deleted":
        store.objects.pop(key)
    return recording


def run(store, **kwargs):
    return purge(NOW, store=store, retention_days=DAYS, metadata_retention_days=META_DAYS, **kwargs)


def assert_gone(recording, store):
    recording.refresh_from_db()
    assert recording.wrapped_key is None
    assert recording.storage_key == "" and recording.peaks is None
    assert recording.status == Recording.Status.DELETED and recording.deleted_at is not None


def test_old_audio_goes_young_and_held_audio_stays(holder):
    store = MemoryStore()
    old = make_recording(store, 1, 20, holder=holder)
    young = make_recording(store, 2, 3, holder=holder)
    held = make_recording(store, 3, 20, holder=holder, hold="active")
    released = make_recording(store, 4, 20, holder=holder, hold="released")
    report = run(store)
    assert report.recordings_deleted == 2 and report.objects_deleted == 2
    assert report.held_kept == 1
    assert_gone(old, store)
    assert_gone(released, store)
    for kept in (young, held):
        kept.refresh_from_db()
        assert kept.wrapped_key is not None and store.exists(kept.storage_key)
        assert kept.deleted_at is None and kept.status == Recording.Status.RECORDED
    assert set(store.objects) == {young.storage_key, held.storage_key}
    entry = AuditEntry.objects.get(action="retention_run")
    assert entry.detail["recordings_deleted"] == 2 and entry.detail["held_kept"] == 1


def test_a_second_run_changes_nothing(holder):
    store = MemoryStore()
    make_recording(store, 1, 20, holder=holder)
    run(store)
    again = run(store)
    assert again.recordings_deleted == 0 and again.calls_deleted == 0 and again.batches == 0
    assert AuditEntry.objects.filter(action="retention_run").count() == 1  # quiet when idle


@pytest.mark.parametrize("stage", ["marked", "key_destroyed", "object_deleted"])
def test_an_interrupted_deletion_is_finished(holder, stage):
    store = MemoryStore()
    recording = make_recording(store, 1, 20, holder=holder, stage=stage)
    report = run(store)
    assert report.recordings_deleted == 1
    assert_gone(recording, store)
    assert store.objects == {}


def test_a_failing_store_leaves_the_key_destroyed_and_is_retried(holder):
    store = MemoryStore(fail_at=1)
    recording = make_recording(store, 1, 20, holder=holder)
    report = run(store)
    assert report.store_errors == 1 and report.recordings_deleted == 0
    recording.refresh_from_db()
    assert recording.wrapped_key is None  # unrecoverable already
    assert recording.deleted_at is not None and recording.status != Recording.Status.DELETED
    store.fail_at = None
    assert run(store).recordings_deleted == 1
    assert_gone(recording, store)


def test_batches_are_limited(holder):
    store = MemoryStore()
    for n in range(7):
        make_recording(store, n, 20, holder=holder)
    first = run(store, batch_size=2, max_batches=2)
    assert first.recordings_deleted == 4 and first.batches == 2
    rest = run(store, batch_size=2)
    assert rest.recordings_deleted == 3
    assert store.objects == {}


def test_call_log_retention_keeps_held_calls(holder):
    store = MemoryStore()
    old = make_recording(store, 1, 40, holder=holder)
    held = make_recording(store, 2, 40, holder=holder, hold="active")
    released = make_recording(store, 3, 40, holder=holder, hold="released")
    recent = make_recording(store, 4, 20, holder=holder)
    report = run(store)
    assert report.calls_deleted == 2
    remaining = set(Call.objects.values_list("pk", flat=True))
    assert remaining == {held.call_id, recent.call_id}
    assert not LegalHold.objects.filter(recording_id=released.pk).exists()
    assert not Recording.objects.filter(pk=old.pk).exists()


def test_filesystem_store_and_the_purge_command(holder, settings, tmp_path):
    settings.CALLSCOPE_AUDIO_STORE = f"file://{tmp_path}"
    from callscope.store import audiostore

    audiostore._STORE = None
    store = FilesystemAudioStore(tmp_path)
    recording = make_recording(store, 1, 400, holder=holder)
    Call.objects.filter(pk=recording.call_id).update(
        started_at=dt.datetime.now(dt.UTC)
        - dt.timedelta(days=settings.CALLSCOPE_RETENTION_DAYS + 1)
    )
    path = tmp_path / recording.storage_key
    assert path.exists()
    out = io.StringIO()
    call_command("purge", stdout=out)
    counts = json.loads(out.getvalue())
    assert counts["recordings_deleted"] == 1 and counts["objects_deleted"] == 1
    assert not path.exists()
    audiostore._STORE = None


# -- the property: whatever the mix and wherever a run stops, the policy holds afterwards --

recordings = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),  # age in days
        st.sampled_from(["none", "active", "released"]),
        st.sampled_from(["intact", "intact", "marked", "key_destroyed", "object_deleted"]),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=recordings,
    batch_size=st.integers(min_value=1, max_value=4),
    crash_at=st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
    crash_kind=st.sampled_from([AudioStoreError, RuntimeError]),
)
def test_after_any_purge_no_unheld_old_audio_exists_and_nothing_else_is_gone(
    holder, specs, batch_size, crash_at, crash_kind
):
    LegalHold.objects.all().delete()
    Call.objects.all().delete()
    store = MemoryStore(fail_at=crash_at, error=crash_kind)
    made = []
    for n, (age, hold, drawn_stage) in enumerate(specs):
        # a run never starts deleting young or held audio
        stage = "intact" if hold == "active" or age < DAYS else drawn_stage
        recording = make_recording(store, n, age, holder=holder, hold=hold, stage=stage)
        made.append((recording, age, hold, stage))
    with contextlib.suppress(RuntimeError):
        run(store, batch_size=batch_size)  # may stop half-way (store error or a crash)
    store.fail_at = None
    run(store, batch_size=batch_size)  # the next scheduled run
    for recording, age, hold, stage in made:
        must_go = (age >= DAYS and hold != "active") or stage != "intact"
        call_kept = age < META_DAYS or hold == "active"
        assert Call.objects.filter(pk=recording.call_id).exists() == call_kept
        if not Recording.objects.filter(pk=recording.pk).exists():
            assert not call_kept and recording.storage_key not in store.objects
            continue
        if must_go:
            key = recording.storage_key
            assert_gone(recording, store)
            assert key not in store.objects
        else:
            fresh = Recording.objects.get(pk=recording.pk)
            assert fresh.wrapped_key is not None and fresh.deleted_at is None
            assert fresh.storage_key in store.objects and fresh.peaks is not None
    active = LegalHold.objects.filter(recording=OuterRef("pk"), released_at__isnull=True)
    old_unheld_with_key = Recording.objects.filter(
        call__started_at__lt=NOW - dt.timedelta(days=DAYS), wrapped_key__isnull=False
    ).exclude(Exists(active))
    assert not old_unheld_with_key.exists()
    assert run(store, batch_size=batch_size).recordings_deleted == 0  # idempotent
