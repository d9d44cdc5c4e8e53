"""Evidence workflow pages: request, approve or reject, export, hand-over, release.

Operators see their own requests, the manager sees all; each page shows the request's audit
history. The export view is the only response in callscope that carries a whole decrypted
recording, and only as the evidence package of an approved, held request.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from callscope.accounts import actions
from callscope.accounts.access import (
    client_address,
    get_call_for_user,
    record_numbers_shown,
    require_manager,
    require_staff,
    show_number,
)
from callscope.accounts.errors import ActionRefused
from callscope.accounts.forms import DecisionForm, EvidenceRequestForm, HandoverForm
from callscope.accounts.models import EvidenceRequest, User
from callscope.store.models import AuditEntry


def _visible(user: User) -> QuerySet[EvidenceRequest]:
    requests = EvidenceRequest.objects.select_related("call", "requested_by", "decided_by")
    if user.is_manager:
        return requests
    return requests.filter(requested_by=user)


def _get_request(request: HttpRequest, evidence_id: int) -> tuple[User, EvidenceRequest]:
    user = require_staff(request)
    return user, get_object_or_404(_visible(user), pk=evidence_id)


@login_required
def evidence_list(request: HttpRequest) -> HttpResponse:
    user = require_staff(request)
    rows = _visible(user).order_by("-requested_at")[:500]
    return render(request, "accounts/evidence_list.html", {"rows": rows})


@login_required
def evidence_new(request: HttpRequest, call_id: int) -> HttpResponse:
    user = require_staff(request)
    call, _can_listen = get_call_for_user(request, call_id)
    form = EvidenceRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = actions.do_request_evidence(
                call,
                reason=form.cleaned_data["reason"],
                case_reference=form.cleaned_data["case_reference"],
                acting_user=user,
                address=client_address(request),
            )
        except ActionRefused as refused:
            form.add_error(None, _(str(refused)))
        else:
            messages.success(request, _("The request was sent to the manager."))
            return redirect("accounts:evidence", evidence_id=created.pk)
    record_numbers_shown(request, [f"call:{call.pk}"])
    context = {
        "form": form,
        "call": call,
        "caller": show_number(user, call.caller_number),
        "callee": show_number(user, call.callee_number),
    }
    return render(request, "accounts/evidence_new.html", context)


@login_required
def evidence_detail(request: HttpRequest, evidence_id: int) -> HttpResponse:
    user, evidence = _get_request(request, evidence_id)
    history = AuditEntry.objects.filter(
        Q(target=f"evidence:{evidence.pk}")
        | Q(target=f"hold:{evidence.hold_id}", action__in=["hold_place", "hold_release"])
    ).order_by("sequence")
    record_numbers_shown(request, [f"call:{evidence.call_id}"])
    may_decide = user.is_manager and evidence.requested_by_id != user.pk
    context = {
        "evidence": evidence,
        "history": history,
        "caller": show_number(user, evidence.call.caller_number),
        "callee": show_number(user, evidence.call.callee_number),
        "may_decide": may_decide and actions.allowed(evidence, "approve"),
        "may_export": actions.allowed(evidence, "export")
        and (user.is_manager or evidence.requested_by_id == user.pk),
        "may_handover": user.is_manager and actions.allowed(evidence, "handover"),
        "may_release": user.is_manager and actions.allowed(evidence, "release"),
        "decision_form": DecisionForm(),
        "handover_form": HandoverForm(),
        "handovers": evidence.handovers.order_by("handed_over_on", "pk"),
    }
    return render(request, "accounts/evidence_detail.html", context)


def _decision(request: HttpRequest, evidence_id: int, approve: bool) -> HttpResponse:
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    evidence = get_object_or_404(EvidenceRequest, pk=evidence_id)
    form = DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    decide = actions.do_approve_evidence if approve else actions.do_reject_evidence
    try:
        decide(evidence, acting_user=manager, address=client_address(request), note=note)
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
    else:
        messages.success(
            request,
            _("Approved: the recording is on legal hold.") if approve else _("Rejected."),
        )
    return redirect("accounts:evidence", evidence_id=evidence.pk)


@login_required
def evidence_approve(request: HttpRequest, evidence_id: int) -> HttpResponse:
    return _decision(request, evidence_id, approve=True)


@login_required
def evidence_reject(request: HttpRequest, evidence_id: int) -> HttpResponse:
    return _decision(request, evidence_id, approve=False)


@never_cache
@login_required
def evidence_export(request: HttpRequest, evidence_id: int) -> HttpResponse:
    """Download the evidence package (zip); POST so that a link or prefetch never exports."""
    user, evidence = _get_request(request, evidence_id)
    if not (user.is_manager or evidence.requested_by_id == user.pk):
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        package = actions.do_export_evidence(
            evidence, acting_user=user, address=client_address(request)
        )
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
        return redirect("accounts:evidence", evidence_id=evidence.pk)
    response = HttpResponse(package.data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{package.name}"'
    response["X-Package-SHA256"] = package.sha256
    return response


@login_required
def evidence_handover(request: HttpRequest, evidence_id: int) -> HttpResponse:
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    evidence = get_object_or_404(EvidenceRequest, pk=evidence_id)
    form = HandoverForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The form has errors; nothing was changed."))
        return redirect("accounts:evidence", evidence_id=evidence.pk)
    try:
        actions.do_record_handover(
            evidence, acting_user=manager, address=client_address(request), **form.cleaned_data
        )
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
    else:
        messages.success(request, _("The hand-over is recorded."))
    return redirect("accounts:evidence", evidence_id=evidence.pk)


@login_required
def evidence_release(request: HttpRequest, evidence_id: int) -> HttpResponse:
    manager = require_manager(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    evidence = get_object_or_404(EvidenceRequest, pk=evidence_id)
    if evidence.hold is None:
        messages.error(request, _(str(ActionRefused("state"))))
        return redirect("accounts:evidence", evidence_id=evidence.pk)
    try:
        actions.do_release_hold(evidence.hold, acting_user=manager, address=client_address(request))
    except ActionRefused as refused:
        messages.error(request, _(str(refused)))
    else:
        messages.success(request, _("The legal hold was released."))
    return redirect("accounts:evidence", evidence_id=evidence.pk)
