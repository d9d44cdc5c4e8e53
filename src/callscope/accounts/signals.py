"""Receivers that turn authentication events into audit entries and session-index rows.

Connected in `AccountsConfig.ready`. Log-in, log-out and failures come from
`django.contrib.auth.signals`, lockouts from django-axes; every audit entry, once its
transaction commits, is also written as one JSON line to the ``callscope.audit_trail``
logger (a log file or syslog on another host, see `callscope.accounts.auditsinks`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from callscope.accounts import sessions
from callscope.accounts.access import client_address
from callscope.accounts.auditsinks import LOGGER_NAME
from callscope.accounts.models import User, UserSession
from callscope.store import audit
from callscope.store.models import AuditEntry

trail_log = logging.getLogger(LOGGER_NAME)

#: request attribute naming why a log-out happens (set before calling `logout`)
END_REASON_ATTR = "callscope_end_reason"


@receiver(user_logged_in, dispatch_uid="callscope_login")
def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not isinstance(user, User):
        return
    address = client_address(request)
    previous = UserSession.objects.filter(user=user).order_by("-created_at").first()
    failures = User.objects.filter(pk=user.pk).values_list("failed_logins", flat=True).first()
    row = sessions.open_session(request, user, address=address)
    User.objects.filter(pk=user.pk).update(failed_logins=0)
    audit.record(
        "login",
        actor=user,
        address=address,
        target=f"user:{user.get_username()}",
        detail={"session": row.pk, "failed_before": failures or 0},
    )
    messages.info(request, last_login_message(previous, failures or 0), fail_silently=True)


def last_login_message(previous: UserSession | None, failures: int) -> str:
    """What the user sees after logging in: the previous log-in and failures since then."""
    count = _("Failed log-in attempts since then: %(count)d.") % {"count": failures}
    if previous is None:
        return _("This is your first log-in.") + " " + count
    when = date_format(timezone.localtime(previous.created_at), "DATETIME_FORMAT")
    last = _("Last log-in: %(when)s from %(address)s.") % {
        "when": when,
        "address": previous.address or "-",
    }
    return last + " " + count


@receiver(user_logged_out, dispatch_uid="callscope_logout")
def on_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or user is None:
        return
    row = sessions.current(request)
    if row is None or row.ended_at is not None:
        return
    reason = getattr(request, END_REASON_ATTR, UserSession.End.LOGOUT)
    sessions.close(row, reason, now=timezone.now(), address=client_address(request))


@receiver(user_login_failed, dispatch_uid="callscope_login_failed")
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    User.objects.filter(username=username).update(failed_logins=F("failed_logins") + 1)
    audit.record(
        "login_failed",
        address=client_address(request) if request is not None else "",
        target=f"user:{username}",
        detail={"username": username, "factor": str(credentials.get("factor", "password"))},
    )


@receiver(user_locked_out, dispatch_uid="callscope_locked_out")
def on_locked_out(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    failures = getattr(request, "axes_failures_since_start", None)
    # Axes signals again on every refused attempt during the lock: audit only its start.
    if failures is not None and failures > settings.AXES_FAILURE_LIMIT:
        return
    audit.record(
        "lockout",
        address=ip_address or client_address(request),
        target=f"user:{username or ''}",
        detail={"username": username or "", "failures": failures},
    )


def trail_line(entry: AuditEntry) -> str:
    """One audit entry as the JSON line sent to the log file / syslog copy."""
    return json.dumps(
        {
            "sequence": entry.sequence,
            "at": entry.at.isoformat(timespec="microseconds"),
            "actor_id": entry.actor_id,
            "actor": entry.actor_name,
            "address": entry.address,
            "action": entry.action,
            "target": entry.target,
            "detail": entry.detail,
            "previous_hash": entry.previous_hash,
            "entry_hash": entry.entry_hash,
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )


@receiver(post_save, sender=AuditEntry, dispatch_uid="callscope_audit_copy")
def on_audit_entry(sender: Any, instance: AuditEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    line = trail_line(instance)
    # Only committed entries leave the database: a rolled-back action leaves no copy.
    transaction.on_commit(lambda: trail_log.info(line))
