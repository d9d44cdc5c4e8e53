"""Console fixtures: one eligible user per role, logged-in clients, a fresh audio store."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from callscope.accounts.models import Role
from callscope.ingest.messages import compile_messages
from callscope.store import audiostore

from ._factory import make_user


@pytest.fixture(scope="session", autouse=True)
def _compiled_messages():
    """The Japanese catalogue compiled from the .po (the .mo is build output, not kept)."""
    from django.utils.translation import trans_real

    if compile_messages():
        trans_real._translations = {}  # drop catalogues loaded before the compile


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Each test gets its own audio directory and an empty cache (banner, unit choices)."""
    settings.CALLSCOPE_AUDIO_STORE = f"file://{tmp_path / 'audio'}"
    audiostore._STORE = None
    cache.clear()
    yield
    audiostore._STORE = None


@pytest.fixture
def manager(db):
    return make_user("kanri-m", Role.MANAGER)


@pytest.fixture
def operator(db):
    return make_user("hojo-o")


@pytest.fixture
def listener(db):
    return make_user("hojo-l", can_listen=True)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager_client(manager):
    return _client_for(manager)


@pytest.fixture
def operator_client(operator):
    return _client_for(operator)


@pytest.fixture
def listener_client(listener):
    return _client_for(listener)
