"""Golden tests: every capture in shared/testdata against its ground truth.

The truth is tshark's view of the wire (``*.calls.json``, ``*.tshark.txt``, the READMEs).
Where tshark-derived fields name things differently from the contract, or where its
choice is debatable, the mapping is written out below with the reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from callscope.assembly.records import CallRecord
from callscope.capture.source import read_file
from tests.assembly._assemble import answered_keys, assemble, schema, started_keys
from tests.conftest import TESTDATA

PCAP = TESTDATA / "pcap"
TRUTHS = sorted((PCAP / "ground_truth").glob("*.calls.json")) + sorted(
    (TESTDATA / "generated").glob("*.calls.json")
)
TOLERANCE = 0.010  # seconds: the brief's "within 10 ms"
SECOND = 1e9


def capture_of(truth: Path) -> Path:
    name = json.loads(truth.read_text())["capture"]
    base = PCAP if truth.parent.name == "ground_truth" else truth.parent
    return base / name


def truth_calls(truth: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads(truth.read_text())["calls"]
    return calls


def truth_streams(truth: Path) -> list[dict[str, Any]]:
    """tshark's RTP streams, without those it decoded inside ICMP errors (their src reads
    ``a,b:port``): the capture layer hands only UDP/TCP payloads to the tracker."""
    streams: list[dict[str, Any]] = json.loads(truth.read_text())["rtp_streams"]
    return [s for s in streams if "," not in s["src"]]


def ids(paths: list[Path]) -> list[str]:
    return [p.name.removesuffix(".calls.json") for p in paths]


# -- explicit mappings from tshark-derived truth to the contract ----------------------------

# GT result -> contract result. tshark's tool spells failures "failed_NNN"; the contract says
# "failed" with final_code NNN (checked apart). "no_final_response_in_capture" is in_progress,
# except when the caller sent a BYE before any final answer (sipp-branch-scenario): RFC 3261
# 15 lets only the caller end an early dialog so, which the contract calls cancelled.
RESULTS = {
    "answered": "answered",
    "busy": "busy",
    "declined": "declined",
    "no_answer": "no_answer",
    "cancelled": "cancelled",
    "no_final_response_in_capture": "in_progress",
}

# DTMFsipinfo.pcap: the client sent INVITE CSeq 1, 2, 3 with one Call-ID and From tag; the
# 200 OK to CSeq 1 came at 0.09 s (the README's answer time) and the CANCELs of CSeq 2 and 3
# came after it. tshark's tool took the last INVITE (CSeq 3) as "the initial INVITE" and its
# CANCEL as the end. The contract's answer is the first 2xx to an initial INVITE, and a
# CANCEL after the answer ends nothing (the call goes on: re-INVITEs at 30/60 s, INFO at 78 s).
DTMFSIPINFO_ANSWER = 1303892069.846846 + 0.090748


def expected_result(call: dict[str, Any]) -> str:
    result = call["result"]
    if result.startswith("failed_"):
        return "failed"
    if result == "no_final_response_in_capture" and call["bye_from"] == "caller":
        return "cancelled"
    return RESULTS[result]


def expected_times(truth: Path, call: dict[str, Any]) -> dict[str, float | None]:
    """The contract's instants from the GT's: answer, end as the contract defines them."""
    answer, end = call["t_answer"], call["t_end"]
    if truth.name.startswith("DTMFsipinfo"):
        answer, end = DTMFSIPINFO_ANSWER, None
    if call["result"] == "no_final_response_in_capture" and call["bye_from"] != "caller":
        end = None
    if call["result"] == "answered" and call["bye_from"] is None:
        end = None  # answered, no BYE in the capture: the end is unknown, never invented
    return {"started": call["t_invite"], "ringing": call["t_first_18x"], "answer": answer,
            "end": end}  # fmt: skip


def close(ours: int | None, theirs: float | None) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return abs(ours / SECOND - theirs) <= TOLERANCE


def close_seconds(ours: float | None, theirs: float | None) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return abs(ours - theirs) <= TOLERANCE


def span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


@pytest.mark.parametrize("truth", TRUTHS, ids=ids(TRUTHS))
def test_calls_match_ground_truth(truth: Path) -> None:
    assembled = assemble(capture_of(truth))
    calls = truth_calls(truth)
    assert sorted(r.call_id for r in assembled.records) == sorted(c["call_id"] for c in calls)
    for call in calls:
        record = assembled.by_call_id(call["call_id"])
        where = f"{truth.name} {call['call_id']}"
        assert record.result == expected_result(call), where
        assert (record.caller.uri, record.callee.uri) == (call["caller"], call["callee"]), where
        assert record.transport == call["transport"], where
        final = None if record.result == "in_progress" else call["final_code"]
        if record.result == "cancelled" and call["final_code"] is None:
            final = None
        assert record.final_code == final, where
        times = expected_times(truth, call)
        assert close(record.started_at, times["started"]), where
        assert close(record.ringing_at, times["ringing"]), where
        assert close(record.answered_at, times["answer"]), where
        if record.result == "failed" and call["bye_from"] is not None:
            # sipp-branch-scenario: 403 then a (non-RFC) BYE. The GT's end is the BYE; the
            # contract's is the final response, which comes between the INVITE and the BYE.
            assert times["started"] <= record.ended_at / SECOND <= times["end"], where
            continue
        assert close(record.ended_at, times["end"]), where
        settled = times["answer"] if times["answer"] is not None else times["end"]
        assert close_seconds(record.setup_seconds, span(times["started"], settled)), where
        assert close_seconds(record.ring_seconds, span(times["ringing"], settled)), where
        assert close_seconds(record.talk_seconds, span(times["answer"], times["end"])), where
        if record.result == "answered" and times["end"] is not None:
            assert record.ended_by == call["bye_from"], where


def pair_as_the_sdp_says(truth: Path) -> list[dict[str, Any]]:
    """tshark's streams with one correction. In sipp_20calls_g711a_dtmf every callee port is
    127.0.0.1:6000; tshark pairs the RFC 2833 streams that callers send to it (SSRC
    0x0E05384E, at the end of each call) with the newest call that named 6000, call 20, the
    mix-up the README warns about. The SDP pairs each with the call whose caller port sent
    it, as tshark itself does for the PCMA stream of the same flow."""
    streams = truth_streams(truth)
    if not truth.name.startswith("sipp_20calls"):
        return streams
    audio = {(s["src"], s["dst"]): s["call_id"] for s in streams if s["pts"] == ["8"]}
    return [s | {"call_id": audio[(s["src"], s["dst"])]} for s in streams]


@pytest.mark.parametrize("truth", TRUTHS, ids=ids(TRUTHS))
def test_streams_are_paired_to_the_right_call(truth: Path) -> None:
    """Every tshark stream of a call is in that call's record (same src/dst, same packets;
    tshark lists one stream per SSRC, the contract one per flow with its SSRCs); streams
    tshark pairs with no call are in no record."""
    assembled = assemble(capture_of(truth))
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    ssrcs: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    unpaired = set()
    for stream in pair_as_the_sdp_says(truth):
        if stream["call_id"] is None:
            unpaired.add((stream["src"], stream["dst"]))
            continue
        key = (stream["call_id"], stream["src"], stream["dst"])
        expected[key] += stream["packets"]
        ssrcs[key].add(int(stream["ssrc"], 16))
    ours = {(r.call_id, str(s.src), str(s.dst)): s for r in assembled.records for s in r.streams}
    assert {k: s.packets for k, s in ours.items()} == dict(expected)
    assert {k: set(s.ssrcs) for k, s in ours.items()} == dict(ssrcs)
    assert not unpaired & {(src, dst) for _, src, dst in ours}


@pytest.mark.parametrize("truth", TRUTHS, ids=ids(TRUTHS))
def test_records_follow_the_contract(truth: Path) -> None:
    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for record in assemble(capture_of(truth)).records:
        contract = record.to_contract()
        validator.validate(contract)
        assert json.loads(json.dumps(contract)) == contract
        assert "direction" not in contract  # left to the number directory


# -- DTMF -----------------------------------------------------------------------------------


def digits(record: CallRecord) -> list[tuple[str, str, str]]:
    return [(d.digit, d.direction, d.method) for d in record.dtmf]


def test_rfc2833_digits_of_sip_dtmf2() -> None:
    record = assemble(PCAP / "SIP_DTMF2.cap").by_call_id("25672@192.168.105.110")
    # the events flow from the relay 192.168.105.172 to the port the callee's 200 OK
    # offered, so the SDP makes them the caller's (both ends of this call are .110)
    assert digits(record) == [(d, "caller_to_callee", "rfc4733") for d in "6789123"]
    # the README gives the end-of-event times: 81.65 .. 85.79 s into the capture; a digit's
    # time is its first packet, a few hundred ms before its end
    start = next(iter(read_file(PCAP / "SIP_DTMF2.cap"))).at
    offsets = [(d.at - start) / SECOND for d in record.dtmf]
    assert 81.65 - 1.0 <= offsets[0] <= 81.65
    assert 85.79 - 1.0 <= offsets[-1] <= 85.79


def test_sip_info_digits_of_dtmfsipinfo() -> None:
    record = assemble(PCAP / "DTMFsipinfo.pcap").records[0]
    assert digits(record) == [(d, "caller_to_callee", "sip_info") for d in "1342"]
    start = record.started_at
    offsets = [round((d.at - start) / SECOND, 1) for d in record.dtmf]
    assert offsets == [7.0, 10.8, 76.4, 78.4]


def test_sipp_echoed_digit_counts_once_per_call() -> None:
    """SIPp's uac_pcap sends RFC 2833 digit 1; the uas with -rtp_echo sends it straight
    back: that echo is not the callee pressing 1."""
    records = assemble(TESTDATA / "generated" / "sipp_20calls_g711a_dtmf.pcap").records
    assert len(records) == 20
    for record in records:
        assert digits(record) == [("1", "caller_to_callee", "rfc4733")]
        assert dict(record.anomalies)["dtmf.echo"] == 1


# -- encrypted media, video, early media, conversations -------------------------------------


def test_zrtp_call_is_reported_encrypted() -> None:
    record = assemble(PCAP / "Asterisk_ZFONE_XLITE.pcap").records[0]
    assert record.recording_status == "encrypted"
    assert record.to_contract()["recording"]["status"] == "encrypted"
    assert "media.zrtp" in dict(record.anomalies)


def test_video_only_call_is_not_audio() -> None:
    record = assemble(PCAP / "h263-over-rtp.pcap").records[0]
    assert [(s.media, s.codec) for s in record.streams] == [("video", "H263")]
    assert record.recording_status == "video_only"


def test_b2bua_legs_share_one_conversation() -> None:
    records = assemble(PCAP / "b2bua-asterisk.pcapng").records
    assert len(records) == 2
    assert {r.conversation_id for r in records} == {"M2Q0ZDc1ZGM1NzIyMTlhZTA3NDU3NTgzMzA5YmJmZWQ."}


def test_independent_calls_are_not_linked() -> None:
    for name in ("sipp-branch-scenario.pcapng", "SIP_DTMF2.cap", "sip-routing-error.pcapng"):
        for record in assemble(PCAP / name).records:
            assert record.conversation_id == record.call_id, (name, record.call_id)
    generated = assemble(TESTDATA / "generated" / "sipp_20calls_g711a_dtmf.pcap").records
    assert all(r.conversation_id == r.call_id for r in generated)


def test_payload_type_maps_for_the_audio_layer() -> None:
    record = assemble(PCAP / "invite-opus-bye.pcap").records[0]
    for stream in record.streams:
        assert stream.payload_map[96][0].lower() == "opus"
        assert stream.payload_map[96][1] == 48000  # RFC 7587 4.1: always 48000
    g722 = assemble(PCAP / "sip-rtp-g722.pcap").records[0].streams[0]
    assert g722.codec == "G722"
    assert g722.payload_map[9][1] == 8000  # RFC 3551 4.5.2


def test_codec_change_by_reinvite_stays_one_call() -> None:
    record = assemble(PCAP / "codec-negotiation.pcap").records[0]
    assert record.result == "answered"
    assert {s.payload_types for s in record.streams} == {(0, 9)}
    assert len(record.streams) == 2


def test_ladder_has_each_message_once_per_hop() -> None:
    record = assemble(TESTDATA / "generated" / "baresip_call_pcmu_8s.pcap").records[0]
    labels = [entry.label for entry in record.ladder]
    assert labels[0] == "INVITE"
    assert "200 OK" in labels
    assert labels.count("BYE") == 1
    assert record.ladder_json()[0]["direction"] == "caller_to_callee"


# -- captures without calls, robustness -----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["sip-auth-failure.pcapng", "sip-register.pcap"] + [
        f"rtp-only/{p.name}" for p in sorted((PCAP / "rtp-only").glob("*.pcap"))
    ],
)  # fmt: skip
def test_captures_with_no_calls_produce_no_records(name: str) -> None:
    assembled = assemble(PCAP / name)
    assert assembled.records == ()
    assert started_keys(assembled.events) == []


def test_protos_and_spoof_captures_import_without_a_crash() -> None:
    protos = assemble(PCAP / "c07-sip-r2.cap")
    assert [(r.call_id, r.result) for r in protos.records] == [("0@localhost", "in_progress")]
    spoof = assemble(PCAP / "metasploit-sip-invite-spoof.pcap").records
    assert [(r.result, r.ended_at, r.ringing_at is not None) for r in spoof] == [
        ("in_progress", None, True)
    ]


def test_bye_after_403_does_not_make_a_call_answered() -> None:
    assembled = assemble(PCAP / "sipp-branch-scenario.pcapng")
    results: dict[str, int] = defaultdict(int)
    for record in assembled.records:
        results[record.result] += 1
    # 102 answered, 1148 failed 403, 84 without a final answer (those with a caller BYE
    # are cancelled, see RESULTS)
    assert results["answered"] == 102
    assert results["failed"] == 1148
    assert results["cancelled"] + results["in_progress"] == 84
    assert len(answered_keys(assembled.events)) == 102


# -- RTP-only captures: no calls, but the streams are known ---------------------------------

RTP_ONLY = sorted((PCAP / "ground_truth").glob("rtp-only_*.calls.json"))


@pytest.mark.parametrize("truth", RTP_ONLY, ids=ids(RTP_ONLY))
def test_rtp_only_streams_are_found_heuristically(truth: Path) -> None:
    assembled = assemble(capture_of(truth))
    expected = {(s["src"], s["dst"]): s["packets"] for s in truth_streams(truth)}
    found = {(str(o.src), str(o.dst)): o.packets for o in assembled.tracker.orphan_streams()}
    assert found == expected


DIGIT_FILES = {f"sipp_dtmf_2833_{d}.pcap": d for d in "0123456789"} | {
    "sipp_dtmf_2833_star.pcap": "*",
    "sipp_dtmf_2833_pound.pcap": "#",
}


@pytest.mark.parametrize(("name", "digit"), sorted(DIGIT_FILES.items()))
def test_rtp_only_digits(name: str, digit: str) -> None:
    orphans = assemble(PCAP / "rtp-only" / name).tracker.orphan_streams()
    assert [o.digits for o in orphans] == [(digit,)]


def test_rtp_only_digit_sequence() -> None:
    orphans = assemble(PCAP / "rtp-only" / "09a_2833_dtmf.pcap").tracker.orphan_streams()
    assert [o.digits for o in orphans] == [tuple("123456789**0#")]


# -- HEP ------------------------------------------------------------------------------------

HEP = TESTDATA / "hep"


def test_hep_sample_is_one_call_failed_by_the_challenge() -> None:
    records = assemble(HEP / "hep.pcap").records
    assert [(r.call_id, r.result, r.final_code, r.source) for r in records] == [
        ("qgf3dm9rudi@127.0.0.1", "failed", 407, "hep")
    ]


def test_compressed_hep_registrations_are_no_calls() -> None:
    assert assemble(HEP / "hep3_compressed.pcap.pcapng").records == ()


@pytest.mark.parametrize(
    "name", ["kamailio_5calls_hep_only.pcap", "kamailio_5calls_sip_and_hep.pcap"]
)
def test_kamailio_calls_through_hep_are_exactly_five(name: str) -> None:
    records = assemble(HEP / name).records
    assert len(records) == 5
    for record in records:
        assert (record.result, record.final_code, record.ended_by) == ("answered", 200, "caller")
        assert record.talk_seconds == pytest.approx(1.0, abs=0.05)


def test_hep_copies_and_the_wire_give_the_same_calls() -> None:
    """Each message is seen twice (mirrored packet and HEP copy): times come from the
    first copy, so they agree with the HEP-only capture within the 10 ms tolerance."""
    alone = {r.call_id: r for r in assemble(HEP / "kamailio_5calls_hep_only.pcap").records}
    both = {r.call_id: r for r in assemble(HEP / "kamailio_5calls_sip_and_hep.pcap").records}
    assert alone.keys() == both.keys()
    for call_id, record in both.items():
        other = alone[call_id]
        for name in ("started_at", "ringing_at", "answered_at", "ended_at"):
            assert abs(getattr(record, name) - getattr(other, name)) <= TOLERANCE * SECOND
