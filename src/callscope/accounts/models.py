"""Users and roles.

The manager (管理責任者) designates operators (管理補助者); an installation superuser exists
only to create the first manager. Roles are a field, not Django groups, because the city's
rules name exactly these roles and every permission check reads them.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    MANAGER = "manager", _("Manager")
    OPERATOR = "operator", _("Operator")
    INSTALLER = "installer", _("Installation superuser")


class User(AbstractUser):
    """A person allowed to log in to the console."""

    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)
    must_change_password = models.BooleanField(_("must change password"), default=True)
    password_changed_at = models.DateTimeField(_("password changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER
