"""HEP glue: HEP datagrams of SIP become their inner messages, everything else passes."""

from __future__ import annotations

from pathlib import Path

from callscope.capture.hep_unwrap import HepCounters, unwrap_hep
from callscope.capture.source import read_file
from callscope.core import Datagram, Endpoint, Timestamp, Transport
from callscope.protocol.sip import looks_like_sip

OUTER_SRC, OUTER_DST = Endpoint("127.0.0.1", 40000), Endpoint("127.0.0.1", 9060)


def test_kamailio_hep_becomes_inner_sip(testdata: Path) -> None:
    counters = HepCounters()
    out = list(unwrap_hep(read_file(testdata / "hep" / "kamailio_5calls_hep_only.pcap"), counters))
    assert counters.sip == len(out) == 65  # the README: 65 HEP3 datagrams, type 1 SIP
    assert all(d.source == "hep" and looks_like_sip(d.payload) for d in out)
    assert {d.src.port for d in out} <= {5060, 5070, 5080}  # inner addresses, not 9060


def test_other_hep_payloads_are_counted_not_passed(testdata: Path) -> None:
    counters = HepCounters()
    out = list(unwrap_hep(read_file(testdata / "hep" / "hep.pcap"), counters))
    assert counters.sip == len(out) == 6
    assert counters.other == {100: 1, 5: 1}  # one log, one RTCP report as JSON


def test_non_hep_passes_and_bad_hep_is_counted() -> None:
    plain = Datagram(Timestamp(1), OUTER_SRC, OUTER_DST, Transport.UDP, b"\x80\x00" + bytes(10))
    broken = Datagram(Timestamp(2), OUTER_SRC, OUTER_DST, Transport.UDP, b"HEP3\x00\x07zz")
    counters = HepCounters()
    assert list(unwrap_hep([plain, broken], counters)) == [plain]
    assert sum(counters.errors.values()) == 1
