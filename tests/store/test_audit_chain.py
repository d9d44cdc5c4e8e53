import pytest

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
