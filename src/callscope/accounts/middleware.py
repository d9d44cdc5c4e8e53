"""Per-request account policy: session index, idle-lock audit, designation and training.

Runs after authentication and messages, before `console.middleware.SessionPolicyMiddleware`.

- Anonymous request with the cookie of an indexed session: the session expired; audit the
  idle lock (or lifetime end) once and tell the user why they see the log-in page.
- Authenticated request: the indexed session must still be open (revocation closes it even
  if a Django session row were to survive) and younger than the absolute lifetime.
- An operator without designation or training, or a disabled account, is refused every
  page with a Japanese explanation and logged out. The installation superuser reaches only
  the page that creates the first manager.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from callscope.accounts import sessions
from callscope.accounts.access import client_address
from callscope.accounts.models import Role, User, UserSession
from callscope.accounts.signals import END_REASON_ATTR

End = UserSession.End

#: what the installation superuser may reach
INSTALLER_PAGES = ("accounts:install_manager", "logout", "password_change")

_NOTICES: dict[str, str] = {
    End.IDLE: gettext_noop(
        "The screen was locked after a period of inactivity. Please log in again."
    ),
    End.EXPIRED: gettext_noop("Your session has ended. Please log in again."),
    End.ENDED: gettext_noop("Your session was ended. Please log in again."),
}


class AccountPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        now = timezone.now()
        user = request.user
        if not user.is_authenticated:
            reason = sessions.notice_expired(request, now, address=client_address(request))
            if reason is not None:
                messages.info(request, _(_NOTICES.get(reason, _NOTICES[End.ENDED])))
            return self.get_response(request)
        assert isinstance(user, User)
        row = sessions.current(request)
        if row is None:
            row = sessions.open_session(request, user, address=client_address(request))
        refusal = self._refuse(request, user, row, now)
        if refusal is not None:
            return refusal
        sessions.touch(row, now)
        response = self.get_response(request)
        if request.user.is_authenticated:
            sessions.follow_key(request, row)
        return response

    def _refuse(
        self, request: HttpRequest, user: User, row: UserSession, now: dt.datetime
    ) -> HttpResponse | None:
        if row.ended_at is not None:
            return self._end(request, None, _NOTICES[End.ENDED])
        if now - row.created_at >= sessions.max_lifetime():
            sessions.close(row, End.EXPIRED, now=now, address=client_address(request))
            return self._end(request, End.EXPIRED, _NOTICES[End.EXPIRED])
        if user.role == Role.INSTALLER:
            allowed = {reverse(name) for name in INSTALLER_PAGES}
            if request.path in allowed:
                return None
            return render(request, "accounts/refused.html", {"installer": True}, status=403)
        if not user.is_eligible:
            sessions.close(row, End.REVOKED, now=now, address=client_address(request))
            setattr(request, END_REASON_ATTR, End.REVOKED)
            logout(request)
            return render(request, "accounts/refused.html", {"installer": False}, status=403)
        return None

    @staticmethod
    def _end(request: HttpRequest, reason: str | None, notice: str) -> HttpResponse:
        if reason is not None:
            setattr(request, END_REASON_ATTR, reason)
        logout(request)
        messages.info(request, _(notice))
        return redirect("login")
