"""Users and roles, designation, sessions, password history and the evidence workflow.

The manager (管理責任者) designates operators (管理補助者); an installation superuser exists
only to create the first manager. Roles are a field, not Django groups, because the city's
rules name exactly these roles and every permission check reads them.

An operator may use the system only while designated and with a recorded training date
(`User.is_eligible`); listening to audio and seeing full phone numbers are separate rights the
manager grants. Every change to these fields goes through a `do_*` action in
`callscope.accounts.actions`, which writes the audit row in the same transaction.
"""

from __future__ import annotations

import enum
import logging

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from callscope.accounts import sealing

log = logging.getLogger(__name__)


class Role(models.TextChoices):
    MANAGER = "manager", _("Manager")
    OPERATOR = "operator", _("Operator")
    INSTALLER = "installer", _("Installation superuser")


class User(AbstractUser):
    """A person allowed to log in to the console."""

    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)
    must_change_password = models.BooleanField(_("must change password"), default=True)
    password_changed_at = models.DateTimeField(_("password changed at"), default=timezone.now)

    display_name = models.CharField(_("name"), max_length=150, blank=True)
    designated_at = models.DateTimeField(_("designated at"), null=True, blank=True)
    designated_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trained_on = models.DateField(_("training date"), null=True, blank=True)
    can_listen = models.BooleanField(_("may listen to audio"), default=False)
    can_see_numbers = models.BooleanField(_("may see full phone numbers"), default=False)
    totp_required = models.BooleanField(_("second factor required"), default=False)
    # sealed (callscope.accounts.sealing): read and set through totp_key / set_totp_key
    totp_secret = models.CharField(max_length=160, blank=True)
    totp_confirmed_at = models.DateTimeField(null=True, blank=True)
    # RFC 6238 5.2: a code is accepted once; the last accepted time step is remembered.
    totp_last_step = models.BigIntegerField(null=True, blank=True)
    failed_logins = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name or self.username

    def _totp_context(self) -> str:
        return f"user:{self.pk}:totp"

    def totp_key(self) -> str:
        """The TOTP secret in clear ("" when not enrolled, or when the key that sealed it is
        no longer configured: then no code matches until the second factor is reset)."""
        try:
            return sealing.unseal(self.totp_secret, self._totp_context())
        except sealing.SealError:
            log.warning("TOTP secret of user %s cannot be opened", self.pk)
            return ""

    def set_totp_key(self, secret: str) -> None:
        """Keep ``secret`` sealed (saved by the caller, with ``totp_secret``)."""
        if secret and self.pk is None:
            raise ValueError("a TOTP secret is sealed for a saved user")
        self.totp_secret = sealing.seal(secret, self._totp_context())

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR

    @property
    def is_designated(self) -> bool:
        return self.designated_at is not None

    @property
    def is_eligible(self) -> bool:
        """May use the console: an active manager, or a designated and trained operator."""
        if not self.is_active:
            return False
        if self.role == Role.MANAGER:
            return True
        return self.role == Role.OPERATOR and self.is_designated and self.trained_on is not None

    @property
    def may_listen(self) -> bool:
        return self.is_eligible and (self.is_manager or self.can_listen)

    @property
    def may_see_numbers(self) -> bool:
        return self.is_eligible and (self.is_manager or self.can_see_numbers)


class PasswordHistory(models.Model):
    """Hashes of a user's earlier passwords (no reuse of the last N)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_history")
    password = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="password_history_recent")]


class UserSession(models.Model):
    """Index of a user's server-side sessions: ends them all at once, detects the idle lock.

    Written at log-in; `session_key` follows Django's key rotation; `last_seen` is refreshed
    at most once a minute. A row with `ended_at` unset whose Django session has expired is an
    idle lock (or the absolute lifetime) noticed on the next request or by the sweep.
    """

    class End(models.TextChoices):
        LOGOUT = "logout", _("Logged out")
        IDLE = "idle_lock", _("Idle lock")
        EXPIRED = "session_expired", _("Session lifetime reached")
        ENDED = "session_ended", _("Ended by the manager")
        REVOKED = "designation_revoked", _("Designation revoked")
        DISABLED = "account_disabled", _("Account disabled")
        PASSWORD = "password_changed", _("Password changed")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=24, choices=End.choices, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "ended_at"], name="user_session_open"),
            models.Index(fields=["ended_at", "last_seen"], name="user_session_idle"),
        ]

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class AccountPolicy(models.Model):
    """Security settings the manager changes in the console (one row, pk=1)."""

    totp_required_for_all = models.BooleanField(
        _("second factor required for everyone"), default=False
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    @classmethod
    def current(cls) -> AccountPolicy:
        policy, _created = cls.objects.get_or_create(pk=1)
        return policy


class AuditAnchor(models.Model):
    """Where the audit chain starts after old entries were removed by audit retention.

    `entry_hash` is the hash of the last removed entry: the first kept entry must chain from
    it, so `callscope audit verify` still checks every kept link.
    """

    sequence = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    removed = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["-sequence"], name="audit_anchor_latest")]


class EvidenceState(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPORTED = "exported"
    HANDED_OVER = "handed_over"
    RELEASED = "released"


class EvidenceRequest(models.Model):
    """An operator's request to release one call's recording as evidence (不当要求行為)."""

    class Status(models.TextChoices):
        REQUESTED = EvidenceState.REQUESTED, _("Waiting for approval")
        APPROVED = EvidenceState.APPROVED, _("Approved (on hold)")
        REJECTED = EvidenceState.REJECTED, _("Rejected")
        EXPORTED = EvidenceState.EXPORTED, _("Exported")
        HANDED_OVER = EvidenceState.HANDED_OVER, _("Handed over")
        RELEASED = EvidenceState.RELEASED, _("Hold released")

    call = models.ForeignKey("store.Call", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED
    )
    reason = models.TextField(_("reason"))
    case_reference = models.CharField(_("case reference"), max_length=100)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(_("note"), blank=True)
    hold = models.ForeignKey(
        "store.LegalHold", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exported_at = models.DateTimeField(null=True, blank=True)
    package_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("evidence request")
        indexes = [models.Index(fields=["status", "-requested_at"], name="evidence_status")]

    def __str__(self) -> str:
        return self.case_reference

    @property
    def state(self) -> EvidenceState:
        return EvidenceState(self.status)


class EvidenceHandover(models.Model):
    """The record that an exported package left the office: to whom, when, how, by whom."""

    request = models.ForeignKey(EvidenceRequest, on_delete=models.CASCADE, related_name="handovers")
    recipient = models.CharField(_("recipient"), max_length=200)
    handed_over_on = models.DateField(_("date"))
    medium = models.CharField(_("medium"), max_length=200)
    handed_over_by = models.CharField(_("handed over by"), max_length=150)
    package_sha256 = models.CharField(max_length=64, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)
