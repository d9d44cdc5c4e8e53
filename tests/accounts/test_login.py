import datetime as dt

import pyotp
import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from callscope.accounts import sealing, totp
from callscope.accounts.actions import do_set_policy
from callscope.accounts.models import AccountPolicy, PasswordHistory, Role, User
from callscope.store.models import AuditEntry

from ._world import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db


def post_login(client, username, password=PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password})


def audit_actions():
    return list(AuditEntry.objects.order_by("sequence").values_list("action", flat=True))


@pytest.mark.parametrize(("designated", "trained"), [(False, True), (True, False), (False, False)])
def test_an_operator_without_designation_or_training_cannot_log_in(db, designated, trained):
    make_user(
        "mikenshu",
        designated_at=timezone.now() if designated else None,
        trained_on=dt.date(2026, 4, 1) if trained else None,
    )
    client = client_for(None)
    response = post_login(client, "mikenshu")
    assert response.status_code == 200
    html = response.content.decode()
    assert "研修の受講が記録された職員のみ利用できます" in html
    assert "_auth_user_id" not in client.session
    entry = AuditEntry.objects.get(action="login_refused")
    assert entry.detail == {"designated": designated, "trained": trained}


def test_an_untrained_operator_already_logged_in_is_refused_every_page(operator):
    client = client_for(operator)
    User.objects.filter(pk=operator.pk).update(trained_on=None)
    response = client.get(reverse("console:home"))
    assert response.status_code == 403
    assert "管理責任者に連絡してください" in response.content.decode()
    assert client.get(reverse("console:home")).status_code == 302  # logged out


def test_last_login_and_failures_are_shown_after_log_in(operator):
    first = client_for(None, "10.0.0.8")
    assert post_login(first, "hojo").status_code == 302
    page = first.get(reverse("console:home")).content.decode()
    assert "初めてのログインです" in page
    second = client_for(None, "10.0.0.9")
    assert post_login(second, "hojo", "wrong password 1").status_code == 200
    assert post_login(second, "hojo", "wrong password 2").status_code == 200
    assert post_login(second, "hojo").status_code == 302
    page = second.get(reverse("console:home")).content.decode()
    assert "前回のログイン" in page and "10.0.0.8" in page
    assert "それ以降のログイン失敗: 2 回" in page
    failures = AuditEntry.objects.filter(action="login_failed")
    assert failures.count() == 2
    assert {f.address for f in failures} == {"10.0.0.9"}
    assert failures.first().target == "user:hojo"
    operator.refresh_from_db()
    assert operator.failed_logins == 0


def test_lockout_is_audited_visible_to_the_manager_and_liftable(operator, manager, settings):
    attacker = client_for(None, "10.6.6.6")
    for n in range(settings.AXES_FAILURE_LIMIT):
        post_login(attacker, "hojo", f"guess number {n}")
    response = post_login(attacker, "hojo")  # the right password no longer helps
    assert response.status_code == 429
    assert "ロック" in response.content.decode() or "locked" in response.content.decode()
    assert audit_actions().count("lockout") == 1
    admin = client_for(manager)
    page = admin.get(reverse("accounts:lockouts"))
    assert "hojo" in page.content.decode() and "10.6.6.6" in page.content.decode()
    attempt = AccessAttempt.objects.get(username="hojo")
    assert admin.post(reverse("accounts:lockout_lift", args=[attempt.pk])).status_code == 302
    assert not AccessAttempt.objects.filter(username="hojo").exists()
    entry = AuditEntry.objects.get(action="lockout_lifted")
    assert entry.actor_id == manager.pk and entry.target == "user:hojo"
    assert post_login(attacker, "hojo").status_code == 302


def test_operators_cannot_lift_locks(operator):
    attempt = AccessAttempt.objects.create(
        username="someone", ip_address="10.0.0.1", user_agent="", failures_since_start=9,
        get_data="", post_data="", http_accept="", path_info="/",
    )  # fmt: skip
    client = client_for(operator)
    assert client.post(reverse("accounts:lockout_lift", args=[attempt.pk])).status_code == 403
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()


def totp_code(secret, at=None):
    return pyotp.TOTP(secret).at(at or timezone.now())


def test_totp_required_by_the_manager_is_enrolled_then_verified(operator, manager):
    operator.totp_required = True
    operator.save()
    client = client_for(None)
    response = post_login(client, "hojo")
    assert response.status_code == 302 and response["Location"] == reverse("login_totp")
    # the password alone opened nothing
    assert client.get(reverse("console:home")).status_code == 302
    page = client.get(reverse("login_totp"))
    secret = page.context["secret"]
    assert "otpauth://totp/" in page.context["uri"]
    assert secret not in repr(dict(client.session))  # the session row holds it sealed
    assert client.get(reverse("login_totp")).context["secret"] == secret  # same key again
    assert client.post(reverse("login_totp"), {"code": "000000"}).status_code == 200
    used = totp_code(secret)
    response = client.post(reverse("login_totp"), {"code": used})
    assert response.status_code == 302
    assert client.get(reverse("console:home")).status_code == 200
    operator.refresh_from_db()
    assert operator.totp_key() == secret and operator.totp_confirmed_at is not None
    assert sealing.is_sealed(operator.totp_secret) and secret not in operator.totp_secret
    assert "totp_enrol" in audit_actions()
    failed = AuditEntry.objects.get(action="login_failed")
    assert failed.detail["factor"] == "totp"

    # next log-in: the code is asked, and the code already used is refused (RFC 6238 5.2);
    # the very code, not one made again: a new 30 s step may have begun since
    again = client_for(None)
    assert post_login(again, "hojo")["Location"] == reverse("login_totp")
    response = again.post(reverse("login_totp"), {"code": used})
    assert response.status_code == 200
    assert "コードが正しくありません" in response.content.decode()


