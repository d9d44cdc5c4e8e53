"""Test data for the console: users of each role, calls saved from contract records, and a
real encrypted Ogg/Opus recording in the audio store (built with callscope.audio)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from callscope.accounts.models import Role, User
from callscope.audio.crypto import encrypt, new_data_key
from callscope.audio.opus import encode_stereo
from callscope.audio.peaks import peaks_fixed_count
from callscope.store import recordings
from callscope.store.audiostore import get_audio_store, object_key
from callscope.store.calls import Placement, save_call
from callscope.store.masking import pseudonym
from callscope.store.models import Call, Recording

PASSWORD = "correct horse battery staple"
_SEQ = itertools.count(1)
RATE = 8000


def make_user(username: str, role: str = Role.OPERATOR, **rights: Any) -> User:
    """An eligible user: managers as they are, operators designated and trained."""
    user = User.objects.create_user(username, password=PASSWORD)
    user.role = role
    user.must_change_password = False
    if role == Role.OPERATOR:
        user.designated_at = timezone.now()
        user.trained_on = dt.date(2024, 4, 1)
    for name, value in rights.items():
        setattr(user, name, value)
    user.save()
    return user


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


def record(started: dt.datetime, **overrides: Any) -> dict[str, Any]:
    """A call record (contract JSON) of an answered call that started at ``started``."""
    n = next(_SEQ)
    ringing = started + dt.timedelta(seconds=0.2)
    answered = started + dt.timedelta(seconds=5)
    ended = answered + dt.timedelta(seconds=60)
    rec: dict[str, Any] = {
        "call_id": f"call-{n}@test",
        "conversation_id": f"conv-{n}@test",
        "source": "pcap",
        "transport": "udp",
        "caller": {"number": "0783215678", "uri": "sip:0783215678@pbx", "display_name": "Yamada"},
        "callee": {"number": "2101", "uri": "sip:2101@pbx", "display_name": None},
        "direction": "inbound",
        "started_at": iso(started),
        "ringing_at": iso(ringing),
        "answered_at": iso(answered),
        "ended_at": iso(ended),
        "result": "answered",
        "final_code": 200,
        "ended_by": "caller",
        "setup_seconds": 5.0,
        "ring_seconds": 4.8,
        "talk_seconds": 60.0,
        "hold_seconds": 0.0,
        "early_media": False,
        "streams": [
            {"direction": "caller_to_callee", "codec": "PCMU", "src": "10.0.0.5:4000",
             "dst": "10.0.0.9:5000", "ssrcs": [1], "packets": 2990, "lost": 10,
             "jitter_ms": 2.5},
            {"direction": "callee_to_caller", "codec": "PCMU", "src": "10.0.0.9:5000",
             "dst": "10.0.0.5:4000", "ssrcs": [2], "packets": 3000, "lost": 0,
             "jitter_ms": 1.0},
        ],
        "dtmf": [],
        "transfer": None,
        "recording": {"status": "recorded"},
        "anomalies": [],
    }  # fmt: skip
    rec.update(overrides)
    return rec


def ladder_for(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The SIP messages of a simple answered call, in the ladder format."""
    caller, callee = "10.0.0.5:5060", "10.0.0.9:5060"
    return [
        {"at": rec["started_at"], "src": caller, "dst": callee, "label": "INVITE"},
        {"at": rec["ringing_at"], "src": callee, "dst": caller, "label": "180 Ringing"},
        {"at": rec["answered_at"], "src": callee, "dst": caller, "label": "200 OK"},
        {"at": rec["answered_at"], "src": caller, "dst": callee, "label": "ACK"},
        {"at": rec["ended_at"], "src": caller, "dst": callee, "label": "BYE"},
        {"at": rec["ended_at"], "src": callee, "dst": caller, "label": "200 OK"},
    ]


def placement(rec: dict[str, Any], **kw: Any) -> Placement:
    key = settings.PSEUDONYM_KEY
    return Placement(
        direction=rec.get("direction", "unknown"),
        caller_pseudonym=pseudonym(rec["caller"]["number"] or "", key),
        callee_pseudonym=pseudonym(rec["callee"]["number"] or "", key),
        **kw,
    )


def make_call(started: dt.datetime, *, ladder: bool = True, **overrides: Any) -> Call:
    rec = record(started, **overrides)
    return save_call(rec, ladder=ladder_for(rec) if ladder else (), placement=placement(rec))


def tone_pcm(seconds: float, *, ring: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two voices taking turns (int16, 8 kHz): tones at 220/330 Hz with a 4 Hz syllable
    envelope, caller first; silence for the first ``ring`` seconds (INVITE is sample 0)."""
    t = np.arange(int(seconds * RATE)) / RATE
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (0.6 + 0.4 * np.sin(0.9 * t))
    turn = ((t - ring) // 2.5).astype(int) % 2  # 2.5 s turns: caller, callee, caller ...
    talking = t >= ring
    left = 12000 * syllables * np.sin(2 * np.pi * 220 * t) * (talking & (turn == 0))
    right = 12000 * syllables * np.sin(2 * np.pi * 330 * t) * (talking & (turn == 1))
    return left.astype(np.int16), right.astype(np.int16)


def attach_recording(
    call: Call, seconds: float = 8.0, *, chunk_size: int = 4096, ring: float = 0.0
) -> bytes:
    """Encode, encrypt and store a recording for ``call``; returns the Ogg plaintext."""
    left, right = tone_pcm(seconds, ring=ring)
    encoded = encode_stereo(left, right, RATE)
    data_key = new_data_key()
    name = f"{call.pk}-test.ogg.enc"
    container = encrypt(encoded.data, data_key, key_id=name, chunk_size=chunk_size)
    key = object_key(call.started_at, name)
    get_audio_store().put(key, container)
    key_id, wrapped = recordings.wrap(data_key, name)
    peaks = peaks_fixed_count(np.stack([left, right], axis=1), RATE, buckets=500)
    Recording.objects.update_or_create(
        call=call,
        defaults={
            "status": Recording.Status.RECORDED,
            "state": Recording.State.DONE,
            "storage_key": key,
            "size": len(container),
            "duration_seconds": encoded.duration_seconds,
            "channels": 2,
            "sample_rate": RATE,
            "pcm_sha256": encoded.pcm_sha256,
            "key_id": key_id,
            "wrapped_key": wrapped,
            "peaks": b"".join(peaks.channels),
            "encoded_at": timezone.now(),
        },
    )  # fmt: skip
    return encoded.data
