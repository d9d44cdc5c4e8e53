"""Governance fixtures: one eligible user per role, clients, a fresh audio store per test."""

from __future__ import annotations

import pytest
from django.utils.translation import trans_real

from callscope.accounts.models import Role
from callscope.ingest.messages import compile_messages
from callscope.store import audiostore

from ._world import make_user


@pytest.fixture(scope="session", autouse=True)
def _compiled_messages():
    """The Japanese catalogue compiled from the .po (the .mo is build output, not kept)."""
    if compile_messages():
        trans_real._translations = {}  # drop catalogues loaded before the compile


@pytest.fixture(autouse=True)
def _audio_store(settings, tmp_path):
    settings.CALLSCOPE_AUDIO_STORE = f"file://{tmp_path / 'audio'}"
    audiostore._STORE = None
    yield
    audiostore._STORE = None


@pytest.fixture
def manager(db):
    return make_user("kanri", Role.MANAGER)


@pytest.fixture
def operator(db):
    return make_user("hojo")


@pytest.fixture
def listener(db):
    return make_user("kiku", can_listen=True)
