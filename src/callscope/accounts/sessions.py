"""The per-user session index: end every session of a user at once, and audit idle locks.

Django keeps sessions server-side (``SESSION_ENGINE``: `callscope.accounts.session_store`,
database rows) with a sliding expiry of ``CALLSCOPE_IDLE_TIMEOUT_MINUTES`` (SESSION_COOKIE_AGE,
written at most once a minute). That expiry is silent, so each log-in also opens a
`UserSession` row holding the session key and `last_seen`. Two things read it:

- Revocation: `end_sessions(user, reason)` deletes the user's Django sessions by key (no scan
  of the session table) and closes the rows; the next request of any of them is anonymous.
- Idle lock: when a browser presents a session cookie whose row is still open but whose
  Django session has expired, `notice_expired` closes the row and audits ``idle_lock`` (or
  ``session_expired`` past the absolute lifetime). `sweep` does the same for sessions nobody
  came back to, from the scheduler, so every idle lock is audited.
"""

from __future__ import annotations

import datetime as dt
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from callscope.accounts.models import User, UserSession
from callscope.store import audit

INDEX_KEY = "callscope_session"
#: last_seen is refreshed at most this often (it only has to be finer than the idle timeout)
REFRESH = dt.timedelta(seconds=60)

End = UserSession.End
#: session ends audited under their own action; the others are "session_ended" + reason
_OWN_ACTIONS = frozenset({End.LOGOUT, End.IDLE, End.EXPIRED})


def idle_timeout() -> dt.timedelta:
    return dt.timedelta(minutes=settings.CALLSCOPE_IDLE_TIMEOUT_MINUTES)


def max_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=settings.CALLSCOPE_SESSION_MAX_HOURS)


def open_session(request: HttpRequest, user: User, *, address: str) -> UserSession:
    """Index the session just created by `django.contrib.auth.login`."""
    if request.session.session_key is None:
        request.session.save()
    key = request.session.session_key or ""
    now = timezone.now()
    UserSession.objects.filter(session_key=key).delete()  # a reused key is a new session
    row = UserSession.objects.create(
        user=user,
        session_key=key,
        created_at=now,
        last_seen=now,
        address=address,
        user_agent=str(request.META.get("HTTP_USER_AGENT", ""))[:200],
    )
    request.session[INDEX_KEY] = row.pk
    return row


def current(request: HttpRequest) -> UserSession | None:
    pk = request.session.get(INDEX_KEY)
    if pk is None:
        return None
    return UserSession.objects.filter(pk=pk).select_related("user").first()


def touch(row: UserSession, now: dt.datetime) -> None:
    if now - row.last_seen >= REFRESH:
        row.last_seen = now
        UserSession.objects.filter(pk=row.pk).update(last_seen=now)


def follow_key(request: HttpRequest, row: UserSession) -> None:
    """Keep the index on the session key after Django rotated it (log-in, password change)."""
    key = request.session.session_key
    if key and key != row.session_key and row.ended_at is None:
        UserSession.objects.filter(pk=row.pk, ended_at__isnull=True).update(session_key=key)
        row.session_key = key


def delete_django_sessions(keys: list[str]) -> None:
    """Delete Django sessions by key (whatever the session engine)."""
    engine = import_module(settings.SESSION_ENGINE)
    for key in keys:
        engine.SessionStore(session_key=key).delete()


def close(row: UserSession, reason: str, *, now: dt.datetime, address: str = "") -> bool:
    """Mark one indexed session ended and audit it; False if it was already closed."""
    closed = UserSession.objects.filter(pk=row.pk, ended_at__isnull=True).update(
        ended_at=now, end_reason=reason
    )
    if not closed:
        return False
    row.ended_at, row.end_reason = now, reason
    audit.record(
        reason if reason in _OWN_ACTIONS else "session_ended",
        actor=row.user,
        address=address or row.address,
        target=f"session:{row.pk}",
        detail={
            "started": row.created_at.isoformat(),
            "last_seen": row.last_seen.isoformat(),
            "reason": reason,
        },
    )
    return True


def end_sessions(
    user: User, reason: str, *, keep: UserSession | None = None, address: str = ""
) -> int:
    """End all open sessions of ``user`` now (delete them server-side) except ``keep``;
    returns the count."""
    now = timezone.now()
    query = UserSession.objects.filter(user=user, ended_at__isnull=True).select_related("user")
    if keep is not None:
        query = query.exclude(pk=keep.pk)
    rows = list(query)
    with transaction.atomic():
        for row in rows:
            close(row, reason, now=now, address=address)
    # After the rows are closed: a request racing with this sees its session gone.
    delete_django_sessions([row.session_key for row in rows])
    return len(rows)


def classify(row: UserSession, now: dt.datetime) -> str:
    """Why an indexed session is no longer valid."""
    if now - row.created_at >= max_lifetime():
        return End.EXPIRED
    if now - row.last_seen >= idle_timeout():
        return End.IDLE
    return End.ENDED


def notice_expired(request: HttpRequest, now: dt.datetime, *, address: str) -> str | None:
    """On an anonymous request: was the cookie's session just locked? Audit it once."""
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    row = UserSession.objects.filter(session_key=key, ended_at__isnull=True).first()
    if row is None:
        return None
    reason = classify(row, now)
    close(row, reason, now=now, address=address)
    return reason


def sweep(now: dt.datetime, *, limit: int = 1000) -> int:
    """Close indexed sessions whose Django session has expired or vanished; returns the count."""
    stale = list(
        UserSession.objects.filter(ended_at__isnull=True, last_seen__lt=now - idle_timeout())
        .select_related("user")
        .order_by("last_seen")[:limit]
    )
    stale += list(
        UserSession.objects.filter(ended_at__isnull=True, created_at__lt=now - max_lifetime())
        .exclude(pk__in=[row.pk for row in stale])
        .select_related("user")[:limit]
    )
    alive = set(
        Session.objects.filter(
            session_key__in=[row.session_key for row in stale], expire_date__gt=now
        ).values_list("session_key", flat=True)
    )
    closed = 0
    for row in stale:
        reason = classify(row, now)
        if row.session_key in alive and reason != End.EXPIRED:
            continue
        closed += close(row, reason, now=now)
        if row.session_key in alive:
            delete_django_sessions([row.session_key])
    return closed
