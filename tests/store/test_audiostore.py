import datetime as dt
import os

import pytest

from callscope.store.audiostore import (
    AudioObjectMissing,
    AudioStoreError,
    FilesystemAudioStore,
    S3AudioStore,
    object_key,
)
from tests.s3server import seaweedfs


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.client().create_bucket(Bucket="recordings")
        yield server


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemAudioStore(tmp_path / "audio")
    server = request.getfixturevalue("s3")
    return S3AudioStore(
        bucket="recordings",
        prefix="city/",
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
    )


def test_keys_are_sharded_by_utc_date():
    jst = dt.timezone(dt.timedelta(hours=9))
    started = dt.datetime(2026, 4, 1, 8, 30, tzinfo=jst)  # 2026-03-31 23:30 UTC
    assert object_key(started, "42.ogg.enc") == "2026/03/31/42.ogg.enc"
    with pytest.raises(AudioStoreError, match="malformed audio object key"):
        object_key(started, "../../etc/passwd")


def test_put_range_read_delete(store):
    key = "2026/11/28/call-1.ogg.enc"
    data = os.urandom(300_000)
    store.put(key, data)
    assert store.exists(key)
    assert store.size(key) == len(data)
    assert store.read_at(key, 0, 10) == data[:10]
    assert store.read_at(key, 65_536, 70_000) == data[65_536:135_536]
    assert store.read_at(key, len(data) - 5, 100) == data[-5:]
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # idempotent
    with pytest.raises(AudioObjectMissing):
        store.read_at(key, 0, 1)


def test_filesystem_writes_are_atomic(tmp_path):
    store = FilesystemAudioStore(tmp_path)
    store.put("2026/11/28/a.enc", b"x" * 10)
    leftovers = [p.name for p in (tmp_path / "2026/11/28").iterdir()]
    assert leftovers == ["a.enc"]
