"""HEP in capture files: HEP datagrams of SIP become their inner messages, the rest passes."""

from __future__ import annotations

from pathlib import Path

from callscope.capture.hep_unwrap import unwrap_hep
from callscope.capture.hepdecode import HepDecoder
from callscope.capture.source import read_file
from callscope.core import Datagram, Endpoint, Timestamp, Transport
from callscope.protocol.sip import looks_like_sip

OUTER_SRC, OUTER_DST = Endpoint("127.0.0.1", 40000), Endpoint("127.0.0.1", 9060)


def test_kamailio_hep_becomes_inner_sip(testdata: Path) -> None:
    decoder = HepDecoder()
    capture = read_file(testdata / "hep" / "kamailio_5calls_hep_only.pcap")
    out = list(unwrap_hep(capture, decoder))
    assert decoder.counters.sip == len(out) == 65  # the README: 65 HEP3 datagrams of SIP
    assert all(d.source == "hep" and looks_like_sip(d.payload) for d in out)
    assert {d.src.port for d in out} <= {5060, 5070, 5080}  # inner addresses, not 9060


def test_other_hep_payloads_are_counted_not_passed(testdata: Path) -> None:
    decoder = HepDecoder()
    out = list(unwrap_hep(read_file(testdata / "hep" / "hep.pcap"), decoder))
    assert decoder.counters.sip == len(out) == 6
    assert decoder.counters.by_type == {1: 6, 100: 1, 5: 1}  # SIP, a log, RTCP as JSON


def test_mirrored_sip_passes_beside_its_hep_copies(testdata: Path) -> None:
    capture = read_file(testdata / "hep" / "kamailio_5calls_sip_and_hep.pcap")
    sources = [d.source for d in unwrap_hep(capture) if looks_like_sip(d.payload)]
    assert (sources.count("pcap"), sources.count("hep")) == (65, 65)


def test_non_hep_passes_and_bad_hep_is_counted() -> None:
    plain = Datagram(Timestamp(1), OUTER_SRC, OUTER_DST, Transport.UDP, b"\x80\x00" + bytes(10))
    broken = Datagram(Timestamp(2), OUTER_SRC, OUTER_DST, Transport.UDP, b"HEP3\x00\x07zz")
    decoder = HepDecoder()
    assert list(unwrap_hep([plain, broken], decoder)) == [plain]
    assert sum(decoder.counters.malformed.values()) == 1
