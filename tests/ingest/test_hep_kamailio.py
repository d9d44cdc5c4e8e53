"""HEP from a real proxy: Debian's Kamailio (siptrace, HEPv3, trace_mode 1) proxies SIPp calls
on the loopback of a network namespace made by the test, and `callscope capture --hep`
records them from HEP alone. The oracle is the wire: tcpdump on the same loopback, read by
the capture layer and the call tracker, must give the same calls at the same times."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from callscope.assembly.events import CallEnded
from callscope.assembly.tracker import CallTracker
from callscope.capture.source import read_file
from tests.capture.test_live import namespace, root_or_fail  # noqa: F401  (fixture)
from tests.ingest.test_live_recorder import CALLSCOPE, SCHEMA, environment, sipp

CALLS = 10
TALK_MS = 2000
KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:127.0.0.1:9060")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2001)
modparam("siptrace", "trace_mode", 1)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_to_database", 0)

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
        } else if (is_method("ACK") && t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    record_route();
    $du = "sip:127.0.0.1:5070";
    t_relay();
}
"""


def need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (scripts/system-deps.sh installs them)")


def in_ns(ns: str, *command: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *command], text=True, **popen)  # type: ignore[call-overload]


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (the recorder flushes and stops its encoders), SIGKILL if that is ignored."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(process: subprocess.Popen[str], text: str, timeout_s: float = 60) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    for line in process.stderr:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"never saw {text!r}")


def wire_records(path: Path) -> dict[str, object]:
    tracker = CallTracker()
    events = [event for d in read_file(path) for event in tracker.receive(d)]
    events += tracker.finish()
    return {e.record.call_id: e.record for e in events if isinstance(e, CallEnded)}


# HEP alone; or HEP and the loopback as a mirror port in one recorder (each message then
# arrives twice: the calls must still come out once each, at the wire's times)
MODES = {
    "hep": (),
    "hep+interface": ("--interface", "lo", "--filter", "udp and not port 9060"),
}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_kamailio_calls_are_recorded_from_hep(namespace, tmp_path, mode):  # noqa: F811
    need("kamailio", "sipp", "tcpdump")
    config = tmp_path / "kamailio.cfg"
    config.write_text(KAMAILIO_CFG)
    wire = tmp_path / "wire.pcap"
    with contextlib.ExitStack() as running:  # every process is stopped, whatever fails
        collector = in_ns(
            namespace, str(CALLSCOPE), "capture", "--hep", "127.0.0.1:9060", "--json",
            "--sample-seconds", "2", *MODES[mode],
            env=environment(tmp_path / "data"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        running.callback(stop_process, collector)
        wait_for(collector, "recording calls from HEP on 127.0.0.1:9060")
        tcpdump = in_ns(
            namespace, "tcpdump", "-i", "lo", "-U", "-w", str(wire), "udp and not port 9060",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        running.callback(stop_process, tcpdump)
        wait_for(tcpdump, "listening on lo")
        log = running.enter_context((tmp_path / "kamailio.log").open("w"))
        kamailio = in_ns(
            namespace, "kamailio", "-f", str(config), "-DD", "-E", "-Y", str(tmp_path),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        running.callback(stop_process, kamailio)
        deadline = time.monotonic() + 30
        while "[127.0.0.1]:5060" not in (tmp_path / "kamailio.log").read_text():
            assert kamailio.poll() is None and time.monotonic() < deadline, "no kamailio"
            time.sleep(0.1)
        uas = sipp(namespace, tmp_path, "-sn", "uas", "-i", "127.0.0.1", "-p", "5070")
        running.callback(stop_process, uas)
        time.sleep(1.0)
        uac = sipp(namespace, tmp_path, "-sn", "uac", "127.0.0.1:5060", "-i", "127.0.0.1",
                   "-p", "5080", "-m", str(CALLS), "-r", "5", "-d", str(TALK_MS))  # fmt: skip
        running.callback(stop_process, uac)
        assert uac.wait(timeout=120) == 0
        time.sleep(3.5)  # the tracker's linger after BYE, then a health sample
        for process in (uas, kamailio, tcpdump):
            stop_process(process)
        collector.send_signal(signal.SIGTERM)
        out, err = collector.communicate(timeout=120)
    assert collector.returncode == 0, err[-3000:]
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    truth = wire_records(wire)
    assert len(truth) == CALLS  # the oracle saw every call
    assert len(records) == CALLS, err[-3000:]
    assert {r["call_id"] for r in records} == set(truth)
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["source"] == "hep" if mode == "hep" else record["source"] in {"hep", "live"}
        assert (record["result"], record["final_code"], record["ended_by"]) == (
            "answered",
            200,
            "caller",
        )
        assert record["talk_seconds"] == pytest.approx(TALK_MS / 1000, abs=0.25)
        seen = truth[record["call_id"]]
        assert record["result"] == seen.result and record["ended_by"] == seen.ended_by
        for name in ("started_at", "ringing_at", "answered_at", "ended_at"):
            hep_at = _ns(record[name])
            wire_at = getattr(seen, name)
            assert abs(hep_at - wire_at) < 20_000_000, (name, record["call_id"])  # 20 ms
    # every SIP message Kamailio received or sent, as HEP: nothing refused, nothing dropped
    assert "0 malformed, 0 wrong key, 0 from agents not allowed, 0 dropped by the kernel" in err
    summary = next(line for line in err.splitlines() if line.startswith("HEP 127.0.0.1:9060"))
    packets = int(summary.split(": ", 1)[1].split()[0])
    assert packets >= 13 * CALLS, summary


def _ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
