import datetime as dt

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from callscope.accounts import sessions
from callscope.accounts.actions import do_revoke_designation, do_set_active
from callscope.accounts.models import UserSession
from callscope.store.models import AuditEntry

from ._world import PASSWORD, client_for

pytestmark = pytest.mark.django_db

HOME = "console:home"


def log_in(username, address="10.1.2.3"):
    client = client_for(None, address)
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def actions():
    return list(AuditEntry.objects.order_by("sequence").values_list("action", flat=True))


def test_login_opens_an_indexed_session_with_address_and_audit(operator):
    client = log_in("hojo")
    row = UserSession.objects.get(user=operator)
    assert row.session_key == client.session.session_key
    assert row.address == "10.1.2.3" and row.ended_at is None
    entry = AuditEntry.objects.get(action="login")
    assert entry.actor_id == operator.pk and entry.address == "10.1.2.3"
    assert client.get(reverse(HOME)).status_code == 200


def test_session_expiry_slides_with_each_request(operator, settings):
    client = log_in("hojo")
    assert settings.SESSION_COOKIE_AGE == settings.CALLSCOPE_IDLE_TIMEOUT_MINUTES * 60
    client.get(reverse(HOME))
    expiry = Session.objects.get(session_key=client.session.session_key).expire_date
    remaining = expiry - timezone.now()
    assert dt.timedelta(minutes=14) < remaining <= dt.timedelta(minutes=15)


def expire_idle(client, minutes=16):
    key = client.session.session_key
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    UserSession.objects.filter(session_key=key).update(
        last_seen=timezone.now() - dt.timedelta(minutes=minutes)
    )
    return key


def test_idle_lock_is_detected_on_the_next_request_and_audited_once(operator):
    client = log_in("hojo")
    key = expire_idle(client)
    response = client.get(reverse(HOME))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    row = UserSession.objects.get(session_key=key)
    assert row.end_reason == UserSession.End.IDLE and row.ended_at is not None
    entry = AuditEntry.objects.get(action="idle_lock")
    assert entry.actor_id == operator.pk and entry.target == f"session:{row.pk}"
    assert entry.address == "10.1.2.3"
    page = client.get(response["Location"])
    assert "操作がなかったため" in page.content.decode()
    client.get(reverse("login"))
    assert actions().count("idle_lock") == 1


def test_idle_sessions_nobody_returns_to_are_swept(operator, manager):
    idle = log_in("hojo")
    busy = log_in("kanri")
    expire_idle(idle)
    assert sessions.sweep(timezone.now()) == 1
    assert actions().count("idle_lock") == 1
    assert UserSession.objects.get(user=manager).ended_at is None
    assert busy.get(reverse(HOME)).status_code == 200
    assert sessions.sweep(timezone.now()) == 0


def test_a_stale_last_seen_does_not_lock_a_live_session(operator):
    client = log_in("hojo")
    UserSession.objects.filter(user=operator).update(
        last_seen=timezone.now() - dt.timedelta(minutes=20)
    )
    assert sessions.sweep(timezone.now()) == 0  # the Django session is still alive
    assert client.get(reverse(HOME)).status_code == 200
    row = UserSession.objects.get(user=operator)
    assert timezone.now() - row.last_seen < dt.timedelta(minutes=1)


def test_absolute_lifetime_ends_an_active_session(operator, settings):
    client = log_in("hojo")
    UserSession.objects.filter(user=operator).update(
        created_at=timezone.now() - dt.timedelta(hours=settings.CALLSCOPE_SESSION_MAX_HOURS)
    )
    response = client.get(reverse(HOME))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert "session_expired" in actions()
    assert client.get(reverse(HOME)).status_code == 302


