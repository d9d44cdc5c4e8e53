"""Generated calls (demo and benchmark traffic) come back from the pipeline as planned."""

import io
import json

import pytest
from django.core.management import call_command

from callscope.core import Endpoint
from callscope.ingest.callgen import SECOND, PlannedCall, write_capture

T0 = 1_775_000_000 * SECOND  # 2026-03-31
PLAN = [
    PlannedCall("a@gen", "0781234567", "0783221111", Endpoint("10.1.0.10", 5060),
                Endpoint("10.2.0.20", 5060), 40000, 50000, T0, ring=4 * SECOND,
                talk=12 * SECOND, digits="12#", seed=1, caller_name="神戸 花子"),
    PlannedCall("b@gen", "09012345678", "0783221112", Endpoint("10.1.0.11", 5060),
                Endpoint("10.2.0.21", 5060), 40002, 50002, T0 + SECOND, result="cancelled",
                seed=2),
    PlannedCall("c@gen", "0501112222", "0783221113", Endpoint("10.1.0.12", 5060),
                Endpoint("10.2.0.22", 5060), 40004, 50004, T0 + 2 * SECOND, result="busy",
                seed=3),
    PlannedCall("d@gen", "0783221113", "0663334444", Endpoint("10.2.0.22", 5060),
                Endpoint("10.1.0.13", 5060), 40006, 50006, T0 + 3 * SECOND, talk=5 * SECOND,
                ended_by="callee", codec="PCMA", seed=4),
]  # fmt: skip
EXPECTED = {
    "a@gen": ("answered", 200, "caller", 12.0, ["1", "2", "#"], "recorded"),
    "b@gen": ("cancelled", 487, "caller", None, [], "no_media"),
    "c@gen": ("busy", 486, "callee", None, [], "no_media"),
    "d@gen": ("answered", 200, "callee", 5.0, [], "recorded"),
}


@pytest.mark.django_db
def test_generated_calls_come_back_as_planned(tmp_path):
    capture = tmp_path / "gen.pcap"
    packets = write_capture(capture, PLAN)
    assert packets > 2 * (12 + 5) * 50
    out = io.StringIO()
    call_command("import", str(capture), "--json", "--workers", "1", stdout=out,
                 stderr=io.StringIO())  # fmt: skip
    records = {r["call_id"]: r for r in map(json.loads, out.getvalue().splitlines())}
    assert set(records) == set(EXPECTED)
    for call_id, (result, code, ended_by, talk, digits, status) in EXPECTED.items():
        record = records[call_id]
        assert record["result"] == result
        assert record["final_code"] == code
        assert record["ended_by"] == ended_by
        assert record["talk_seconds"] == pytest.approx(talk, abs=0.01) if talk else True
        assert [d["digit"] for d in record["dtmf"]] == digits
        assert record["recording"]["status"] == status
        assert record["anomalies"] == []
    assert records["a@gen"]["setup_seconds"] == pytest.approx(4.04, abs=0.01)
    assert records["a@gen"]["caller"]["display_name"] == "神戸 花子"