def test_a_code_is_accepted_once_and_within_one_step_of_drift(operator):
    secret = totp.new_secret()
    operator.set_totp_key(secret)
    operator.save()
    now = timezone.now()
    early = now - dt.timedelta(seconds=30)
    assert totp.verify_and_consume(operator, totp_code(secret, early), at=now)
    assert not totp.verify_and_consume(operator, totp_code(secret, early), at=now)
    assert totp.verify_and_consume(operator, totp_code(secret, now), at=now)
    assert not totp.verify_and_consume(
        operator, totp_code(secret, now - dt.timedelta(minutes=5)), at=now
    )


def test_totp_for_everyone_is_a_manager_setting(operator, manager):
    do_set_policy(totp_required_for_all=True, acting_user=manager, address="10.0.0.1")
    assert AccountPolicy.current().totp_required_for_all
    assert totp.required_for(operator)
    entry = AuditEntry.objects.get(action="setting_change")
    assert entry.detail == {"before": False, "after": True}
    assert post_login(client_for(None), "hojo")["Location"] == reverse("login_totp")


def test_wrong_codes_lock_the_account_like_wrong_passwords(operator, settings):
    operator.set_totp_key(totp.new_secret())
    operator.totp_confirmed_at = timezone.now()
    operator.save()
    client = client_for(None, "10.7.7.7")
    for _n in range(settings.AXES_FAILURE_LIMIT):
        if post_login(client, "hojo").status_code != 302:
            break
        client.post(reverse("login_totp"), {"code": "123456"})
    assert AccessAttempt.objects.get(username="hojo").failures_since_start >= (
        settings.AXES_FAILURE_LIMIT
    )
    assert "lockout" in audit_actions()
    assert post_login(client, "hojo").status_code == 429


def test_the_manager_resets_a_lost_second_factor(operator, manager):
    operator.set_totp_key(totp.new_secret())
    operator.totp_confirmed_at = timezone.now()
    operator.save()
    admin = client_for(manager)
    response = admin.post(reverse("accounts:operator_totp_reset", args=[operator.pk]))
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.totp_secret == "" and operator.totp_confirmed_at is None
    assert "totp_reset" in audit_actions()


def test_voluntary_enrolment_from_the_account_page(operator):
    client = client_for(operator)
    page = client.get(reverse("accounts:totp_setup"))
    secret = page.context["secret"]
    assert secret not in repr(dict(client.session))  # the session row holds it sealed
    assert client.get(reverse("accounts:totp_setup")).context["secret"] == secret
    response = client.post(reverse("accounts:totp_setup"), {"code": totp_code(secret)})
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.totp_confirmed_at is not None
    assert totp.required_for(operator)


def test_password_history_refuses_the_last_passwords(operator, settings):
    settings.CALLSCOPE_PASSWORD_HISTORY = 3
    phrases = [f"a long passphrase number {n} for kobe" for n in range(5)]
    for phrase in phrases:
        validate_password(phrase, operator)
        operator.set_password(phrase)
        operator.save()
    assert PasswordHistory.objects.filter(user=operator).count() == 3
    for recent in phrases[-3:]:
        with pytest.raises(ValidationError) as refused:
            validate_password(recent, operator)
        assert refused.value.error_list[0].code == "password_reused"
    validate_password(phrases[0], operator)  # older than the remembered three


def test_password_policy_length_and_common_list_without_composition_rules(operator):
    with pytest.raises(ValidationError):
        validate_password("short pass", operator)
    with pytest.raises(ValidationError):
        validate_password("qwerty123456", operator)  # on the common-passwords list
    validate_password("すべてひらがなのながいことば", operator)  # any characters, no rules


def test_the_password_change_form_refuses_reuse(operator):
    client = client_for(operator)
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "最近使用されています" in response.content.decode()


def test_an_expired_password_must_be_changed_first(operator, settings):
    settings.CALLSCOPE_PASSWORD_MAX_AGE_DAYS = 90
    operator.password_changed_at = timezone.now() - dt.timedelta(days=91)
    operator.save()
    client = client_for(operator)
    response = client.get(reverse("console:home"))
    assert response.status_code == 302 and response["Location"] == reverse("password_change")
    settings.CALLSCOPE_PASSWORD_MAX_AGE_DAYS = 0  # periodic change turned off
    assert client.get(reverse("console:home")).status_code == 200


def test_the_installer_only_creates_the_first_manager(db):
    installer = make_user("setup", Role.INSTALLER)
    client = client_for(installer)
    assert client.get(reverse("console:home")).status_code == 403
    assert client.get(reverse("accounts:operators")).status_code == 403
    response = client.post(reverse("accounts:install_manager"), {"username": "kanri"})
    assert response.status_code == 200
    password = response.context["created"][1]
    manager = User.objects.get(username="kanri")
    assert manager.role == Role.MANAGER and manager.check_password(password)
    assert manager.must_change_password
    again = client.post(reverse("accounts:install_manager"), {"username": "kanri2"})
    assert again.context["created"] is None
    assert not User.objects.filter(username="kanri2").exists()
    assert AuditEntry.objects.get(action="manager_create").actor_id == installer.pk
