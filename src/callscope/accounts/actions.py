"""State changes of accounts and evidence: each `do_*` checks the rule, changes the rows and
writes its audit entry in one transaction (STYLE habit 8, after Zulip's ``actions``).

Views call these with ``acting_user=request.user, address=client_address(request)``; a
refused action raises `ActionRefused` with a fixed message and a ``code``.

The evidence workflow is a state table (`TRANSITIONS`)::

    requested --approve--> approved --export--> exported --handover--> handed_over
        \\--reject--> rejected       \\------------\\--------------\\--release--> released

Approval places a `LegalHold` (retention never deletes held audio); the hold is released by
`do_release_hold` when the case closes. Exporting the package (`evidence.build_package`)
is the only way audio leaves the system.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from axes.utils import reset as axes_reset
from django.db import transaction
from django.utils import timezone

from callscope.accounts import sessions
from callscope.accounts.errors import ActionRefused
from callscope.accounts.evidence import EvidencePackage, build_package, read_plaintext
from callscope.accounts.models import (
    AccountPolicy,
    EvidenceHandover,
    EvidenceRequest,
    EvidenceState,
    Role,
    User,
    UserSession,
)
from callscope.accounts.onboarding import one_time_password
from callscope.store import audit
from callscope.store.models import Call, LegalHold, Recording

End = UserSession.End

# -- staff administration -----------------------------------------------------------------


def _manager(acting_user: User) -> None:
    if not (acting_user.is_manager and acting_user.is_active):
        raise ActionRefused("not_manager")


def _operator(user: User) -> None:
    if user.role != Role.OPERATOR:
        raise ActionRefused("not_operator")


def _record(action: str, acting_user: User | None, address: str, user: User, **detail: Any) -> None:
    audit.record(
        action, actor=acting_user, address=address, target=f"user:{user.username}", detail=detail
    )


def do_create_operator(
    username: str, display_name: str, *, acting_user: User, address: str
) -> tuple[User, str]:
    """A new operator account (not yet designated) and its one-time password."""
    _manager(acting_user)
    if not username.strip():
        raise ActionRefused("missing_field")
    password = one_time_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username.strip(), password=password)
        user.role = Role.OPERATOR
        user.display_name = display_name.strip()
        user.must_change_password = True
        user.save(update_fields=["role", "display_name", "must_change_password"])
        _record("user_create", acting_user, address, user, role=user.role)
    return user, password


def do_designate(user: User, *, acting_user: User, address: str) -> None:
    """Designate an operator (管理補助者の指定); they still need a recorded training."""
    _manager(acting_user)
    _operator(user)
    with transaction.atomic():
        user.designated_at = timezone.now()
        user.designated_by = acting_user
        user.save(update_fields=["designated_at", "designated_by"])
        _record("designation_grant", acting_user, address, user)


def do_revoke_designation(user: User, *, acting_user: User, address: str) -> int:
    """End a designation and every session of the user at once; returns sessions ended."""
    _manager(acting_user)
    _operator(user)
    with transaction.atomic():
        user.designated_at = None
        user.designated_by = None
        user.save(update_fields=["designated_at", "designated_by"])
        _record("designation_revoke", acting_user, address, user)
        return sessions.end_sessions(user, End.REVOKED, address=address)


def do_record_training(
    user: User, trained_on: dt.date | None, *, acting_user: User, address: str
) -> None:
    """Record (or clear) the training date; clearing it ends the user's sessions."""
    _manager(acting_user)
    _operator(user)
    with transaction.atomic():
        previous = user.trained_on
        user.trained_on = trained_on
        user.save(update_fields=["trained_on"])
        _record(
            "training_record",
            acting_user,
            address,
            user,
            trained_on=trained_on.isoformat() if trained_on else None,
            previous=previous.isoformat() if previous else None,
        )
        if trained_on is None:
            sessions.end_sessions(user, End.REVOKED, address=address)


