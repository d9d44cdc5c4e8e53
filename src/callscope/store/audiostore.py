"""Where encrypted recordings live: the local filesystem (default) or an S3-compatible
object store (the scale-out option: SeaweedFS, MinIO, Ceph, ...).

Objects are opaque encrypted containers (`callscope.audio.crypto`); the store never sees
plaintext. Keys are date-sharded (``YYYY/MM/DD/<name>``) so a directory never holds more
than one day of calls and retention walks whole days. Reads are by byte range so playback
fetches and decrypts only the chunks it needs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Protocol

from django.conf import settings

from callscope.core import CallscopeError

_KEY = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}/[A-Za-z0-9._-]{1,120}$")


class AudioStoreError(CallscopeError):
    """The audio store refused an operation or holds no such object."""


class AudioObjectMissing(AudioStoreError):
    pass


def object_key(started_at: dt.datetime, name: str) -> str:
    """The date-sharded key of a recording (UTC date of the call's start)."""
    day = started_at.astimezone(dt.UTC)
    key = f"{day:%Y/%m/%d}/{name}"
    check_key(key)
    return key


def check_key(key: str) -> None:
    if not _KEY.match(key):
        raise AudioStoreError("malformed audio object key")


class AudioStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def read_at(self, key: str, offset: int, size: int) -> bytes: ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


class FilesystemAudioStore:
    """Objects as files under a root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    def read_at(self, key: str, offset: int, size: int) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(offset)
                return handle.read(size)
        except FileNotFoundError as exc:
            raise AudioObjectMissing("no such audio object") from exc

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise AudioObjectMissing("no such audio object") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object succeeds (retention is idempotent)."""
        self._path(key).unlink(missing_ok=True)


class S3AudioStore:
    """Objects in a bucket of an S3-compatible store, read with HTTP range GETs."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        import boto3  # noqa: PLC0415  (only installations using S3 pay for the import)
        from botocore.config import Config  # noqa: PLC0415

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def read_at(self, key: str, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self._name(key),
                Range=f"bytes={offset}-{offset + size - 1}",
            )
        except self.client.exceptions.NoSuchKey as exc:
            raise AudioObjectMissing("no such audio object") from exc
        data: bytes = response["Body"].read()
        return data

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            raise AudioObjectMissing("no such audio object") from exc
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except AudioObjectMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))


def audio_store_from_url(url: str, data_dir: Path) -> AudioStore:
    """The store a ``CALLSCOPE_AUDIO_STORE`` value names (empty: DATA_DIR/audio)."""
    if not url:
        return FilesystemAudioStore(data_dir / "audio")
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3AudioStore(
            bucket=bucket,
            prefix=prefix,
            endpoint=settings.CALLSCOPE_S3_ENDPOINT,
            access_key=settings.CALLSCOPE_S3_ACCESS_KEY,
            secret_key=settings.CALLSCOPE_S3_SECRET_KEY,
            region=settings.CALLSCOPE_S3_REGION,
        )
    if url.startswith("file://"):
        return FilesystemAudioStore(Path(url.removeprefix("file://")))
    raise AudioStoreError("CALLSCOPE_AUDIO_STORE must be empty, file:///path or s3://bucket")


_STORE: AudioStore | None = None


def get_audio_store() -> AudioStore:
    """The configured audio store (one per process)."""
    global _STORE  # noqa: PLW0603  (a per-process singleton built from settings)
    if _STORE is None:
        _STORE = audio_store_from_url(settings.CALLSCOPE_AUDIO_STORE, settings.DATA_DIR)
    return _STORE
