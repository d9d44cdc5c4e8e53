"""Request policies that apply to every console page.

`NetworkAllowListMiddleware` refuses clients outside the configured networks before any
session or database work is done. `SessionPolicyMiddleware` enforces the password
obligations (first-login change, periodic change). The session lifetime, idle lock and
revocation are `callscope.accounts.middleware.AccountPolicyMiddleware`'s, which runs first.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from callscope.accounts.access import client_address


class NetworkAllowListMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.networks = settings.CALLSCOPE_ALLOWED_NETWORKS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            address = ipaddress.ip_address(client_address(request))
        except ValueError:
            return HttpResponseForbidden(_("Access from this network is not allowed."))
        if not any(address in network for network in self.networks):
            return HttpResponseForbidden(_("Access from this network is not allowed."))
        return self.get_response(request)


class SessionPolicyMiddleware:
    #: paths a user with a password obligation may still reach
    EXEMPT_NAMES = ("password_change", "logout", "login")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            response = self._enforce(request)
            if response is not None:
                return response
        return self.get_response(request)

    def _enforce(self, request: HttpRequest) -> HttpResponse | None:
        now = timezone.now()
        exempt = {reverse(name) for name in self.EXEMPT_NAMES}
        if request.path in exempt or request.path.startswith(settings.STATIC_URL):
            return None
        if password_change_due(request.user, now):
            return redirect("password_change")
        return None


def password_change_due(user: object, now: dt.datetime) -> bool:
    """True when the user must change the password before using the console."""
    if getattr(user, "must_change_password", False):
        return True
    max_age = settings.CALLSCOPE_PASSWORD_MAX_AGE_DAYS
    changed = getattr(user, "password_changed_at", None)
    return bool(max_age and changed and now - changed > dt.timedelta(days=max_age))