def do_set_rights(
    user: User, *, can_listen: bool, can_see_numbers: bool, acting_user: User, address: str
) -> None:
    """Grant or withdraw the audio right and the full-number right."""
    _manager(acting_user)
    _operator(user)
    with transaction.atomic():
        before = {"can_listen": user.can_listen, "can_see_numbers": user.can_see_numbers}
        user.can_listen, user.can_see_numbers = can_listen, can_see_numbers
        user.save(update_fields=["can_listen", "can_see_numbers"])
        after = {"can_listen": can_listen, "can_see_numbers": can_see_numbers}
        if before != after:
            _record("right_change", acting_user, address, user, before=before, after=after)


def do_set_totp_required(user: User, required: bool, *, acting_user: User, address: str) -> None:
    _manager(acting_user)
    with transaction.atomic():
        user.totp_required = required
        user.save(update_fields=["totp_required"])
        _record("totp_requirement", acting_user, address, user, required=required)


def do_reset_totp(user: User, *, acting_user: User, address: str) -> None:
    """Forget a user's second factor (lost phone); they enrol again at the next log-in."""
    _manager(acting_user)
    with transaction.atomic():
        user.totp_secret, user.totp_confirmed_at, user.totp_last_step = "", None, None
        user.save(update_fields=["totp_secret", "totp_confirmed_at", "totp_last_step"])
        _record("totp_reset", acting_user, address, user)
        sessions.end_sessions(user, End.ENDED, address=address)


def do_set_policy(*, totp_required_for_all: bool, acting_user: User, address: str) -> None:
    """Change the security policy the manager controls (audited as a setting change)."""
    _manager(acting_user)
    with transaction.atomic():
        policy = AccountPolicy.current()
        before = policy.totp_required_for_all
        policy.totp_required_for_all = totp_required_for_all
        policy.updated_at, policy.updated_by = timezone.now(), acting_user
        policy.save()
        audit.record(
            "setting_change",
            actor=acting_user,
            address=address,
            target="setting:totp_required_for_all",
            detail={"before": before, "after": totp_required_for_all},
        )


def do_set_active(user: User, active: bool, *, acting_user: User, address: str) -> int:
    """Enable or disable an account; disabling ends all its sessions at once."""
    _manager(acting_user)
    if user.pk == acting_user.pk:
        raise ActionRefused("self")
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        _record("account_enable" if active else "account_disable", acting_user, address, user)
        if active:
            return 0
        return sessions.end_sessions(user, End.DISABLED, address=address)


def do_issue_password(user: User, *, acting_user: User, address: str) -> str:
    """A new one-time password (forgotten password); ends the user's sessions."""
    _manager(acting_user)
    if user.pk == acting_user.pk:
        raise ActionRefused("self")
    password = one_time_password()
    with transaction.atomic():
        user.set_password(password)
        user.must_change_password = True
        user.password_changed_at = timezone.now()
        user.save(update_fields=["password", "must_change_password", "password_changed_at"])
        _record("password_reset", acting_user, address, user)
        sessions.end_sessions(user, End.PASSWORD, address=address)
    return password


def do_lift_lockout(username: str, *, acting_user: User, address: str) -> int:
    """Lift the django-axes lock of a user name (all addresses); returns attempts removed."""
    _manager(acting_user)
    with transaction.atomic():
        removed = int(axes_reset(username=username))
        audit.record(
            "lockout_lifted",
            actor=acting_user,
            address=address,
            target=f"user:{username}",
            detail={"attempts_removed": removed},
        )
    return removed


def do_end_session(row: UserSession, *, acting_user: User, address: str) -> bool:
    """End one session of any user now (the manager's session page)."""
    _manager(acting_user)
    with transaction.atomic():
        closed = sessions.close(row, End.ENDED, now=timezone.now(), address=address)
    sessions.delete_django_sessions([row.session_key])
    return closed


def do_create_manager(username: str, *, acting_user: User, address: str) -> tuple[User, str]:
    """The installation superuser creates the first manager (only while none is active)."""
    if acting_user.role != Role.INSTALLER or not acting_user.is_active:
        raise ActionRefused("not_installer")
    if User.objects.filter(role=Role.MANAGER, is_active=True).exists():
        raise ActionRefused("manager_exists")
    if not username.strip():
        raise ActionRefused("missing_field")
    password = one_time_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username.strip(), password=password)
        user.role, user.must_change_password = Role.MANAGER, True
        user.save(update_fields=["role", "must_change_password"])
        _record("manager_create", acting_user, address, user)
    return user, password


