"""`callscope capture --siprec` against SIPp acting as a SIPREC recording client.

In a network namespace made by the test, SIPp places SIPREC sessions (two labelled PCMA
streams, RFC 7865 metadata with Japanese names) and plays two streams to the answered
ports; the recorder must give call records of the metadata's parties (not the client and
the server) with the caller on the left channel - her stream is label 2, so the labels'
order would get it wrong - and recordings that the encoder turns into stereo audio.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from callscope.audio.packets import Direction
from callscope.audio.spool import read_spool_file
from tests.capture.test_live import namespace, root_or_fail  # noqa: F401  (fixture)
from tests.ingest._siprec_sipp import CALLEE, CALLER, SILENCE, scenario, two_stream_pcap
from tests.ingest.test_live_recorder import SCHEMA, drain_encoder, environment, rows

CALLSCOPE = Path(sys.executable).with_name("callscope")
SRS = "127.0.0.1:5080"


def start_server(ns: str, data_dir: Path) -> subprocess.Popen[str]:
    env = environment(data_dir) | {"CALLSCOPE_SIPREC_RTP_PORTS": "40000-40199"}
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns, str(CALLSCOPE), "capture", "--siprec", SRS, "--json",
         "--encoders", "0", "--sample-seconds", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:
        if "recording SIPREC sessions on" in line:
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError("the recording server did not start")


def run_client(ns: str, workdir: Path, calls: int, rate: int, hold_ms: int) -> int:
    (workdir / "srec.xml").write_text(scenario(hold_ms), encoding="utf-8")
    packets = two_stream_pcap(workdir / "two_streams.pcap")
    client = subprocess.run(
        ["ip", "netns", "exec", ns, "sipp", "-sf", "srec.xml", SRS, "-i", "127.0.0.1",
         "-p", "5060", "-mi", "127.0.0.1", "-mp", "6000", "-m", str(calls), "-r", str(rate),
         "-nostdin", "-trace_err"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180,
    )  # fmt: skip
    assert client.returncode == 0, (workdir / "srec_errors.log").read_text(errors="replace")
    return packets


@pytest.mark.network
@pytest.mark.slow
def test_sipp_siprec_sessions_are_recorded_with_the_real_parties(namespace, tmp_path):  # noqa: F811
    root_or_fail()
    if shutil.which("sipp") is None:
        pytest.fail("sipp is missing (scripts/system-deps.sh installs it)")
    data = tmp_path / "data"
    server = start_server(namespace, data)
    try:
        packets = run_client(namespace, tmp_path, calls=6, rate=3, hold_ms=8000)
        time.sleep(3.0)  # the media tail after the BYE
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=120)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) == 6, err[-3000:]
    assert "SIPREC 127.0.0.1:5080: 6 recording sessions" in err
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["source"] == "siprec" and record["transport"] == "udp"
        assert record["result"] == "answered" and record["ended_by"] == "unknown"
        assert 7.5 < record["talk_seconds"] < 9.5
        assert (record["caller"]["number"], record["caller"]["display_name"]) == CALLER
        assert (record["callee"]["number"], record["callee"]["display_name"]) == CALLEE
        by_direction = {s["direction"]: s for s in record["streams"]}
        assert set(by_direction) == {"caller_to_callee", "callee_to_caller"}
        caller_port = int(by_direction["caller_to_callee"]["dst"].rsplit(":", 1)[1])
        callee_port = int(by_direction["callee_to_caller"]["dst"].rsplit(":", 1)[1])
        assert caller_port == callee_port + 2  # label 2 is the caller's
        assert all(s["packets"] == packets and s["lost"] == 0 and s["codec"] == "PCMA"
                   for s in record["streams"])  # fmt: skip
        siprec = record["siprec"]
        assert siprec["streams"] == [
            {"label": "1", "direction": "callee_to_caller"},
            {"label": "2", "direction": "caller_to_callee"},
        ]
        assert [(p["number"], p["role"]) for p in siprec["participants"]] == [
            (CALLER[0], "caller"), (CALLEE[0], "callee"),
        ]  # fmt: skip
        assert record["anomalies"] == []
    assert len({r["call_id"] for r in records}) == 6
    # the spool: the caller's speech on the left (0), the callee's silence on the right (1)
    spools = rows(data, "select spool_path from store_recording where state = 'pending'")
    assert len(spools) == 6
    for (path,) in spools:
        spool = read_spool_file(Path(path))
        left, right = (
            spool.packets(Direction.CALLER_TO_CALLEE),
            spool.packets(Direction.CALLEE_TO_CALLER),
        )
        assert len(left) == len(right) == packets
        assert all(set(p.payload) == {SILENCE} for p in right)
        assert sum(p.payload.count(SILENCE) for p in left) < 0.5 * 160 * packets
    samples = rows(data, "select kind, sum(packets) from store_capturesample group by kind")
    assert samples[0][0] == "siprec" and samples[0][1] >= 6 * 2 * packets
    drain_encoder(data)
    recorded = rows(data, "select status, channels, duration_seconds from store_recording")
    assert len(recorded) == 6
    assert all(s == "recorded" and ch == 2 and d > 7.0 for s, ch, d in recorded), recorded
    assert rows(data, "select count(*) from store_call where caller_display = '市民 花子'") == [
        (6,)
    ]
