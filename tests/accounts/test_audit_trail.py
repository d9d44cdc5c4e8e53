import csv
import datetime as dt
import io
import json
import logging
import logging.config
import socket

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from callscope.accounts import audittrail
from callscope.accounts.auditsinks import LOGGER_NAME, audit_logging, merge_into
from callscope.accounts.models import AuditAnchor
from callscope.store import audit
from callscope.store.models import AuditEntry

from ._world import client_for

pytestmark = pytest.mark.django_db


def chain(n=6):
    return [
        audit.record("search", address="10.0.0.1", target=f"q:{i}", detail={"i": i})
        for i in range(n)
    ]


def messages(report):
    return [(p.sequence, p.message) for p in report.problems]


def test_an_intact_chain_verifies():
    chain()
    report = audittrail.verify()
    assert report.ok and report.checked == 6
    assert report.first_sequence == 1 and report.last_sequence == 6
    assert report.last_hash == AuditEntry.objects.get(sequence=6).entry_hash


def test_a_changed_entry_is_detected():
    chain()
    AuditEntry.objects.filter(sequence=3).update(detail={"i": 99})
    assert messages(audittrail.verify()) == [(3, audittrail.CHANGED)]


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_next_link():
    chain()
    entry = AuditEntry.objects.get(sequence=3)
    entry.actor_name = "someone-else"
    entry.entry_hash = audit.chain_hash(entry.previous_hash, audit.entry_content(entry))
    entry.save()
    assert messages(audittrail.verify()) == [(4, audittrail.BROKEN_LINK)]


def test_a_removed_entry_is_detected():
    chain()
    AuditEntry.objects.filter(sequence=4).delete()
    assert messages(audittrail.verify()) == [(4, audittrail.GAP), (5, audittrail.BROKEN_LINK)]


def test_removing_the_first_entries_is_detected():
    chain()
    AuditEntry.objects.filter(sequence__lte=2).delete()
    assert messages(audittrail.verify()) == [(1, audittrail.GAP), (3, audittrail.BROKEN_LINK)]


def test_reordered_entries_are_detected():
    chain()
    # swap the positions of entries 2 and 3 (unique sequence: go through a free number)
    AuditEntry.objects.filter(sequence=2).update(sequence=1_000_000)
    AuditEntry.objects.filter(sequence=3).update(sequence=2)
    AuditEntry.objects.filter(sequence=1_000_000).update(sequence=3)
    found = messages(audittrail.verify())
    assert (2, audittrail.CHANGED) in found and (3, audittrail.CHANGED) in found
    assert (2, audittrail.BROKEN_LINK) in found


def test_the_command_exits_non_zero_and_names_the_entry():
    chain()
    out = io.StringIO()
    call_command("audit", "verify", stdout=out)
    assert "audit trail OK: 6 entries checked (sequences 1..6)" in out.getvalue()
    AuditEntry.objects.filter(sequence=5).update(action="login")
    err = io.StringIO()
    with pytest.raises(CommandError, match="verification FAILED"):
        call_command("audit", "verify", stderr=err)
    assert "sequence 5: entry content does not match its hash" in err.getvalue()


def test_audit_retention_keeps_an_anchor_so_verification_still_works():
    old = chain(4)
    AuditEntry.objects.filter(pk__in=[e.pk for e in old[:3]]).update(
        at=timezone.now() - dt.timedelta(days=400)
    )
    # moving "at" changed those entries' content: re-hash them as if written back then
    previous = audit.GENESIS
    for entry in AuditEntry.objects.order_by("sequence"):
        entry.previous_hash = previous
        entry.entry_hash = audit.chain_hash(previous, audit.entry_content(entry))
        entry.save()
        previous = entry.entry_hash
    assert audittrail.verify().ok
    removed = audittrail.prune(timezone.now(), retention_days=365)
    assert removed == 3
    anchor = AuditAnchor.objects.get()
    assert anchor.sequence == 3
    assert list(AuditEntry.objects.values_list("sequence", flat=True).order_by("sequence")) == [
        4,
        5,
    ]
    report = audittrail.verify()
    assert report.ok, report.problems
    assert report.first_sequence == 4
    pruned = AuditEntry.objects.get(action="audit_pruned")
    assert pruned.detail["anchor_hash"] == anchor.entry_hash
    assert audittrail.prune(timezone.now(), retention_days=365) == 0


def test_a_forged_anchor_is_detected():
    chain(3)
    AuditEntry.objects.filter(sequence=1).update(at=timezone.now() - dt.timedelta(days=400))
    entry = AuditEntry.objects.get(sequence=1)
    entry.entry_hash = audit.chain_hash(entry.previous_hash, audit.entry_content(entry))
    entry.save()
    for later in AuditEntry.objects.filter(sequence__gt=1).order_by("sequence"):
        prev = AuditEntry.objects.get(sequence=later.sequence - 1).entry_hash
        later.previous_hash = prev
        later.entry_hash = audit.chain_hash(prev, audit.entry_content(later))
        later.save()
    audittrail.prune(timezone.now(), retention_days=365)
    assert audittrail.verify().ok
    # someone deletes entry 2 and moves the anchor to hide it
    hidden = AuditEntry.objects.get(sequence=2)
    AuditAnchor.objects.update(sequence=2, entry_hash=hidden.entry_hash)
    hidden.delete()
    assert (2, audittrail.ANCHOR_MISMATCH) in messages(audittrail.verify())


