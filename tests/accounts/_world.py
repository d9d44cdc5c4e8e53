"""Test data for the governance tests: users of each role, calls, encrypted recordings."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any

from django.test import Client
from django.utils import timezone

from callscope.accounts.models import Role, User
from callscope.audio.crypto import encrypt, new_data_key
from callscope.store import recordings
from callscope.store.audiostore import get_audio_store, object_key
from callscope.store.models import Call, Recording

PASSWORD = "correct horse battery staple"
_SEQ = itertools.count(1)


def make_user(username: str, role: str = Role.OPERATOR, **fields: Any) -> User:
    """An eligible user: managers as they are, operators designated and trained."""
    user = User.objects.create_user(username, password=PASSWORD)
    user.role = role
    user.must_change_password = False
    if role == Role.OPERATOR:
        user.designated_at = timezone.now()
        user.trained_on = dt.date(2026, 4, 1)
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()
    return user


def make_call(started: dt.datetime | None = None, **fields: Any) -> Call:
    n = next(_SEQ)
    started = started or timezone.now() - dt.timedelta(hours=1)
    values: dict[str, Any] = {
        "call_id": f"gov-{n}@test",
        "conversation_id": f"gov-{n}@test",
        "source": "pcap",
        "caller_number": "0783215678",
        "callee_number": "2101",
        "started_at": started,
        "result": "answered",
        "record": {"call_id": f"gov-{n}@test", "result": "answered"},
    }
    values.update(fields)
    return Call.objects.create(**values)


def attach_audio(call: Call, audio: bytes | None = None) -> bytes:
    """Encrypt ``audio`` (random bytes by default) into the audio store for ``call``."""
    plain = audio if audio is not None else b"OggS" + os.urandom(20_000)
    data_key = new_data_key()
    name = f"rec-{call.pk}.ogg.enc"
    key = object_key(call.started_at, name)
    master_id, wrapped = recordings.wrap(data_key, name)  # as the encoder stores it
    get_audio_store().put(key, encrypt(plain, data_key, key_id=name, chunk_size=4096))
    Recording.objects.update_or_create(
        call=call,
        defaults={
            "status": Recording.Status.RECORDED,
            "state": Recording.State.DONE,
            "storage_key": key,
            "key_id": master_id,
            "wrapped_key": wrapped,
            "peaks": b"\x01\x02",
            "encoded_at": timezone.now(),
        },
    )
    return plain


def client_for(user: User | None, address: str = "127.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    if user is not None:
        client.force_login(user)
    return client
