import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from callscope.store import audit
from callscope.store.models import AuditEntry


@pytest.mark.django_db
def test_entries_chain_from_genesis():
    first = audit.record("login", address="10.0.0.5", detail={"ok": True})
    second = audit.record("search", target="calls", detail={"q": "保育"})
    assert first.sequence == 1 and second.sequence == 2
    assert first.previous_hash == audit.GENESIS
    assert second.previous_hash == first.entry_hash
    for entry in AuditEntry.objects.order_by("sequence"):
        assert entry.entry_hash == audit.chain_hash(entry.previous_hash, audit.entry_content(entry))


@pytest.mark.django_db
def test_a_changed_entry_no_longer_matches_its_hash():
    entry = audit.record("playback", target="call:1")
    AuditEntry.objects.filter(pk=entry.pk).update(target="call:2")
    entry.refresh_from_db()
    assert entry.entry_hash != audit.chain_hash(entry.previous_hash, audit.entry_content(entry))


@pytest.mark.django_db
def test_entries_appended_together_continue_the_chain_in_order():
    first = audit.record("login", address="10.0.0.5")
    together = audit.record_many(
        [
            audit.Event("search", detail={"filters": {"unit": 3}}),
            audit.Event("number_view", target="call:7", detail={"targets": ["call:7", "call:9"]}),
        ],
        address="10.0.0.5",
    )
    later = audit.record("logout", address="10.0.0.5")
    assert [e.sequence for e in together] == [2, 3] and later.sequence == 4
    assert together[0].previous_hash == first.entry_hash
    assert together[1].previous_hash == together[0].entry_hash
    assert later.previous_hash == together[1].entry_hash
    stored = list(AuditEntry.objects.order_by("sequence"))
    assert [e.action for e in stored] == ["login", "search", "number_view", "logout"]
    for entry in stored:
        assert entry.entry_hash == audit.chain_hash(entry.previous_hash, audit.entry_content(entry))
    assert audit.record_many([]) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL commit setting")
@pytest.mark.django_db(transaction=True)
def test_page_views_commit_without_waiting_for_the_disk_and_changes_do():
    def statements(**kwargs):
        with CaptureQueriesContext(connection) as ctx:
            audit.record_many([audit.Event("call_view", target="call:1")], **kwargs)
        return [q["sql"] for q in ctx.captured_queries]

    relaxed = "SET LOCAL synchronous_commit = off"
    assert relaxed in statements(views=True)
    assert relaxed not in statements()  # a change: the commit waits for the disk
    with transaction.atomic():  # inside a caller's transaction: its commit, its rules
        assert relaxed not in statements(views=True)
    with connection.cursor() as cursor:  # LOCAL: the session's setting is untouched
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    stored = list(AuditEntry.objects.order_by("sequence"))
    assert len(stored) == 3
    for entry in stored:
        assert entry.entry_hash == audit.chain_hash(entry.previous_hash, audit.entry_content(entry))