@pytest.fixture
def audit_sinks(tmp_path):
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.propagate, logger.level)

    def configure(**kwargs):
        config = merge_into(
            {"version": 1, "disable_existing_loggers": False}, audit_logging(**kwargs)
        )
        logging.config.dictConfig(config)
        return logger

    yield configure
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:], logger.propagate, logger.level = saved


def test_committed_entries_are_copied_to_the_log_file(
    audit_sinks, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "audit.log"
    audit_sinks(log_file=str(path), syslog="")
    with django_capture_on_commit_callbacks(execute=True):
        first = audit.record("login", address="10.0.0.2", target="user:hojo")
        audit.record("search", detail={"q": "保育園"})
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["sequence"] for line in lines] == [1, 2]
    assert lines[0]["entry_hash"] == first.entry_hash and lines[0]["address"] == "10.0.0.2"
    assert lines[1]["detail"] == {"q": "保育園"}
    # the copy lets verify notice what the database lost at its newest end
    AuditEntry.objects.filter(sequence=2).delete()
    report = audittrail.verify()
    assert report.ok  # truncating the tail is invisible from inside the database...
    with path.open(encoding="utf-8") as copy:
        audittrail.verify_against_log(copy, report)
    assert messages(report) == [(2, audittrail.MISSING_FROM_DB)]  # ...but not to the copy
    with pytest.raises(CommandError):
        call_command("audit", "verify", "--log-file", str(path), stderr=io.StringIO())


def test_a_rolled_back_action_leaves_no_copy(
    audit_sinks, tmp_path, django_capture_on_commit_callbacks
):
    from django.db import transaction

    path = tmp_path / "audit.log"
    audit_sinks(log_file=str(path), syslog="")
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                audit.record("export")
                raise RuntimeError("the action failed")
        except RuntimeError:
            pass
    assert not path.exists() or path.read_text() == ""


def test_entries_are_sent_to_syslog_over_udp(audit_sinks, django_capture_on_commit_callbacks):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    audit_sinks(log_file="", syslog=f"udp://127.0.0.1:{port}")
    with django_capture_on_commit_callbacks(execute=True):
        entry = audit.record("playback", target="call:7")
    datagram = receiver.recv(65536).decode()
    receiver.close()
    # RFC 3164: <PRI> with facility authpriv (10) and severity info (6): 10 * 8 + 6 = 86
    assert datagram.startswith("<86>callscope-audit: ")
    assert json.loads(datagram.split(": ", 1)[1].rstrip("\x00"))["entry_hash"] == entry.entry_hash


def test_entries_are_sent_to_syslog_over_tcp_one_per_line(
    audit_sinks, django_capture_on_commit_callbacks
):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    audit_sinks(log_file="", syslog=f"tcp://127.0.0.1:{port}")
    connection, _address = server.accept()
    connection.settimeout(5)
    with django_capture_on_commit_callbacks(execute=True):
        audit.record("login")
        audit.record("logout")
    received = b""
    while received.count(b"\n") < 2:
        received += connection.recv(65536)
    connection.close()
    server.close()
    lines = received.decode().splitlines()
    assert [json.loads(line.split(": ", 1)[1])["action"] for line in lines] == ["login", "logout"]


def test_the_manager_exports_the_filtered_trail_as_csv(manager, operator):
    audit.record("search", actor=operator, address="10.0.0.3", target="calls", detail={"q": "=cmd"})
    audit.record("login", actor=manager)
    client = client_for(manager)
    response = client.get(reverse("accounts:audit_export"), {"action": "search"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == list(audittrail.CSV_HEADER)
    assert len(rows) == 2 and rows[1][2] == "hojo" and rows[1][4] == "search"
    assert json.loads(rows[1][6]) == {"q": "=cmd"}  # JSON starts with "{": not a formula
    assert AuditEntry.objects.filter(action="audit_export", actor=manager).exists()


def test_the_audit_page_filters_and_is_manager_only(manager, operator):
    audit.record("login", actor=operator, address="10.0.0.4")
    audit.record("search", actor=operator)
    page = client_for(manager).get(reverse("accounts:audit"), {"action": "login", "actor": "hojo"})
    assert page.status_code == 200
    assert [e.action for e in page.context["entries"]] == ["login"]
    assert "ログイン" in page.content.decode()
    assert client_for(operator).get(reverse("accounts:audit")).status_code == 403


def test_export_command_writes_csv(tmp_path):
    chain(3)
    out = tmp_path / "audit.csv"
    call_command("audit", "export", "--output", str(out), stdout=io.StringIO())
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert len(rows) == 4
    assert AuditEntry.objects.filter(action="audit_export").exists()
