"""Password policy beyond Django's validators: no reuse of the last N passwords.

Django calls `password_changed` on every validator after a new password is saved
(`AbstractBaseUser.save`), which is where the history is written: every path that sets a
password (the change form, a one-time password from the manager, `createmanager`) is covered.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from callscope.accounts.models import PasswordHistory


class PasswordHistoryValidator:
    """Refuse the current password and the last ``remember`` ones (CALLSCOPE_PASSWORD_HISTORY)."""

    def __init__(self, remember: int | None = None) -> None:
        self._remember = remember

    @property
    def remember(self) -> int:
        if self._remember is not None:
            return self._remember
        return int(settings.CALLSCOPE_PASSWORD_HISTORY)

    def validate(self, password: str, user: Any = None) -> None:
        if user is None or user.pk is None or self.remember == 0:
            return
        earlier = list(
            PasswordHistory.objects.filter(user_id=user.pk)
            .order_by("-created_at", "-id")
            .values_list("password", flat=True)[: self.remember]
        )
        if user.password:
            earlier.append(user.password)
        if any(check_password(password, encoded) for encoded in earlier):
            raise ValidationError(
                _("This password was used recently. Please choose a new one."),
                code="password_reused",
            )

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is None or user.pk is None or not user.password:
            return
        PasswordHistory.objects.create(user_id=user.pk, password=user.password)
        keep = max(self.remember, 1)
        stale = PasswordHistory.objects.filter(user_id=user.pk).order_by("-created_at", "-id")[
            keep:
        ]
        PasswordHistory.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()

    def get_help_text(self) -> str:
        return ngettext(
            "Your password must differ from your last password.",
            "Your password must differ from your last %(count)d passwords.",
            self.remember,
        ) % {"count": self.remember}
