"""TOTP secrets are sealed at rest: unreadable in the database, bound to their user,
readable after a SECRET_KEY change only with the old key among the fallbacks."""

import contextlib
import importlib

import pytest
from django.apps import apps as django_apps
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callscope.accounts import sealing, totp
from callscope.accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def hojo():
    return User.objects.create_user("hojo-seal", password="irrelevant password 1")


def test_the_stored_value_is_sealed_and_opens_for_its_user_only(hojo):
    secret = totp.new_secret()
    hojo.set_totp_key(secret)
    hojo.save()
    stored = User.objects.values_list("totp_secret", flat=True).get(pk=hojo.pk)
    assert stored.startswith(sealing.PREFIX) and secret not in stored
    assert User.objects.get(pk=hojo.pk).totp_key() == secret
    other = User.objects.create_user("hojo-other", password="irrelevant password 2")
    other.totp_secret = stored  # copied into another row: it does not open there
    assert other.totp_key() == ""
    with pytest.raises(sealing.SealError):
        sealing.unseal(stored, f"user:{other.pk}:totp")


def test_sealing_twice_gives_different_values(hojo):
    first = sealing.seal("JBSWY3DPEHPK3PXP", "ctx")
    second = sealing.seal("JBSWY3DPEHPK3PXP", "ctx")
    assert first != second
    assert sealing.unseal(first, "ctx") == sealing.unseal(second, "ctx") == "JBSWY3DPEHPK3PXP"
    assert sealing.seal("", "ctx") == "" and sealing.unseal("", "ctx") == ""


def test_a_new_secret_key_needs_the_old_one_among_the_fallbacks(hojo, settings):
    secret = totp.new_secret()
    hojo.set_totp_key(secret)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a new secret key for this installation " * 2
    settings.SECRET_KEY_FALLBACKS = []
    assert hojo.totp_key() == ""  # no code matches; the manager resets the factor
    settings.SECRET_KEY_FALLBACKS = [old]
    assert hojo.totp_key() == secret


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_damaged_values_raise_only_seal_error(value):
    with contextlib.suppress(sealing.SealError):
        sealing.unseal(sealing.PREFIX + value, "ctx")


def test_the_migration_seals_secrets_stored_in_clear(hojo):
    migration = importlib.import_module("callscope.accounts.migrations.0003_seal_totp_secrets")
    secret = totp.new_secret()
    User.objects.filter(pk=hojo.pk).update(totp_secret=secret)  # as before sealing
    migration.seal_existing(django_apps, None)
    hojo.refresh_from_db()
    assert sealing.is_sealed(hojo.totp_secret) and hojo.totp_key() == secret
    migration.seal_existing(django_apps, None)  # sealed values are left as they are
    again = User.objects.get(pk=hojo.pk)
    assert again.totp_secret == hojo.totp_secret
    migration.open_existing(django_apps, None)
    assert User.objects.get(pk=hojo.pk).totp_secret == secret
