"""Optional second factor: TOTP (RFC 6238) with pyotp.

A user enrolled in TOTP is always asked for a code at log-in; the manager can require
enrolment per user or for everyone (`AccountPolicy`). Each code is accepted once: the last
accepted time step is stored and older or equal steps are refused (RFC 6238 5.2).
"""

from __future__ import annotations

import datetime as dt
import hmac

import pyotp

from callscope.accounts.models import AccountPolicy, User

ISSUER = "callscope"
STEP_SECONDS = 30  # RFC 6238 5.2 recommended time step
WINDOW = 1  # RFC 6238 5.2: accept one step of clock drift either way


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app takes (typed in or scanned)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.get_username(), issuer_name=ISSUER)


def required_for(user: User) -> bool:
    """True when the user must pass a second factor at log-in (required or enrolled)."""
    if user.totp_confirmed_at is not None:
        return True
    return user.totp_required or AccountPolicy.current().totp_required_for_all


def matching_step(secret: str, code: str, *, at: dt.datetime, after: int | None) -> int | None:
    """The time step ``code`` belongs to (within the drift window), if newer than ``after``."""
    code = "".join(code.split())
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(at.timestamp()) // STEP_SECONDS
    for step in range(current - WINDOW, current + WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_and_consume(user: User, code: str, *, at: dt.datetime, secret: str = "") -> bool:
    """Check a code for the user's (or a pending enrolment's) secret and mark its step used."""
    step = matching_step(secret or user.totp_key(), code, at=at, after=user.totp_last_step)
    if step is None:
        return False
    updated = User.objects.filter(pk=user.pk)
    if user.totp_last_step is None:
        updated = updated.filter(totp_last_step__isnull=True)
    else:
        updated = updated.filter(totp_last_step=user.totp_last_step)
    # Compare-and-set: two requests racing with the same code cannot both succeed.
    if updated.update(totp_last_step=step) != 1:
        return False
    user.totp_last_step = step
    return True
