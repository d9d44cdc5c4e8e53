"""The manager's administration: operators from creation to first use, rights, and the
helpers views use to show numbers and audit listening."""

import datetime as dt

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from callscope.accounts import access
from callscope.accounts.actions import do_set_rights
from callscope.accounts.errors import ActionRefused
from callscope.accounts.jobs import run_scheduled_purge
from callscope.accounts.models import User
from callscope.store.models import AuditEntry, Recording

from ._world import attach_audio, client_for, make_call

pytestmark = pytest.mark.django_db


def actions_for(username):
    return list(
        AuditEntry.objects.filter(target=f"user:{username}")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_a_new_operator_is_usable_only_after_designation_and_training(manager):
    admin = client_for(manager, "10.0.3.3")
    response = admin.post(
        reverse("accounts:operator_new"), {"username": "shinjin", "display_name": "新人 太郎"}
    )
    assert response.status_code == 200
    password = response.context["password"]
    assert response["Cache-Control"].startswith("max-age=0")
    user = User.objects.get(username="shinjin")
    assert not user.is_eligible and user.must_change_password

    def can_log_in():
        response = client_for(None).post(
            reverse("login"), {"username": "shinjin", "password": password}
        )
        return response.status_code == 302

    assert not can_log_in()
    admin.post(reverse("accounts:operator_designation", args=[user.pk]), {"value": "on"})
    assert not can_log_in()  # training not recorded yet
    admin.post(reverse("accounts:operator_training", args=[user.pk]), {"trained_on": "2026-11-20"})
    assert can_log_in()
    user.refresh_from_db()
    assert user.designated_by == manager and user.trained_on == dt.date(2026, 11, 20)
    assert actions_for("shinjin") == [
        "user_create",
        "login_refused",
        "designation_grant",
        "login_refused",
        "training_record",
        "login",
    ]
    entry = AuditEntry.objects.get(action="training_record")
    assert entry.address == "10.0.3.3" and entry.detail["trained_on"] == "2026-11-20"
    page = admin.get(reverse("accounts:operator", args=[user.pk])).content.decode()
    assert "研修の記録" in page  # the audit history is on the user's page


def test_rights_are_granted_and_withdrawn_with_before_and_after(manager, operator):
    admin = client_for(manager)
    admin.post(reverse("accounts:operator_rights", args=[operator.pk]), {"can_listen": "on"})
    operator.refresh_from_db()
    assert operator.can_listen and not operator.can_see_numbers
    admin.post(reverse("accounts:operator_rights", args=[operator.pk]), {})
    operator.refresh_from_db()
    assert not operator.can_listen
    changes = AuditEntry.objects.filter(action="right_change").order_by("sequence")
    assert [c.detail["after"]["can_listen"] for c in changes] == [True, False]


def test_rules_the_actions_enforce_whoever_calls_them(manager, operator):
    with pytest.raises(ActionRefused, match="only the manager may do this"):
        do_set_rights(
            operator, can_listen=True, can_see_numbers=True, acting_user=operator, address=""
        )
    with pytest.raises(ActionRefused, match="this applies to operators only"):
        do_set_rights(
            manager, can_listen=True, can_see_numbers=True, acting_user=manager, address=""
        )
    response = client_for(manager).post(reverse("accounts:operator_active", args=[manager.pk]), {})
    assert response.status_code == 302
    manager.refresh_from_db()
    assert manager.is_active  # the manager cannot lock themselves out


def test_a_forgotten_password_is_replaced_by_a_one_time_password(manager, operator):
    response = client_for(manager).post(reverse("accounts:operator_password", args=[operator.pk]))
    password = response.context["password"]
    operator.refresh_from_db()
    assert operator.check_password(password) and operator.must_change_password
    assert "password_reset" in actions_for("hojo")


def test_numbers_are_masked_unless_the_manager_granted_the_right(operator, manager):
    assert access.show_number(operator, "0781234567") == "078-***-4567"
    assert access.show_number(manager, "0781234567") == "0781234567"
    operator.can_see_numbers = True
    assert access.show_number(operator, "0781234567") == "0781234567"
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5")
    request.user = operator
    entry = access.record_numbers_shown(request, ["call:2", "call:1", "call:2"])
    assert entry.action == "number_view" and entry.detail == {"targets": ["call:1", "call:2"]}
    operator.can_see_numbers = False
    assert access.record_numbers_shown(request, ["call:1"]) is None


def test_get_call_for_user_says_who_may_listen(operator, listener, manager):
    call = make_call()
    attach_audio(call)
    factory = RequestFactory()

    def ask(user):
        request = factory.get("/")
        request.user = user
        return access.get_call_for_user(request, call.pk)[1]

    assert (ask(operator), ask(listener), ask(manager)) == (False, True, True)
    Recording.objects.filter(call=call).update(wrapped_key=None, deleted_at=timezone.now())
    assert ask(listener) is False


def test_playback_is_audited_once_per_listening(listener, settings):
    call = make_call()
    attach_audio(call)
    recording = Recording.objects.get(call=call)
    request = RequestFactory().get("/")
    request.user = listener
    request.session = {}
    assert access.note_playback(request, recording)
    assert not access.note_playback(request, recording)  # the next byte range
    listening = request.session["callscope_listening"]
    listening[str(recording.pk)] -= access.LISTENING_GAP_SECONDS + 1
    assert access.note_playback(request, recording)  # a new listening later
    assert AuditEntry.objects.filter(action="playback").count() == 2


def test_the_scheduled_job_purges_prunes_and_sweeps(operator, settings):
    call = make_call(
        started=timezone.now() - dt.timedelta(days=settings.CALLSCOPE_RETENTION_DAYS + 2)
    )
    attach_audio(call)
    report = run_scheduled_purge(timezone.now())
    assert report.purge.recordings_deleted == 1
    assert report.audit_entries_removed == 0 and report.sessions_locked == 0
    assert AuditEntry.objects.filter(action="retention_run").exists()
