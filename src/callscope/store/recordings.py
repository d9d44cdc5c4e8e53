"""Opening stored recordings: master keys, data-key unwrap, ranged decryption.

Every reader of audio (the console's player, the evidence export) goes through here, so the
master-key handling exists once. The master key (``CALLSCOPE_AUDIO_MASTER_KEY``) wraps a
random data key per recording; its id is stored beside the wrapped key so that a rotated
installation still opens older recordings while their keys are being re-wrapped.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

from callscope.audio import crypto
from callscope.audio.errors import AudioError
from callscope.store.audiostore import AudioStore, get_audio_store
from callscope.store.models import Recording


class RecordingUnavailable(AudioError):
    """The recording has no audio any more (deleted by retention) or never had any."""

    kind = "audio.unavailable"


def master_key_id(master_key: bytes) -> str:
    """A short public name of a master key."""
    return hashlib.sha256(b"callscope master key id" + master_key).hexdigest()[:16]


def master_keys() -> dict[str, bytes]:
    """Every master key this installation can unwrap with, by id."""
    key: bytes = settings.AUDIO_MASTER_KEY
    return {master_key_id(key): key}


def current_master() -> tuple[str, bytes]:
    key: bytes = settings.AUDIO_MASTER_KEY
    return master_key_id(key), key


def wrap(data_key: bytes, name: str) -> tuple[str, bytes]:
    """Wrap a new recording's data key with the current master key: (key id, wrapped)."""
    key_id, master = current_master()
    return key_id, crypto.wrap_key(data_key, master, key_id, data_key_id=name)


def object_name(recording: Recording) -> str:
    return recording.storage_key.rsplit("/", 1)[-1]


def data_key(recording: Recording) -> bytes:
    """Unwrap the recording's data key (raises RecordingUnavailable once shredded)."""
    if not recording.wrapped_key or not recording.storage_key or recording.deleted_at:
        raise RecordingUnavailable("recording audio is not available")
    return crypto.unwrap_key(
        bytes(recording.wrapped_key), master_keys(), data_key_id=object_name(recording)
    )


class OpenRecording:
    """A recording's decrypted Ogg/Opus bytes, readable by range."""

    def __init__(self, recording: Recording, store: AudioStore | None = None) -> None:
        self.key = data_key(recording)
        self.store = store or get_audio_store()
        self.storage_key = recording.storage_key
        self.header = crypto.read_header(self.read_at)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.store.read_at(self.storage_key, offset, size)

    @property
    def length(self) -> int:
        """Plaintext (Ogg) length in bytes."""
        return self.header.plaintext_length

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Plaintext bytes ``[start, end)``, decrypting only the chunks they cover."""
        stop = self.length if end is None else min(end, self.length)
        return crypto.decrypt_range(self.read_at, start, stop, self.key)


def rewrap_all(old_keys: dict[str, bytes], batch: int = 500) -> int:
    """Master-key rotation: re-wrap every live data key under the current master key."""
    key_id, master = current_master()
    keys = {**old_keys, **master_keys()}
    done = 0
    queryset = Recording.objects.exclude(wrapped_key=None).exclude(key_id=key_id)
    for recording in queryset.iterator(chunk_size=batch):
        assert recording.wrapped_key is not None
        recording.wrapped_key = crypto.rewrap_key(
            bytes(recording.wrapped_key), keys, master, key_id,
            data_key_id=object_name(recording),
        )  # fmt: skip
        recording.key_id = key_id
        recording.save(update_fields=["wrapped_key", "key_id"])
        done += 1
    return done
