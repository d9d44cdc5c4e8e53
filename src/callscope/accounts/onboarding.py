"""Creating the first manager account with a one-time password."""

from __future__ import annotations

import secrets

from django.db import transaction

from callscope.accounts.models import Role, User

# Unambiguous characters for a password read off a terminal and typed once.
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def one_time_password(length: int = 16) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def create_manager(username: str) -> tuple[User, str]:
    """Create a manager who must change the printed one-time password at first login."""
    password = one_time_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password)
        user.role = Role.MANAGER
        user.must_change_password = True
        user.save(update_fields=["role", "must_change_password"])
    return user, password


def ensure_first_manager(username: str = "manager") -> tuple[User, str] | None:
    """Create the first manager when none exists; returns (user, password) or None."""
    if User.objects.filter(role=Role.MANAGER).exists():
        return None
    return create_manager(username)