# -- evidence workflow ---------------------------------------------------------------------

TRANSITIONS: dict[EvidenceState, dict[str, EvidenceState]] = {
    EvidenceState.REQUESTED: {
        "approve": EvidenceState.APPROVED,
        "reject": EvidenceState.REJECTED,
    },
    EvidenceState.APPROVED: {
        "export": EvidenceState.EXPORTED,
        "release": EvidenceState.RELEASED,
    },
    EvidenceState.EXPORTED: {
        "export": EvidenceState.EXPORTED,
        "handover": EvidenceState.HANDED_OVER,
        "release": EvidenceState.RELEASED,
    },
    EvidenceState.HANDED_OVER: {
        "export": EvidenceState.HANDED_OVER,
        "handover": EvidenceState.HANDED_OVER,
        "release": EvidenceState.RELEASED,
    },
    EvidenceState.REJECTED: {},
    EvidenceState.RELEASED: {},
}


def allowed(request: EvidenceRequest, step: str) -> bool:
    return step in TRANSITIONS[request.state]


def _advance(request: EvidenceRequest, step: str) -> EvidenceState:
    """Lock the request row, re-read its state and return the state ``step`` leads to."""
    fresh = EvidenceRequest.objects.select_for_update().get(pk=request.pk)
    request.status = fresh.status
    following = TRANSITIONS[fresh.state].get(step)
    if following is None:
        raise ActionRefused("state")
    return following


def _evidence_audit(
    action: str, request: EvidenceRequest, acting_user: User, address: str, **detail: Any
) -> None:
    audit.record(
        action,
        actor=acting_user,
        address=address,
        target=f"evidence:{request.pk}",
        detail={"call": request.call_id, "case_reference": request.case_reference, **detail},
    )


def _has_audio(recording: Recording | None) -> bool:
    return (
        recording is not None
        and recording.deleted_at is None
        and recording.wrapped_key is not None
        and bool(recording.storage_key)
    )


def do_request_evidence(
    call: Call, *, reason: str, case_reference: str, acting_user: User, address: str
) -> EvidenceRequest:
    """An operator (or manager) asks for one call's recording to be kept and released."""
    if not acting_user.is_eligible:
        raise ActionRefused("not_eligible")
    if not reason.strip() or not case_reference.strip():
        raise ActionRefused("missing_field")
    if not _has_audio(Recording.objects.filter(call=call).first()):
        raise ActionRefused("no_audio")
    with transaction.atomic():
        request = EvidenceRequest.objects.create(
            call=call,
            reason=reason.strip(),
            case_reference=case_reference.strip(),
            requested_by=acting_user,
        )
        _evidence_audit("evidence_request", request, acting_user, address, reason=request.reason)
    return request


def _decide(request: EvidenceRequest, acting_user: User) -> None:
    _manager(acting_user)
    if request.requested_by_id == acting_user.pk:
        raise ActionRefused("own_request")


def do_approve_evidence(
    request: EvidenceRequest, *, acting_user: User, address: str, note: str = ""
) -> LegalHold:
    """Approve a request (never one's own): places a legal hold on the recording."""
    _decide(request, acting_user)
    with transaction.atomic():
        following = _advance(request, "approve")
        # Lock the recording: retention marks deletion under the same lock (store.retention).
        recording = Recording.objects.select_for_update().filter(call_id=request.call_id).first()
        if not _has_audio(recording):
            raise ActionRefused("no_audio")
        assert recording is not None
        hold = LegalHold.objects.create(
            recording=recording,
            reason=request.reason,
            case_reference=request.case_reference,
            placed_by=acting_user,
        )
        request.status, request.hold = following, hold
        request.decided_by, request.decided_at = acting_user, timezone.now()
        request.decision_note = note.strip()
        request.save(update_fields=["status", "hold", "decided_by", "decided_at", "decision_note"])
        _evidence_audit(
            "evidence_approve", request, acting_user, address, note=request.decision_note
        )
        audit.record(
            "hold_place",
            actor=acting_user,
            address=address,
            target=f"hold:{hold.pk}",
            detail={"recording": recording.pk, "call": request.call_id, "evidence": request.pk},
        )
    return hold


def do_reject_evidence(
    request: EvidenceRequest, *, acting_user: User, address: str, note: str = ""
) -> None:
    _decide(request, acting_user)
    with transaction.atomic():
        request.status = _advance(request, "reject")
        request.decided_by, request.decided_at = acting_user, timezone.now()
        request.decision_note = note.strip()
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        _evidence_audit(
            "evidence_reject", request, acting_user, address, note=request.decision_note
        )


def do_export_evidence(
    request: EvidenceRequest,
    *,
    acting_user: User,
    address: str,
    plaintext: Callable[[Recording], bytes] = read_plaintext,
) -> EvidencePackage:
    """Build the evidence package (decrypted audio, call record, SHA-256 manifest).

    Only the manager or the requesting user, only while the hold is active. The package is
    built first (decryption can take a moment) and recorded in a short transaction.
    """
    if not (
        acting_user.is_eligible
        and (acting_user.is_manager or acting_user.pk == request.requested_by_id)
    ):
        raise ActionRefused("not_requester")
    if not allowed(request, "export"):
        raise ActionRefused("state")
    hold = request.hold
    if hold is None or hold.released_at is not None:
        raise ActionRefused("hold_released")
    recording = hold.recording
    if not _has_audio(recording):
        raise ActionRefused("no_audio")
    package = build_package(
        request, request.call, audio=plaintext(recording), exported_by=acting_user
    )
    with transaction.atomic():
        request.status = _advance(request, "export")
        request.exported_at, request.package_sha256 = timezone.now(), package.sha256
        request.save(update_fields=["status", "exported_at", "package_sha256"])
        _evidence_audit(
            "evidence_export",
            request,
            acting_user,
            address,
            package=package.name,
            package_sha256=package.sha256,
            manifest=package.manifest,
        )
    return package


def do_record_handover(
    request: EvidenceRequest,
    *,
    recipient: str,
    handed_over_on: dt.date,
    medium: str,
    handed_over_by: str,
    acting_user: User,
    address: str,
) -> EvidenceHandover:
    """Record that the exported package was handed over (to whom, when, how, by whom)."""
    _manager(acting_user)
    if not (recipient.strip() and medium.strip() and handed_over_by.strip()):
        raise ActionRefused("missing_field")
    with transaction.atomic():
        request.status = _advance(request, "handover")
        handover = EvidenceHandover.objects.create(
            request=request,
            recipient=recipient.strip(),
            handed_over_on=handed_over_on,
            medium=medium.strip(),
            handed_over_by=handed_over_by.strip(),
            package_sha256=request.package_sha256,
            recorded_by=acting_user,
        )
        request.save(update_fields=["status"])
        _evidence_audit(
            "evidence_handover",
            request,
            acting_user,
            address,
            recipient=handover.recipient,
            date=handed_over_on.isoformat(),
            medium=handover.medium,
            handed_over_by=handover.handed_over_by,
            package_sha256=handover.package_sha256,
        )
    return handover


def do_release_hold(hold: LegalHold, *, acting_user: User, address: str) -> None:
    """Release a legal hold when the case closes; its requests end as ``released``."""
    _manager(acting_user)
    with transaction.atomic():
        fresh = LegalHold.objects.select_for_update().get(pk=hold.pk)
        if fresh.released_at is not None:
            raise ActionRefused("hold_released")
        hold.released_at, hold.released_by = timezone.now(), acting_user
        hold.save(update_fields=["released_at", "released_by"])
        for request in EvidenceRequest.objects.filter(hold=hold):
            if allowed(request, "release"):
                request.status = _advance(request, "release")
                request.save(update_fields=["status"])
                _evidence_audit("evidence_release", request, acting_user, address)
        audit.record(
            "hold_release",
            actor=acting_user,
            address=address,
            target=f"hold:{hold.pk}",
            detail={"recording": hold.recording_id, "case_reference": hold.case_reference},
        )
