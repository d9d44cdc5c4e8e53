"""The HEP collector in the live recorder: HEP and a mirror port into one recorder, and
`callscope capture --hep` fed over UDP and TCP on loopback with the reference captures."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from callscope.capture.hepsource import HepListener
from callscope.capture.source import CaptureConfig, read_file
from callscope.core import Datagram, Endpoint
from callscope.ingest.daemon import CaptureDaemon, Feed, SourceHealth
from callscope.ingest.pipeline import Recorder
from callscope.protocol.hep import HepChunk, HepChunkType, HepPacket
from callscope.store.models import Call, CaptureSample
from tests.ingest.test_live_recorder import SCHEMA, environment

CALLSCOPE = Path(sys.executable).with_name("callscope")


class ListSource:
    """A mirror port that delivers what the test puts in it."""

    def __init__(self) -> None:
        self.pending: list[Datagram] = []
        self.closed = False

    def read_batch(self, timeout_s: float) -> list[Datagram]:
        batch, self.pending = self.pending, []
        return batch

    def close(self) -> None:
        self.closed = True


def wire(path: Path) -> list[Datagram]:
    return list(read_file(path, config=CaptureConfig(dedup_window_ns=0)))


@pytest.mark.django_db
def test_hep_and_mirror_port_in_one_daemon_make_each_call_once(testdata: Path) -> None:
    """kamailio_5calls_sip_and_hep: the 65 SIP packets come from the mirror port, their 65
    HEP copies over UDP; one daemon, one recorder: exactly 5 calls, one sample per feed."""
    mirror = ListSource()
    datagrams = wire(testdata / "hep/kamailio_5calls_sip_and_hep.pcap")
    now = [datagrams[0].at]
    seen: list[Datagram] = []
    with (
        HepListener(Endpoint("127.0.0.1", 0)) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        feeds = [
            Feed(mirror, "interface:test", "live", lambda: SourceHealth(packets=len(seen))),
            Feed(listener, "hep:test", "hep", lambda: SourceHealth(listener.counters.packets)),
        ]
        recorder = Recorder(run_id="hep-test", record_audio=False)
        daemon = CaptureDaemon(feeds, recorder, sample_seconds=3600, clock=lambda: now[0])
        for dgram in datagrams:
            now[0] = dgram.at
            if dgram.payload[:4] == b"HEP3":
                sender.sendto(dgram.payload, (listener.address.ip, listener.address.port))
                deadline = time.monotonic() + 5
                while not daemon.process_one_batch(0.05) and time.monotonic() < deadline:
                    pass
            else:
                mirror.pending.append(dgram)
                seen.append(dgram)
                assert daemon.process_one_batch(0.05) == 1
        now[0] += 60 * 10**9
        daemon.process_one_batch(0)
        samples = daemon.write_sample(now[0])
        daemon.shutdown()
    assert listener.counters.sip == len(seen) == 65
    calls = list(Call.objects.all())
    assert len(calls) == 5
    assert {(c.result, c.ended_by) for c in calls} == {("answered", "caller")}
    assert [(s.source, s.kind, s.packets) for s in samples] == [
        ("interface:test", "live", 65),
        ("hep:test", "hep", 65),
    ]
    assert samples[0].calls_ended == 5 and samples[1].calls_ended == 0  # counted once
    assert CaptureSample.objects.count() == 4  # also the samples at shutdown
    assert mirror.closed


# -- the command -------------------------------------------------------------------------------


def start_collector(data_dir: Path, *extra: str, env: dict[str, str] | None = None):
    process = subprocess.Popen(
        [str(CALLSCOPE), "capture", "--hep", "127.0.0.1:0", "--json", "--no-audio",
         "--sample-seconds", "1", *extra],
        env={**environment(data_dir), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:
        if line.startswith("recording calls from HEP on "):
            address = Endpoint.parse(line.split()[5])
            return process, address
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError("the collector did not start")


def stop(process: subprocess.Popen[str]) -> tuple[list[dict], str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def replayed_now(path: Path, auth_key: str | None = None) -> Iterator[tuple[float, bytes]]:
    """The HEP datagrams of a capture, re-stamped as if captured now: (send at, datagram).

    Packets keep their spacing; the agent's timestamp moves to the send time (the collector
    runs the tracker's timers on its own clock, as in production)."""
    datagrams = [d for d in wire(path) if d.payload[:4] == b"HEP3"]
    first = HepPacket.parse(datagrams[0].payload).at or 0
    start_ns, start = time.time_ns() + 200_000_000, time.monotonic() + 0.2
    for dgram in datagrams:
        packet = HepPacket.parse(dgram.payload)
        offset = (packet.at or first) - first
        at = start_ns + offset
        stamps = {
            HepChunkType.TIMESTAMP_SEC: (at // 10**9).to_bytes(4, "big"),
            HepChunkType.TIMESTAMP_USEC: (at % 10**9 // 1000).to_bytes(4, "big"),
        }
        chunks = [
            replace(chunk, value=stamps[chunk.type]) if chunk.type in stamps else chunk
            for chunk in packet.chunks
            if auth_key is None or chunk.type != HepChunkType.AUTH_KEY
        ]
        if auth_key is not None:
            chunks.insert(0, HepChunk(0, HepChunkType.AUTH_KEY, auth_key.encode()))
        yield start + offset / 1e9, bytes(HepPacket(chunks=tuple(chunks)))


def send_paced(address: Endpoint, datagrams: Iterator[tuple[float, bytes]]) -> int:
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for when, data in datagrams:
            time.sleep(max(0.0, when - time.monotonic()))
            sock.sendto(data, (address.ip, address.port))
            sent += 1
    return sent


def check_kamailio_records(records: list[dict]) -> None:
    assert len(records) == 5
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["source"] == "hep"
        assert (record["result"], record["final_code"], record["ended_by"]) == (
            "answered",
            200,
            "caller",
        )
        assert record["talk_seconds"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_capture_hep_records_kamailio_calls_sent_over_udp(testdata: Path, tmp_path: Path) -> None:
    collector, address = start_collector(tmp_path / "data")
    try:
        sent = send_paced(address, replayed_now(testdata / "hep/kamailio_5calls_hep_only.pcap"))
        sent += send_paced(address, replayed_now(testdata / "hep/hep.pcap"))
        time.sleep(3.5)  # the 407 is settled by the tracker's linger, the samples are written
    finally:
        records, err = stop(collector)
    assert sent == 65 + 8
    kamailio = [r for r in records if r["call_id"] != "qgf3dm9rudi@127.0.0.1"]
    check_kamailio_records(kamailio)
    (challenged,) = [r for r in records if r["call_id"] == "qgf3dm9rudi@127.0.0.1"]
    assert (challenged["result"], challenged["final_code"]) == ("failed", 407)
    assert "73 packets, 71 SIP messages, by type {1: 71, 5: 1, 100: 1}" in err
    assert "0 dropped by the kernel" in err


@pytest.mark.slow
def test_capture_hep_over_tcp_with_an_auth_key(testdata: Path, tmp_path: Path) -> None:
    env = {"CALLSCOPE_HEP_AUTH_KEY": "s3cret", "CALLSCOPE_HEP_CAPTURE_IDS": "2001"}
    collector, address = start_collector(tmp_path / "data", env=env)
    try:
        with socket.create_connection((address.ip, address.port)) as sock:
            for when, data in replayed_now(
                testdata / "hep/kamailio_5calls_hep_only.pcap", auth_key="s3cret"
            ):
                time.sleep(max(0.0, when - time.monotonic()))
                sock.sendall(data)
            # the hepgen sample: capture id 2001 but key "myHep": refused
            for _when, data in replayed_now(testdata / "hep/hep.pcap"):
                sock.sendall(data)
            time.sleep(3.5)
    finally:
        records, err = stop(collector)
    check_kamailio_records(records)
    assert "73 packets, 65 SIP messages" in err
    assert "8 wrong key" in err
    assert "HEP packets refused since the last sample" in err


def test_capture_hep_refuses_a_bad_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CALLSCOPE), "capture", "--hep", "nowhere"],
        env=environment(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--hep nowhere: give ADDRESS:PORT" in result.stderr


def test_capture_hep_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(CALLSCOPE), "capture", "--hep", f"127.0.0.1:{port}"],
            env=environment(tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert f"--hep 127.0.0.1:{port}: Address already in use" in result.stderr
