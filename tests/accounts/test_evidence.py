"""The evidence workflow end to end: request, approval (never one's own) with a legal hold,
export of a verifiable package, hand-over record, release; every step audited."""

import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest
from django.urls import reverse
from django.utils import timezone

from callscope.accounts import actions
from callscope.accounts.errors import ActionRefused
from callscope.accounts.models import EvidenceRequest, Role
from callscope.store.models import AuditEntry, LegalHold, Recording
from callscope.store.retention import purge

from ._world import attach_audio, client_for, make_call, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def call_with_audio(db):
    call = make_call()
    audio = attach_audio(call)
    return call, audio


def request_as(client, call, case="R8-0012"):
    return client.post(
        reverse("accounts:evidence_new", args=[call.pk]),
        {"case_reference": case, "reason": "大声で威圧し、同じ要求を繰り返した"},
    )


def test_the_whole_workflow_through_the_pages(operator, manager, call_with_audio):
    call, audio = call_with_audio
    op, admin = client_for(operator, "10.0.1.1"), client_for(manager, "10.0.2.2")

    response = request_as(op, call)
    assert response.status_code == 302
    evidence = EvidenceRequest.objects.get()
    assert evidence.status == EvidenceRequest.Status.REQUESTED
    page = op.get(reverse("accounts:evidence", args=[evidence.pk])).content.decode()
    assert "承認待ち" in page and "078-***-5678" in page  # the operator sees a masked number

    # the operator cannot approve, nor export before approval
    assert op.post(reverse("accounts:evidence_approve", args=[evidence.pk])).status_code == 403
    response = op.post(reverse("accounts:evidence_export", args=[evidence.pk]))
    assert response.status_code == 302 and response.get("Content-Type") != "application/zip"

    assert admin.post(reverse("accounts:evidence_approve", args=[evidence.pk])).status_code == 302
    evidence.refresh_from_db()
    assert evidence.status == EvidenceRequest.Status.APPROVED
    hold = evidence.hold
    assert hold is not None and hold.released_at is None and hold.placed_by == manager

    # held audio survives retention
    later = timezone.now() + dt.timedelta(days=400)
    purge(later)
    recording = Recording.objects.get(call=call)
    assert recording.wrapped_key is not None and recording.deleted_at is None

    response = op.post(reverse("accounts:evidence_export", args=[evidence.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    package = response.content
    assert hashlib.sha256(package).hexdigest() == response["X-Package-SHA256"]
    archive = zipfile.ZipFile(io.BytesIO(package))
    assert archive.read("audio.ogg") == audio
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert sorted(n for n in archive.namelist()) == sorted(
        ["audio.ogg", "call.json", "request.json", "SHA256SUMS", "README.txt"]
    )
    record = json.loads(archive.read("call.json"))
    assert record["call_id"] == call.call_id and record["callscope_id"] == call.pk
    case = json.loads(archive.read("request.json"))
    assert case["case_reference"] == "R8-0012"
    assert case["approved_by"]["username"] == "kanri"
    assert case["exported_by"]["username"] == "hojo"
    evidence.refresh_from_db()
    assert evidence.status == EvidenceRequest.Status.EXPORTED
    assert evidence.package_sha256 == hashlib.sha256(package).hexdigest()

    response = admin.post(
        reverse("accounts:evidence_handover", args=[evidence.pk]),
        {
            "recipient": "兵庫県警察 須磨警察署",
            "handed_over_on": "2026-11-30",
            "medium": "DVD-R 1枚",
            "handed_over_by": "総務課 山田",
        },
    )
    assert response.status_code == 302
    handover = evidence.handovers.get()
    assert handover.package_sha256 == evidence.package_sha256
    assert handover.recorded_by == manager

    assert admin.post(reverse("accounts:evidence_release", args=[evidence.pk])).status_code == 302
    hold.refresh_from_db()
    evidence.refresh_from_db()
    assert hold.released_at is not None and hold.released_by == manager
    assert evidence.status == EvidenceRequest.Status.RELEASED

    # after the release retention applies again
    purge(later)
    assert Recording.objects.get(call=call).wrapped_key is None

    history = list(
        AuditEntry.objects.filter(target=f"evidence:{evidence.pk}")
        .order_by("sequence")
        .values_list("action", "actor_name", "address")
    )
    assert history == [
        ("evidence_request", "hojo", "10.0.1.1"),
        ("evidence_approve", "kanri", "10.0.2.2"),
        ("evidence_export", "hojo", "10.0.1.1"),
        ("evidence_handover", "kanri", "10.0.2.2"),
        ("evidence_release", "kanri", "10.0.2.2"),
    ]
    holds = AuditEntry.objects.filter(target=f"hold:{hold.pk}").values_list("action", flat=True)
    assert list(holds) == ["hold_place", "hold_release"]
    export = AuditEntry.objects.get(action="evidence_export")
    assert export.detail["package_sha256"] == evidence.package_sha256
    page = admin.get(reverse("accounts:evidence", args=[evidence.pk])).content.decode()
    assert "保全の解除" in page and "兵庫県警察" in page
    assert "0783215678" in page  # the manager sees the full number, and that is audited
    shown = AuditEntry.objects.filter(action="number_view", actor=manager).last()
    assert shown.detail == {"targets": [f"call:{call.pk}"]}
    assert not AuditEntry.objects.filter(action="number_view", actor=operator).exists()


def test_nobody_approves_their_own_request(call_with_audio):
    call, _audio = call_with_audio
    boss = make_user("bucho", Role.MANAGER)
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=boss, address=""
    )
    with pytest.raises(ActionRefused, match="nobody may approve or reject their own request"):
        actions.do_approve_evidence(evidence, acting_user=boss, address="")
    with pytest.raises(ActionRefused) as refused:
        actions.do_reject_evidence(evidence, acting_user=boss, address="")
    assert refused.value.code == "own_request"
    response = client_for(boss).post(reverse("accounts:evidence_approve", args=[evidence.pk]))
    assert response.status_code == 302
    evidence.refresh_from_db()
    assert evidence.status == EvidenceRequest.Status.REQUESTED
    assert not LegalHold.objects.exists()
    assert not AuditEntry.objects.filter(action="evidence_approve").exists()


def test_rejection_ends_the_request_without_a_hold(operator, manager, call_with_audio):
    call, _audio = call_with_audio
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=operator, address=""
    )
    actions.do_reject_evidence(evidence, acting_user=manager, address="", note="不要")
    evidence.refresh_from_db()
    assert evidence.status == EvidenceRequest.Status.REJECTED
    assert not LegalHold.objects.exists()
    with pytest.raises(ActionRefused, match="not in a state that allows this"):
        actions.do_approve_evidence(evidence, acting_user=manager, address="")
    with pytest.raises(ActionRefused):
        actions.do_export_evidence(evidence, acting_user=manager, address="")


def test_only_the_requester_or_the_manager_exports(operator, listener, manager, call_with_audio):
    call, _audio = call_with_audio
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=operator, address=""
    )
    actions.do_approve_evidence(evidence, acting_user=manager, address="")
    with pytest.raises(ActionRefused, match="only the manager or the requesting user may export"):
        actions.do_export_evidence(evidence, acting_user=listener, address="")
    # another operator does not even see the request
    response = client_for(listener).post(reverse("accounts:evidence_export", args=[evidence.pk]))
    assert response.status_code == 404
    package = actions.do_export_evidence(evidence, acting_user=manager, address="")
    assert package.name.startswith(f"evidence-{evidence.pk}-") and package.name.endswith(".zip")


