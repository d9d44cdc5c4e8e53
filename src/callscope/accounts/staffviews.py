"""The manager's administration pages: operators (designation, training, rights, second
factor, account state, one-time passwords), lockouts, active sessions and the policy.

Every view starts with `require_manager`; every change goes through a `do_*` action.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from axes.models import AccessAttempt
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from callscope.accounts import actions
from callscope.accounts.access import client_address, require_manager
from callscope.accounts.errors import ActionRefused
from callscope.accounts.forms import FlagForm, OperatorForm, PolicyForm, RightsForm, TrainingForm
from callscope.accounts.models import AccountPolicy, Role, User, UserSession
from callscope.store.models import AuditEntry

HISTORY_LIMIT = 50


def _open_sessions() -> Count:
    return Count("sessions", filter=Q(sessions__ended_at__isnull=True))


@login_required
def operators(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    users = (
        User.objects.filter(role__in=[Role.OPERATOR, Role.MANAGER])
        .annotate(open_sessions=_open_sessions())
        .order_by("role", "username")
    )
    locked = set(_lockouts().values_list("username", flat=True))
    return render(request, "accounts/operators.html", {"users": users, "locked": locked})


@never_cache
@login_required
def operator_new(request: HttpRequest) -> HttpResponse:
    manager = require_manager(request)
    form = OperatorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, password = actions.do_create_operator(
            form.cleaned_data["username"],
            form.cleaned_data["display_name"],
            acting_user=manager,
            address=client_address(request),
        )
        return render(
            request, "accounts/one_time_password.html", {"target": user, "password": password}
        )
    return render(request, "accounts/operator_new.html", {"form": form})


@login_required
def operator_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    require_manager(request)
    target = get_object_or_404(User, pk=user_id, role__in=[Role.OPERATOR, Role.MANAGER])
    history = AuditEntry.objects.filter(target=f"user:{target.username}").order_by("-sequence")
    context = {
        "target": target,
        "training_form": TrainingForm(initial={"trained_on": target.trained_on}),
        "rights_form": RightsForm(
            initial={"can_listen": target.can_listen, "can_see_numbers": target.can_see_numbers}
        ),
        "sessions": target.sessions.filter(ended_at__isnull=True).order_by("-created_at"),
        "locked": _lockouts().filter(username=target.username).exists(),
        "history": history[:HISTORY_LIMIT],
    }
    return render(request, "accounts/operator_detail.html", context)


Run = Callable[[User, dict[str, Any], User, str], str]


def _operator_action(
    request: HttpRequest, user_id: int, form_class: type[forms.Form], run: Run
) -> HttpResponse:
    """POST-only change of one user through a `do_*` action; back to the user's page."""
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    target = get_object_or_404(User, pk=user_id, role__in=[Role.OPERATOR, Role.MANAGER])
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, _("The form has errors; nothing was changed."))
        return redirect("accounts:operator", user_id=target.pk)
    try:
        done = run(target, form.cleaned_data, manager, client_address(request))
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
    else:
        messages.success(request, done)
    return redirect("accounts:operator", user_id=target.pk)