def test_revoking_a_designation_ends_every_session_at_once(operator, manager):
    first, second = log_in("hojo", "10.0.0.1"), log_in("hojo", "10.0.0.2")
    keys = {first.session.session_key, second.session.session_key}
    ended = do_revoke_designation(operator, acting_user=manager, address="10.9.9.9")
    assert ended == 2
    assert not Session.objects.filter(session_key__in=keys).exists()
    for client in (first, second):
        assert client.get(reverse(HOME)).status_code == 302
    rows = UserSession.objects.filter(user=operator)
    assert {row.end_reason for row in rows} == {UserSession.End.REVOKED}
    ended_entries = AuditEntry.objects.filter(action="session_ended")
    assert ended_entries.count() == 2
    assert {e.detail["reason"] for e in ended_entries} == {"designation_revoked"}
    assert actions().index("designation_revoke") < actions().index("session_ended")
    # and the password alone no longer opens a session
    response = client_for(None).post(reverse("login"), {"username": "hojo", "password": PASSWORD})
    assert response.status_code == 200
    assert "管理責任者" in response.content.decode()


def test_disabling_an_account_ends_its_sessions(operator, manager):
    client = log_in("hojo")
    assert do_set_active(operator, False, acting_user=manager, address="") == 1
    assert client.get(reverse(HOME)).status_code == 302
    assert AuditEntry.objects.filter(action="account_disable").exists()


def test_the_manager_ends_one_session_from_the_sessions_page(operator, manager):
    victim = log_in("hojo")
    admin = log_in("kanri")
    page = admin.get(reverse("accounts:sessions"))
    assert "hojo" in page.content.decode()
    row = UserSession.objects.get(user=operator)
    response = admin.post(reverse("accounts:session_end", args=[row.pk]))
    assert response.status_code == 302
    assert victim.get(reverse(HOME)).status_code == 302
    entry = AuditEntry.objects.get(action="session_ended")
    assert entry.actor_id == operator.pk and entry.detail["reason"] == "session_ended"


def test_logout_closes_the_indexed_session(operator):
    client = log_in("hojo")
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    row = UserSession.objects.get(user=operator)
    assert row.end_reason == UserSession.End.LOGOUT
    assert "logout" in actions()


def test_password_change_follows_the_rotated_key_and_ends_other_sessions(operator):
    current, other = log_in("hojo"), log_in("hojo", "10.0.0.7")
    response = current.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "須磨の海は今日もとても青い空です",
            "new_password2": "須磨の海は今日もとても青い空です",
        },
    )
    assert response.status_code == 302
    assert current.get(reverse(HOME)).status_code == 200
    key = current.session.session_key
    assert UserSession.objects.get(session_key=key).ended_at is None
    assert other.get(reverse(HOME)).status_code == 302
    assert "password_change" in actions()


def test_unchanged_session_expiry_is_written_at_most_once_a_minute(operator):
    client = log_in("hojo")
    key = client.session.session_key
    client.get(reverse(HOME))
    first = Session.objects.get(session_key=key).expire_date
    client.get(reverse(HOME))  # seconds later: the stored expiry is not rewritten
    assert Session.objects.get(session_key=key).expire_date == first
    # a minute and more behind: the next request slides it again
    Session.objects.filter(session_key=key).update(expire_date=first - dt.timedelta(seconds=61))
    client.get(reverse(HOME))
    slid = Session.objects.get(session_key=key).expire_date
    assert slid > first - dt.timedelta(seconds=1)
    assert dt.timedelta(minutes=14) < slid - timezone.now() <= dt.timedelta(minutes=15)


def test_short_idle_timeouts_slide_in_tenths(operator, settings):
    from callscope.accounts.session_store import SessionStore

    settings.SESSION_COOKIE_AGE = 20
    store = SessionStore()
    store["x"] = 1
    store.save()
    saved = store.stored_expiry - dt.timedelta(seconds=20)  # when the row was written
    assert not store.slide_due(saved + dt.timedelta(seconds=1.9))
    assert store.slide_due(saved + dt.timedelta(seconds=2.1))  # over 2 s (a tenth) behind
    loaded = SessionStore(store.session_key)
    assert loaded.get("x") == 1 and loaded.stored_expiry == store.stored_expiry
    assert not SessionStore("nonexistent-key-000000000000000").slide_due()