def test_no_export_after_the_hold_is_released(operator, manager, call_with_audio):
    call, _audio = call_with_audio
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=operator, address=""
    )
    hold = actions.do_approve_evidence(evidence, acting_user=manager, address="")
    actions.do_release_hold(hold, acting_user=manager, address="")
    evidence.refresh_from_db()
    with pytest.raises(ActionRefused):
        actions.do_export_evidence(evidence, acting_user=manager, address="")
    with pytest.raises(ActionRefused, match="already released"):
        actions.do_release_hold(hold, acting_user=manager, address="")


def test_audio_already_deleted_cannot_be_requested_or_held(operator, manager):
    call = make_call(started=timezone.now() - dt.timedelta(days=30))
    attach_audio(call)
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=operator, address=""
    )
    purge(timezone.now())
    with pytest.raises(ActionRefused, match="no audio any more"):
        actions.do_approve_evidence(evidence, acting_user=manager, address="")
    with pytest.raises(ActionRefused, match="no audio any more"):
        actions.do_request_evidence(
            call, reason="r", case_reference="c", acting_user=operator, address=""
        )


def test_a_failed_step_leaves_no_audit_row(operator, manager, call_with_audio):
    call, _audio = call_with_audio
    evidence = actions.do_request_evidence(
        call, reason="r", case_reference="c", acting_user=operator, address=""
    )
    Recording.objects.filter(call=call).update(deleted_at=timezone.now())  # being purged
    before = AuditEntry.objects.count()
    with pytest.raises(ActionRefused):
        actions.do_approve_evidence(evidence, acting_user=manager, address="")
    assert AuditEntry.objects.count() == before
    evidence.refresh_from_db()
    assert evidence.status == EvidenceRequest.Status.REQUESTED
