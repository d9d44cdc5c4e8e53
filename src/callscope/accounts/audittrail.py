"""Reading the audit trail: verify the hash chain, filter, export CSV, apply audit retention.

Theory of operation: `callscope.store.audit.record` appends entries whose
``entry_hash = SHA-256(previous_hash || canonical content)``; the content includes the
sequence number. `verify` walks the entries in sequence order and reports

- a changed entry (its hash no longer matches its content),
- a removed entry (a gap in the sequence, or a link that does not chain), and
- reordered entries (the sequence is part of the hashed content, so moving an entry changes
  its content, and its link to the neighbour no longer chains).

Audit retention removes the oldest entries; the hash of the last removed entry is kept as an
`AuditAnchor` (and written into the chain by an ``audit_pruned`` entry), so the first kept
entry is still checked against it. Truncating the newest entries cannot be seen from inside
the database: the copy sent to a log file or syslog on another host covers that
(`callscope.accounts.auditlog`), and `verify_against_log` compares the two.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from callscope.accounts.models import AuditAnchor
from callscope.store import audit
from callscope.store.models import AuditEntry

#: Every action the trail records, with its label for the audit page.
ACTIONS: dict[str, Any] = {
    "login": _("Log-in"),
    "logout": _("Log-out"),
    "login_failed": _("Failed log-in"),
    "login_refused": _("Log-in refused"),
    "lockout": _("Lockout"),
    "lockout_lifted": _("Lockout lifted"),
    "idle_lock": _("Idle lock"),
    "session_expired": _("Session lifetime reached"),
    "session_ended": _("Session ended"),
    "password_change": _("Password changed"),
    "password_reset": _("One-time password issued"),
    "totp_enrol": _("Second factor enrolled"),
    "totp_reset": _("Second factor reset"),
    "search": _("Search"),
    "call_view": _("Call viewed"),
    "number_view": _("Full numbers shown"),
    "playback": _("Playback"),
    "download": _("Download"),
    "export": _("Export"),
    "dashboard.export": _("Dashboard exported"),
    "dashboard.report": _("Monthly report downloaded"),
    "directory.import": _("Directory imported"),
    "directory.export": _("Directory exported"),
    "directory.entry_add": _("Directory number added"),
    "directory.entry_change": _("Directory number changed"),
    "directory.entry_end": _("Directory number ended"),
    "user_create": _("Account created"),
    "account_disable": _("Account disabled"),
    "account_enable": _("Account enabled"),
    "designation_grant": _("Designated"),
    "designation_revoke": _("Designation revoked"),
    "training_record": _("Training recorded"),
    "right_change": _("Rights changed"),
    "totp_requirement": _("Second factor requirement changed"),
    "setting_change": _("Setting changed"),
    "manager_create": _("Manager created"),
    "evidence_request": _("Evidence requested"),
    "evidence_approve": _("Evidence approved"),
    "evidence_reject": _("Evidence rejected"),
    "evidence_export": _("Evidence exported"),
    "evidence_handover": _("Evidence handed over"),
    "evidence_release": _("Evidence case closed"),
    "hold_place": _("Hold placed"),
    "hold_release": _("Hold released"),
    "retention_run": _("Retention run"),
    "audit_pruned": _("Audit retention run"),
    "audit_export": _("Audit trail exported"),
}

# Fixed messages of verification problems (data goes in the fields, not the text).
CHANGED = "entry content does not match its hash"
BROKEN_LINK = "entry does not chain from the previous entry"
GAP = "sequence number missing"
ANCHOR_MISMATCH = "anchor does not match the last audit retention entry"
MISSING_FROM_DB = "entry in the log copy is missing from the database"
DIFFERENT_FROM_DB = "entry differs from the log copy"

MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class Problem:
    sequence: int
    message: str


@dataclass
class VerifyReport:
    checked: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str = audit.GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, sequence: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(sequence, message))


def latest_anchor() -> AuditAnchor | None:
    return AuditAnchor.objects.order_by("-sequence").first()


def verify(*, chunk_size: int = 2000) -> VerifyReport:
    """Walk the whole chain (from the retention anchor, if any) and report every problem."""
    report = VerifyReport()
    anchor = latest_anchor()
    expected = 1 if anchor is None else anchor.sequence + 1
    previous = audit.GENESIS if anchor is None else anchor.entry_hash
    last_prune: AuditEntry | None = None
    for entry in AuditEntry.objects.order_by("sequence").iterator(chunk_size=chunk_size):
        if report.first_sequence is None:
            report.first_sequence = entry.sequence
        if entry.sequence != expected:
            report.add(expected, GAP)
        if entry.previous_hash != previous:
            report.add(entry.sequence, BROKEN_LINK)
        if entry.entry_hash != audit.chain_hash(entry.previous_hash, audit.entry_content(entry)):
            report.add(entry.sequence, CHANGED)
        if entry.action == "audit_pruned":
            last_prune = entry
        report.checked += 1
        expected = entry.sequence + 1
        previous = entry.entry_hash
    report.last_sequence = expected - 1 if report.checked else None
    report.last_hash = previous
    if anchor is not None and not _anchor_matches(anchor, last_prune):
        report.add(anchor.sequence, ANCHOR_MISMATCH)
    return report


def _anchor_matches(anchor: AuditAnchor, last_prune: AuditEntry | None) -> bool:
    if last_prune is None:
        # The retention entry itself may have aged out; then the chain from the anchor is
        # all there is to check.
        return True
    detail = last_prune.detail
    return bool(
        detail.get("anchor_sequence") == anchor.sequence
        and detail.get("anchor_hash") == anchor.entry_hash
    )


def verify_against_log(lines: Iterable[str], report: VerifyReport) -> None:
    """Compare the JSON lines of the audit log copy with the database (truncation, edits)."""
    anchor = latest_anchor()
    for line in lines:
        text = line.strip()
        start = text.find("{")
        if start < 0:
            continue
        try:
            copy = json.loads(text[start:])
        except json.JSONDecodeError:
            continue
        sequence = copy.get("sequence")
        if not isinstance(sequence, int):
            continue
        if anchor is not None and sequence <= anchor.sequence:
            continue
        stored = AuditEntry.objects.filter(sequence=sequence).only("entry_hash").first()
        if stored is None:
            report.add(sequence, MISSING_FROM_DB)
        elif stored.entry_hash != copy.get("entry_hash"):
            report.add(sequence, DIFFERENT_FROM_DB)


def prune(now: dt.datetime, *, retention_days: int) -> int:
    """Remove entries older than the audit retention, keeping an anchor; returns the count."""
    cutoff = now - dt.timedelta(days=retention_days)
    with transaction.atomic():
        last_old = (
            AuditEntry.objects.filter(at__lt=cutoff)
            .order_by("-sequence")
            .only("sequence", "entry_hash")
            .first()
        )
        if last_old is None:
            return 0
        removed, _detail = AuditEntry.objects.filter(sequence__lte=last_old.sequence).delete()
        anchor = AuditAnchor.objects.create(
            sequence=last_old.sequence, entry_hash=last_old.entry_hash, removed=removed
        )
        audit.record(
            "audit_pruned",
            target="audit",
            detail={
                "removed": removed,
                "anchor_sequence": anchor.sequence,
                "anchor_hash": anchor.entry_hash,
                "cutoff": cutoff.isoformat(),
            },
        )
    return removed


# -- filtering and export ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str = ""
    actor: str = ""
    target: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        if self.action:
            entries = entries.filter(action=self.action)
        if self.actor:
            entries = entries.filter(actor_name=self.actor)
        if self.target:
            entries = entries.filter(Q(target=self.target) | Q(target__startswith=self.target))
        if self.since is not None:
            entries = entries.filter(at__gte=self.since)
        if self.until is not None:
            entries = entries.filter(at__lt=self.until)
        return entries


CSV_HEADER = (
    "sequence",
    "at_utc",
    "actor",
    "address",
    "action",
    "target",
    "detail",
    "previous_hash",
    "entry_hash",
)


def _cell(value: str) -> str:
    # OWASP CSV injection: a leading formula character is neutralised for spreadsheets.
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def csv_rows(entries: QuerySet[AuditEntry], *, chunk_size: int = 2000) -> Iterator[list[str]]:
    yield list(CSV_HEADER)
    for entry in entries.order_by("sequence").iterator(chunk_size=chunk_size):
        yield [
            str(entry.sequence),
            entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            _cell(entry.actor_name),
            entry.address,
            entry.action,
            _cell(entry.target),
            _cell(json.dumps(entry.detail, ensure_ascii=False, sort_keys=True)),
            entry.previous_hash,
            entry.entry_hash,
        ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    """CSV text, line by line (UTF-8 with BOM so that spreadsheet software reads Japanese)."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    for row in csv_rows(entries):
        yield writer.writerow(row)


def write_csv(entries: QuerySet[AuditEntry], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        for line in csv_lines(entries):
            out.write(line)
            count += 1
    return max(count - 2, 0)  # minus BOM and header
