"""Log-in with the optional second factor, password change, TOTP enrolment, first manager.

Log-in is two steps when the user has (or must have) TOTP: the password step stores a
pending log-in in the session (a new session key, five minutes); only a valid code calls
`django.contrib.auth.login`, so nothing behind ``@login_required`` is reachable with the
password alone. Wrong codes count as failed log-ins for django-axes (same lockout).
"""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from callscope.accounts import sealing, sessions, totp
from callscope.accounts.access import audit, client_address
from callscope.accounts.actions import do_create_manager
from callscope.accounts.errors import ActionRefused
from callscope.accounts.forms import NOT_DESIGNATED, LoginForm, ManagerForm, TotpForm
from callscope.accounts.models import Role, User, UserSession

PENDING_KEY = "callscope_pending_login"
PENDING_SECONDS = 300


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if form is not None and form.has_error(NON_FIELD_ERRORS, "not_designated"):
            context["refused"] = NOT_DESIGNATED
        return context

    def form_valid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        user = form.get_user()
        if not totp.required_for(user):
            return super().form_valid(form)
        self.request.session.cycle_key()  # a pending log-in gets a fresh session key
        self.request.session[PENDING_KEY] = {
            "user": user.pk,
            "at": timezone.now().timestamp(),
            "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[-1]),
            "next": self.get_redirect_url(),
        }
        return redirect("login_totp")


def _pending_user(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if timezone.now().timestamp() - float(pending.get("at", 0)) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None
    user_id = pending.get("user")
    if not isinstance(user_id, int):
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    return user, pending


#: session key of a voluntary enrolment's new TOTP key (sealed, as the pending log-in's)
SETUP_KEY = "callscope_totp_secret"


def _enrolment_key(session_value: object, user: User) -> str:
    """The new TOTP key an enrolment keeps in the session, sealed (the session is a database
    row; `callscope.accounts.sealing`): its clear text, or "" when there is none or it no
    longer opens (then a new key is made)."""
    if not isinstance(session_value, str):
        return ""
    try:
        return sealing.unseal(session_value, _enrolment_context(user))
    except sealing.SealError:
        return ""


def _sealed_enrolment_key(secret: str, user: User) -> str:
    return sealing.seal(secret, _enrolment_context(user))


def _enrolment_context(user: User) -> str:
    return f"user:{user.pk}:totp-enrolment"


def login_totp(request: HttpRequest) -> HttpResponse:
    """Second log-in step: a TOTP code (and enrolment, the first time)."""
    found = _pending_user(request)
    if found is None:
        messages.info(request, _("Please log in again."))
        return redirect("login")
    user, pending = found
    enrol = user.totp_confirmed_at is None
    new_key = _enrolment_key(pending.get("secret"), user) if enrol else ""
    if enrol and not new_key:
        new_key = totp.new_secret()
        pending["secret"] = _sealed_enrolment_key(new_key, user)
        request.session[PENDING_KEY] = pending
    form = TotpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        credentials = {"username": user.get_username(), "factor": "totp"}
        if AxesProxyHandler.is_locked(request, credentials):
            request.session.pop(PENDING_KEY, None)
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]
            return redirect("login")
        now = timezone.now()
        if totp.verify_and_consume(user, form.cleaned_data["code"], at=now, secret=new_key):
            return _complete_login(request, user, pending, new_key=new_key)
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        form.add_error("code", _("The code is incorrect."))
        if getattr(request, "axes_locked_out", False):
            request.session.pop(PENDING_KEY, None)
    context: dict[str, Any] = {"form": form, "enrol": enrol}
    if enrol:
        context["secret"] = new_key
        context["uri"] = totp.provisioning_uri(user, new_key)
    return render(request, "accounts/login_totp.html", context)


def _complete_login(
    request: HttpRequest, user: User, pending: dict[str, Any], *, new_key: str
) -> HttpResponse:
    """Log the user in; ``new_key``: the TOTP key enrolled with this log-in, if any."""
    enrolled = bool(new_key)
    request.session.pop(PENDING_KEY, None)
    if enrolled:
        user.set_totp_key(new_key)
        user.totp_confirmed_at = timezone.now()
        user.save(update_fields=["totp_secret", "totp_confirmed_at"])
    auth_login(request, user, backend=pending["backend"])
    if enrolled:
        audit(request, "totp_enrol", target=f"user:{user.get_username()}")
    target = pending.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = ""
    return redirect(target or settings.LOGIN_REDIRECT_URL)


@login_required
def totp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol one's own second factor voluntarily (shown in the account menu)."""
    user = request.user
    assert isinstance(user, User)
    if user.totp_confirmed_at is not None:
        return render(request, "accounts/totp_setup.html", {"enrolled": True})
    secret = _enrolment_key(request.session.get(SETUP_KEY), user)
    if not secret:
        secret = totp.new_secret()
        request.session[SETUP_KEY] = _sealed_enrolment_key(secret, user)
    form = TotpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if totp.verify_and_consume(
            user, form.cleaned_data["code"], at=timezone.now(), secret=secret
        ):
            user.set_totp_key(secret)
            user.totp_confirmed_at = timezone.now()
            user.save(update_fields=["totp_secret", "totp_confirmed_at"])
            request.session.pop(SETUP_KEY, None)
            audit(request, "totp_enrol", target=f"user:{user.get_username()}")
            messages.success(request, _("The second factor is now active."))
            return redirect("accounts:totp_setup")
        form.add_error("code", _("The code is incorrect."))
    context = {
        "enrolled": False,
        "form": form,
        "secret": secret,
        "uri": totp.provisioning_uri(user, secret),
    }
    return render(request, "accounts/totp_setup.html", context)


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change the password, clear the first-login obligation, end the user's other sessions."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("console:home")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        user = form.user
        assert isinstance(user, User)
        user.must_change_password = False
        user.password_changed_at = timezone.now()
        user.save(update_fields=["must_change_password", "password_changed_at"])
        audit(self.request, "password_change", target=f"user:{user.get_username()}")
        sessions.end_sessions(
            user,
            UserSession.End.PASSWORD,
            keep=sessions.current(self.request),
            address=client_address(self.request),
        )
        return response


@login_required
def install_manager(request: HttpRequest) -> HttpResponse:
    """The installation superuser's only page: create the first manager."""
    user = request.user
    if not isinstance(user, User) or user.role != Role.INSTALLER:
        raise PermissionDenied
    form = ManagerForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = do_create_manager(
                form.cleaned_data["username"],
                acting_user=user,
                address=client_address(request),
            )
        except ActionRefused as refused:
            form.add_error(None, _(refused.args[0]))
    exists = User.objects.filter(role=Role.MANAGER, is_active=True).exists()
    return render(
        request,
        "accounts/install_manager.html",
        {"form": form, "created": created, "manager_exists": exists and created is None},
    )
