"""Live capture through pcapy-ng, inside a private network namespace (needs root).

The capture and the sender run as two processes under ``ip netns exec`` in a namespace the
test creates, so that other traffic on this machine's ``lo`` is never seen. The namespace's
``lo`` gets an MTU of 1500 so that a large INVITE is fragmented on the wire.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscope.capture import live
from callscope.capture.live import InterfaceError, LiveSource
from tests.capture.wire import ether, ipv4, udp

REPO = Path(__file__).resolve().parents[2]
COUNT = 2000

CAPTURE = """
import json, sys, time
from callscope.capture.live import LiveSource

want = int(sys.argv[1])
with LiveSource("lo", bpf_filter="udp port 5060", batch=64) as source:
    idle = source.read_batch(0.2)  # nothing sent yet: returns empty after the timeout
    print("ready", flush=True)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < want and time.monotonic() < deadline:
        got.extend(source.read_batch(0.2))
    stats = source.stats()
    print(json.dumps({
        "idle": len(idle),
        "payloads": [d.payload.decode() for d in got],
        "sources": sorted({d.source for d in got}),
        "src": sorted({str(d.src) for d in got}),
        "dropped": stats.dropped,
        "received": stats.received,
        "reassembled": source.counters.reassembled,
    }))
"""

SEND = """
import socket, sys
count = int(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 5070))
for i in range(count - 1):
    text = b"OPTIONS sip:%d@127.0.0.1 SIP/2.0\\r\\nContent-Length: 0\\r\\n\\r\\n" % i
    sock.sendto(text, ("127.0.0.1", 5060))
big = b"INVITE sip:big@127.0.0.1 SIP/2.0\\r\\nContent-Length: 4000\\r\\n\\r\\n" + b"v" * 4000
sock.sendto(big, ("127.0.0.1", 5060))
"""


def root_or_fail() -> None:
    """Skip without root, except in CI where a skipped live test would hide a regression."""
    if os.geteuid() == 0 and shutil.which("ip"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("the live capture test needs root and iproute2 in CI")
    pytest.skip("live capture needs root (network namespace)")


@pytest.fixture
def namespace() -> Iterator[str]:
    root_or_fail()
    name = f"cs-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            ["ip", "link", "set", "lo", "mtu", "1500"],
            ["ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.network
def test_every_sip_datagram_sent_in_the_namespace_is_captured(namespace: str) -> None:
    run = ["ip", "netns", "exec", namespace, sys.executable]
    capture = subprocess.Popen(
        [*run, "-c", CAPTURE, str(COUNT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert capture.stdout is not None
        assert capture.stdout.readline().strip() == "ready"
        subprocess.run([*run, "-c", SEND, str(COUNT)], check=True, cwd=REPO, timeout=60)
        out, err = capture.communicate(timeout=60)
    finally:
        capture.kill()
    assert capture.returncode == 0, err
    result = json.loads(out)
    assert result["idle"] == 0
    payloads = result["payloads"]
    assert len(payloads) == COUNT
    assert payloads[:-1] == [
        f"OPTIONS sip:{i}@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n" for i in range(COUNT - 1)
    ]
    assert payloads[-1].endswith("v" * 4000)  # reassembled from fragments
    assert result["reassembled"] == 1
    assert result["sources"] == ["live"]
    assert result["src"] == ["127.0.0.1:5070"]
    assert result["dropped"] == 0
    assert result["received"] >= COUNT


def test_unknown_interface_is_an_interface_error() -> None:
    with pytest.raises(InterfaceError) as err:
        LiveSource("cs-no-such-if0")
    assert str(err.value) == "interface cannot be opened"
    assert err.value.interface == "cs-no-such-if0"
    assert isinstance(err.value, OSError)


def test_without_root_the_live_test_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        root_or_fail()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        root_or_fail()


class FakeHandle:
    """A libpcap handle with ``ready`` frames waiting; records every ``next_batch`` size."""

    def __init__(self, frames: list[bytes]) -> None:
        self.ready = list(frames)
        self.asked: list[int] = []

    def next_batch(self, count: int) -> tuple[bytes, bytes]:
        self.asked.append(count)
        taken, self.ready = self.ready[:count], self.ready[count:]
        data, meta = b"", b""
        for n, frame in enumerate(taken):
            meta += struct.pack("=IIII", 1_775_000_000, n, len(data), len(frame))
            data += frame
        return data, meta

    def setfilter(self, _text: str) -> None: ...

    def setnonblock(self, _on: int) -> None: ...

    def getfd(self) -> int:
        return -1  # select() on it would fail: reads with packets ready must not wait

    def datalink(self) -> int:
        return 1  # Ethernet

    def close(self) -> None: ...


def test_a_backlog_is_drained_and_handed_over_max_read_packets_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = [
        ether(ipv4("10.0.0.1", "10.0.0.2", udp(5060, 5060, b"OPTIONS %d" % n))) for n in range(10)
    ]
    handle = FakeHandle(frames)
    monkeypatch.setattr(live, "_open", lambda *_args: handle)
    source = LiveSource("cap0", batch=3, max_read=4)
    first = source.read_batch(0.2)
    assert [d.payload for d in first] == [b"OPTIONS %d" % n for n in range(4)]
    assert handle.asked == [3, 3, 3, 3]  # libpcap drained: its last batch was short
    assert source.backlog == sum(map(len, frames[3:]))  # the batch of frames 3-5 is held
    second = source.read_batch(0.2)
    assert [d.payload for d in second] == [b"OPTIONS %d" % n for n in range(4, 8)]
    third = source.read_batch(0.2)
    assert [d.payload for d in third] == [b"OPTIONS %d" % n for n in range(8, 10)]
    assert source.backlog == 0
    assert source.counters.packets == 10


def test_a_full_backlog_leaves_packets_in_libpcap(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [
        ether(ipv4("10.0.0.1", "10.0.0.2", udp(5060, 5060, b"OPTIONS %d" % n))) for n in range(10)
    ]
    handle = FakeHandle(frames)
    monkeypatch.setattr(live, "_open", lambda *_args: handle)
    source = LiveSource("cap0", batch=3, max_read=2, backlog_bytes=len(frames[0]) * 5)
    got = source.read_batch(0.2)
    assert handle.asked == [3, 3]  # 6 frames copied: the backlog was full
    assert len(handle.ready) == 4
    got += source.read_batch(0.2)
    got += source.read_batch(0.2)
    assert handle.asked == [3, 3, 3]  # room again after two reads took 4 frames
    while len(got) < 10:
        got += source.read_batch(0.2)
    assert [d.payload for d in got] == [b"OPTIONS %d" % n for n in range(10)]