def _designation(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    if data["value"]:
        actions.do_designate(target, acting_user=manager, address=address)
        return _("The operator is designated.")
    ended = actions.do_revoke_designation(target, acting_user=manager, address=address)
    return _("The designation is revoked; %(count)d sessions were ended.") % {"count": ended}


def _training(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    actions.do_record_training(target, data["trained_on"], acting_user=manager, address=address)
    return _("The training date is recorded.")


def _rights(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    actions.do_set_rights(
        target,
        can_listen=data["can_listen"],
        can_see_numbers=data["can_see_numbers"],
        acting_user=manager,
        address=address,
    )
    return _("The rights are saved.")


def _totp(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    actions.do_set_totp_required(target, data["value"], acting_user=manager, address=address)
    return _("The second-factor requirement is saved.")


def _totp_reset(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    actions.do_reset_totp(target, acting_user=manager, address=address)
    return _("The second factor was reset; the user enrols again at the next log-in.")


def _active(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    ended = actions.do_set_active(target, data["value"], acting_user=manager, address=address)
    if data["value"]:
        return _("The account is enabled.")
    return _("The account is disabled; %(count)d sessions were ended.") % {"count": ended}


def _end_all(target: User, data: dict[str, Any], manager: User, address: str) -> str:
    ended = 0
    for row in target.sessions.filter(ended_at__isnull=True):
        ended += actions.do_end_session(row, acting_user=manager, address=address)
    return _("%(count)d sessions were ended.") % {"count": ended}


@login_required
def operator_designation(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, FlagForm, _designation)


@login_required
def operator_training(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, TrainingForm, _training)


@login_required
def operator_rights(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, RightsForm, _rights)


@login_required
def operator_totp(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, FlagForm, _totp)


@login_required
def operator_totp_reset(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, forms.Form, _totp_reset)


@login_required
def operator_active(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, FlagForm, _active)


@login_required
def operator_sessions_end(request: HttpRequest, user_id: int) -> HttpResponse:
    return _operator_action(request, user_id, forms.Form, _end_all)


@never_cache
@login_required
def operator_password(request: HttpRequest, user_id: int) -> HttpResponse:
    """Issue a one-time password (shown once, never stored in a message or cookie)."""
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    target = get_object_or_404(User, pk=user_id, role__in=[Role.OPERATOR, Role.MANAGER])
    try:
        password = actions.do_issue_password(
            target, acting_user=manager, address=client_address(request)
        )
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
        return redirect("accounts:operator", user_id=target.pk)
    return render(
        request, "accounts/one_time_password.html", {"target": target, "password": password}
    )


# -- lockouts, sessions, policy ------------------------------------------------------------


def _lockouts() -> Any:
    since = timezone.now() - dt.timedelta(hours=float(settings.AXES_COOLOFF_TIME))
    return AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=since
    ).order_by("-attempt_time")


@login_required
def lockouts(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    cooloff = dt.timedelta(hours=float(settings.AXES_COOLOFF_TIME))
    rows = [(attempt, attempt.attempt_time + cooloff) for attempt in _lockouts()]
    return render(request, "accounts/lockouts.html", {"rows": rows})


@login_required
def lockout_lift(request: HttpRequest, attempt_id: int) -> HttpResponse:
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    attempt = get_object_or_404(AccessAttempt, pk=attempt_id)
    actions.do_lift_lockout(
        attempt.username or "", acting_user=manager, address=client_address(request)
    )
    messages.success(request, _("The lock of %(user)s was lifted.") % {"user": attempt.username})
    return redirect("accounts:lockouts")


@login_required
def active_sessions(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    rows = (
        UserSession.objects.filter(ended_at__isnull=True)
        .select_related("user")
        .order_by("-last_seen")
    )
    current = request.session.session_key
    return render(request, "accounts/sessions.html", {"rows": rows, "current": current})


@login_required
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    row = get_object_or_404(UserSession, pk=session_id, ended_at__isnull=True)
    actions.do_end_session(row, acting_user=manager, address=client_address(request))
    messages.success(request, _("The session was ended."))
    return redirect("accounts:sessions")


@login_required
def policy(request: HttpRequest) -> HttpResponse:
    """Security policy the manager sets, and the configuration in force (read-only)."""
    manager = require_manager(request)
    current = AccountPolicy.current()
    form = PolicyForm(
        request.POST or None, initial={"totp_required_for_all": current.totp_required_for_all}
    )
    if request.method == "POST" and form.is_valid():
        actions.do_set_policy(
            totp_required_for_all=form.cleaned_data["totp_required_for_all"],
            acting_user=manager,
            address=client_address(request),
        )
        messages.success(request, _("The policy is saved."))
        return redirect("accounts:policy")
    in_force = [
        (_("Idle lock (minutes)"), settings.CALLSCOPE_IDLE_TIMEOUT_MINUTES),
        (_("Session lifetime (hours)"), settings.CALLSCOPE_SESSION_MAX_HOURS),
        (_("Password change interval (days, 0: off)"), settings.CALLSCOPE_PASSWORD_MAX_AGE_DAYS),
        (_("Earlier passwords that may not be reused"), settings.CALLSCOPE_PASSWORD_HISTORY),
        (_("Failed log-ins before a lock"), settings.AXES_FAILURE_LIMIT),
        (_("Lock duration (minutes)"), round(float(settings.AXES_COOLOFF_TIME) * 60)),
        (_("Audio kept (days)"), settings.CALLSCOPE_RETENTION_DAYS),
        (_("Call log kept (days)"), settings.CALLSCOPE_METADATA_RETENTION_DAYS),
        (_("Audit trail kept (days)"), settings.CALLSCOPE_AUDIT_RETENTION_DAYS),
    ]
    return render(
        request, "accounts/policy.html", {"form": form, "policy": current, "in_force": in_force}
    )
