"""The live recorder against real SIP peers: SIPp calls with G.711 and RFC 2833 DTMF on the
loopback of a network namespace made by the test; `callscope capture` records them.

Also the crash test: kill -9 the recorder while calls are up, restart it, and every call
that had finished before the kill has its recording.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.capture.test_live import namespace, root_or_fail  # noqa: F401  (fixture)

CALLSCOPE = Path(sys.executable).with_name("callscope")
SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2].parent / "shared/contracts/call-record.schema.json"
    ).read_text(encoding="utf-8")
)


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    env.update(CALLSCOPE_DATA_DIR=str(data_dir), CALLSCOPE_LOG_FORMAT="json")
    return env


def start_recorder(ns: str, data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns, str(CALLSCOPE), "capture", "--interface", "lo",
         "--json", "--sample-seconds", "2", *extra],
        env=environment(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    assert process.stderr is not None
    for line in process.stderr:  # wait until the interface is open
        if "recording calls on lo" in line:
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError("the recorder did not start")


def sipp(ns: str, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    pcap = workdir / "pcap"
    if not pcap.exists():
        pcap.symlink_to("/usr/share/sip-tester")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "sipp", *args, "-nostdin", "-trace_err"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def place_calls(ns: str, workdir: Path, calls: int, rate: int) -> subprocess.Popen[bytes]:
    return sipp(ns, workdir, "-sn", "uac_pcap", "127.0.0.1:5070", "-i", "127.0.0.1",
                "-p", "5060", "-mi", "127.0.0.1", "-mp", "7000", "-m", str(calls),
                "-r", str(rate))  # fmt: skip


def answer_calls(ns: str, workdir: Path) -> subprocess.Popen[bytes]:
    return sipp(ns, workdir, "-sn", "uas", "-i", "127.0.0.1", "-p", "5070",
                "-mi", "127.0.0.1", "-mp", "6000", "-rtp_echo")  # fmt: skip


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    return out, err


def drain_encoder(data_dir: Path) -> None:
    result = subprocess.run(
        [str(CALLSCOPE), "shell", "-c",
         "from callscope.ingest.encoder import drain; drain()"],
        env=environment(data_dir), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "callscope.sqlite3") as db:
        return db.execute(sql).fetchall()


@pytest.mark.network
@pytest.mark.slow
def test_sipp_calls_are_recorded_live(namespace, tmp_path):  # noqa: F811
    if shutil.which("sipp") is None:
        pytest.fail("sipp is missing (scripts/system-deps.sh installs it)")
    data = tmp_path / "data"
    recorder = start_recorder(namespace, data)
    uas = answer_calls(namespace, tmp_path)
    try:
        uac = place_calls(namespace, tmp_path, calls=10, rate=5)
        assert uac.wait(timeout=120) == 0
        time.sleep(1.0)
    finally:
        uas.terminate()
        uas.wait(timeout=10)
        out, err = stop(recorder)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) == 10, err[-2000:]
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["source"] == "live"
        assert record["result"] == "answered", record
        assert record["ended_by"] == "caller"
        assert 8.5 < record["talk_seconds"] < 10.5
        assert [d["digit"] for d in record["dtmf"]] == ["1"]
        directions = {s["direction"] for s in record["streams"] if s["media"] == "audio"}
        assert directions == {"caller_to_callee", "callee_to_caller"}
    assert len({r["call_id"] for r in records}) == 10
    samples = rows(data, "select sum(packets), sum(kernel_drops) from store_capturesample")
    assert samples[0][0] > 10 * 400 and samples[0][1] == 0
    drain_encoder(data)
    recorded = rows(data, "select status, duration_seconds from store_recording")
    assert len(recorded) == 10
    # g711a.pcap holds 4.72 s of audio, placed from the INVITE on the call timeline
    assert all(status == "recorded" and duration > 6.5 for status, duration in recorded), recorded


@pytest.mark.network
@pytest.mark.slow
def test_kill_9_loses_no_finished_call(namespace, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    recorder = start_recorder(namespace, data, "--encoders", "0")
    uas = answer_calls(namespace, tmp_path)
    try:
        # calls last ~9 s; at 1 call/s the kill at ~13 s finds some ended and some up
        uac = place_calls(namespace, tmp_path, calls=8, rate=1)
        time.sleep(13.0)
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=10)
        finished_before_kill = [
            json.loads(line) for line in recorder.stdout.read().splitlines()
            if line.startswith("{")
        ]  # fmt: skip
        restarted = start_recorder(namespace, data)
        uac.wait(timeout=60)
        time.sleep(1.0)
    finally:
        uas.terminate()
        uas.wait(timeout=10)
    stop(restarted)
    assert 1 <= len(finished_before_kill) < 8
    drain_encoder(data)
    for record in finished_before_kill:
        (status,) = rows(
            data,
            "select r.status from store_recording r join store_call c on c.id = r.call_id "
            f"where c.call_id = '{record['call_id']}'",
        )
        assert status[0] == "recorded", record["call_id"]
    # calls that were up at the kill come back from their spools as partial recordings
    interrupted = rows(
        data,
        "select r.status from store_recording r join store_call c on c.id = r.call_id "
        "where c.result = 'in_progress'",
    )
    assert interrupted and all(status == "partial" for (status,) in interrupted)
