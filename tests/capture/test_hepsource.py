"""The HEP collector's sockets: the reference captures replayed over UDP and TCP on loopback,
through the listener and the call tracker, against their ground truth."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from callscope.assembly.events import CallEnded
from callscope.assembly.records import CallRecord
from callscope.assembly.tracker import CallTracker
from callscope.capture.hepsource import HepListener, udp_drops
from callscope.capture.source import CaptureConfig, read_file
from callscope.core import Datagram, Endpoint
from tests.capture.test_hepdecode import hep

LOOPBACK = Endpoint("127.0.0.1", 0)


def receive(listener: HepListener, packets: int, timeout_s: float = 10.0) -> list[Datagram]:
    """Read until the listener has received ``packets`` HEP messages."""
    out: list[Datagram] = []
    deadline = time.monotonic() + timeout_s
    while listener.counters.packets < packets and time.monotonic() < deadline:
        out.extend(listener.read_batch(0.05))
    out.extend(listener.read_batch(0))
    return out


def send_udp(listener: HepListener, datagrams: Iterable[bytes]) -> int:
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, (listener.address.ip, listener.address.port))
            sent += 1
    return sent


def calls(datagrams: Iterable[Datagram]) -> list[CallRecord]:
    tracker = CallTracker()
    events = [event for d in datagrams for event in tracker.receive(d)]
    events += tracker.finish()
    return [e.record for e in events if isinstance(e, CallEnded)]


def wire(path: Path) -> list[Datagram]:
    """Every datagram of a capture as it was on the wire (no duplicate suppression)."""
    return list(read_file(path, config=CaptureConfig(dedup_window_ns=0)))


def is_hep(d: Datagram) -> bool:
    return d.payload[:4] == b"HEP3"


def check_five_kamailio_calls(records: list[CallRecord]) -> None:
    assert len(records) == 5
    assert len({r.call_id for r in records}) == 5
    for record in records:
        assert (record.result, record.final_code, record.ended_by) == ("answered", 200, "caller")
        assert record.talk_seconds == pytest.approx(1.0, abs=0.05)
        assert record.source == "hep"


@pytest.fixture
def listener() -> Iterable[HepListener]:
    with HepListener(LOOPBACK) as bound:
        yield bound


def test_hepgen_sample_over_udp_is_one_call_failed_by_407(
    testdata: Path, listener: HepListener
) -> None:
    sent = send_udp(listener, [d.payload for d in wire(testdata / "hep/hep.pcap") if is_hep(d)])
    out = receive(listener, sent)
    assert sent == 8 and len(out) == 6
    assert listener.counters.by_type == {1: 6, 5: 1, 100: 1}  # RTCP and the log: not SIP
    assert [(r.call_id, r.result, r.final_code, r.answered_at) for r in calls(out)] == [
        ("qgf3dm9rudi@127.0.0.1", "failed", 407, None)
    ]


def test_compressed_hep_over_udp_is_seven_messages_and_no_call(
    testdata: Path, listener: HepListener
) -> None:
    datagrams = [d.payload for d in wire(testdata / "hep/hep3_compressed.pcap.pcapng") if is_hep(d)]
    sent = send_udp(listener, datagrams)
    out = receive(listener, sent)
    assert sent == 21
    assert len(out) == len({d.payload for d in out}) == 7
    assert listener.counters.duplicates == 14
    # REGISTER, relayed, 401, relayed, REGISTER with credentials, relayed, 200 (README)
    first_words = [d.payload.split(b" ", 1)[0] for d in out]
    assert first_words == [b"REGISTER"] * 2 + [b"SIP/2.0"] * 2 + [b"REGISTER"] * 2 + [b"SIP/2.0"]
    assert calls(out) == []


@pytest.mark.parametrize(
    "name", ["kamailio_5calls_hep_only.pcap", "kamailio_5calls_sip_and_hep.pcap"]
)
def test_kamailio_hep_over_udp_is_five_answered_calls(
    testdata: Path, listener: HepListener, name: str
) -> None:
    sent = send_udp(listener, [d.payload for d in wire(testdata / "hep" / name) if is_hep(d)])
    out = receive(listener, sent)
    assert sent == len(out) == 65
    check_five_kamailio_calls(calls(out))
    assert listener.stats().udp_drops == 0


def test_hep_and_the_mirrored_sip_in_one_tracker_are_still_five_calls(
    testdata: Path, listener: HepListener
) -> None:
    """Each message arrives twice, as the mirror port's packet and as Kamailio's HEP copy."""
    merged: list[Datagram] = []
    mirrored = 0
    for dgram in wire(testdata / "hep/kamailio_5calls_sip_and_hep.pcap"):
        if is_hep(dgram):
            send_udp(listener, [dgram.payload])
            merged.extend(receive(listener, listener.counters.packets + 1))
        else:
            merged.append(dgram)
            mirrored += 1
    assert mirrored == 65 and len(merged) == 130
    records = calls(merged)
    assert len(records) == 5
    hep_only = {r.call_id: r for r in calls(d for d in merged if d.source == "hep")}
    for record in records:
        assert (record.result, record.ended_by) == ("answered", "caller")
        alone = hep_only[record.call_id]
        assert abs(record.answered_at - alone.answered_at) < 10_000_000  # 10 ms
        assert abs(record.ended_at - alone.ended_at) < 10_000_000


def test_kamailio_hep_over_tcp_in_odd_pieces(testdata: Path, listener: HepListener) -> None:
    stream = b"".join(
        d.payload for d in wire(testdata / "hep/kamailio_5calls_hep_only.pcap") if is_hep(d)
    )
    with socket.create_connection((listener.address.ip, listener.address.port)) as sock:
        for start in range(0, len(stream), 777):  # messages split across reads
            sock.sendall(stream[start : start + 777])
        out = receive(listener, 65)
    assert len(out) == 65
    check_five_kamailio_calls(calls(out))
    assert listener.stats().tcp_accepted == 1


def test_udp_and_tcp_share_the_port_and_hep_sample_over_tcp(
    testdata: Path, listener: HepListener
) -> None:
    datagrams = [d.payload for d in wire(testdata / "hep/hep.pcap") if is_hep(d)]
    with socket.create_connection((listener.address.ip, listener.address.port)) as sock:
        sock.sendall(b"".join(datagrams))
        out = receive(listener, 8)
    assert len(out) == 6
    assert [r.result for r in calls(out)] == ["failed"]


def test_garbage_is_counted_and_the_listener_keeps_going(listener: HepListener) -> None:
    send_udp(listener, [b"", b"hello", b"HEP3\x00\x06", b"HEP3\xff\xff" + bytes(20), hep()])
    out = receive(listener, 5)
    assert len(out) == 1
    assert listener.counters.malformed == {
        "HEP packet shorter than 6 octets": 2,
        "HEP total length exceeds the datagram": 1,
    }
    assert listener.counters.by_type == {-1: 1, 1: 1}  # an empty HEP3 packet has no type
    with socket.create_connection((listener.address.ip, listener.address.port)) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + hep(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"))
        sock.sendall(b"HEP3\x00\x30partial")  # cut: the peer goes away mid-message
        out = receive(listener, 6)
    assert [d.payload[:7] for d in out] == [b"OPTIONS"]
    deadline = time.monotonic() + 5
    while listener.stats().tcp_open and time.monotonic() < deadline:
        listener.read_batch(0.05)
    stats = listener.stats()
    assert stats.tcp_open == 0
    assert stats.tcp_discarded == len(b"GET / HTTP/1.0\r\n\r\n") + len(b"HEP3\x00\x30partial")


def test_peers_beyond_the_limit_are_refused() -> None:
    with HepListener(LOOPBACK, max_clients=1) as bound:
        address = (bound.address.ip, bound.address.port)
        with socket.create_connection(address), socket.create_connection(address) as second:
            deadline = time.monotonic() + 5
            while bound.stats().tcp_refused == 0 and time.monotonic() < deadline:
                bound.read_batch(0.05)
            second.settimeout(5)
            assert second.recv(1) == b""  # closed by the listener
            stats = bound.stats()
            assert (stats.tcp_accepted, stats.tcp_refused, stats.tcp_open) == (1, 1, 1)


def test_idle_read_returns_empty_after_the_timeout(listener: HepListener) -> None:
    started = time.monotonic()
    assert listener.read_batch(0.1) == []
    assert time.monotonic() - started >= 0.09


def test_receive_buffer_is_enlarged_and_drops_are_read_from_proc(listener: HepListener) -> None:
    assert listener.buffer_bytes >= 1 << 20
    assert listener.stats().udp_drops == 0
    assert udp_drops(inode=1) == 0  # no such socket


def test_a_full_receive_buffer_shows_as_kernel_drops() -> None:
    with HepListener(LOOPBACK, buffer_bytes=4096) as small:
        send_udp(small, [hep()] * 200)  # nobody reads: most are dropped by the kernel
        assert small.stats().udp_drops > 0
        receive(small, 200, timeout_s=0.5)
        assert small.counters.packets + small.stats().udp_drops == 200
