"""read_file over every shared capture: the Datagrams tshark sees, counters, file errors."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from callscope.capture.errors import CaptureParseError
from callscope.capture.source import CaptureConfig, CaptureCounters, read_file
from callscope.core import Anomaly, Endpoint, Transport
from tests.capture.test_pcapfile import RECORDS

# (UDP datagrams, SIP messages over TCP) per file, from tshark 4.0.17:
#   tshark -r FILE -Y "udp and not icmp" | wc -l     (ICMP errors quote a UDP header)
#   tshark -r FILE -Y "sip and tcp" | wc -l
EXPECTED = {
    "pcap/Asterisk_ZFONE_XLITE.pcap": (1042, 0),
    "pcap/DTMFsipinfo.pcap": (32, 0),  # PPPoE
    "pcap/SIP_CALL_RTP_G711": (3583, 0),  # plus telnet/HTTP over TCP: not SIP
    "pcap/SIP_DTMF2.cap": (1360, 0),
    "pcap/b2bua-asterisk.pcapng": (416, 0),
    "pcap/c07-sip-r2.cap": (39, 0),
    "pcap/codec-negotiation.pcap": (614, 0),
    "pcap/h263-over-rtp.pcap": (49, 0),  # BSD loopback
    "pcap/invite-opus-bye.pcap": (311, 0),
    "pcap/metasploit-sip-invite-spoof.pcap": (2, 0),
    "pcap/register-invite-reinvite-bye.pcap": (230, 0),
    "pcap/rtp-protocol.pcap": (259, 0),
    "pcap/sip-488-codec-reject.pcapng": (13, 0),
    "pcap/sip-auth-failure.pcapng": (8, 0),
    "pcap/sip-over-tcp.pcap": (68, 7),
    "pcap/sip-proxy.pcap": (11, 0),
    "pcap/sip-register.pcap": (2, 0),
    "pcap/sip-routing-error.pcapng": (58, 0),
    "pcap/sip-rtp-g711.pcap": (852, 0),
    "pcap/sip-rtp-g722.pcap": (433, 0),
    "pcap/sip-rtp-g729a.pcap": (433, 0),
    "pcap/sip-rtp-opus-hybrid.pcap": (7, 0),
    "pcap/sip-sdp-example.pcap": (7, 0),
    "pcap/sipp-branch-scenario.pcapng": (8989, 0),
    "pcap/rtp-only/09a_2833_dtmf.pcap": (2165, 0),
    "pcap/rtp-only/10a_g722.pcap": (969, 0),
    "pcap/rtp-only/11a_g721.pcap": (9714, 0),
    "pcap/rtp-only/12a_g729.pcap": (1071, 0),
    "pcap/rtp-only/g722_108s.pcap": (5413, 0),
    **{f"pcap/rtp-only/sipp_dtmf_2833_{d}.pcap": (10, 0) for d in [*"0123456789", "pound", "star"]},
    "pcap/rtp-only/sipp_g711a.pcap": (236, 0),
    "pcap/rtp-only/speech_8k_ulaw.pcap": (835, 0),  # Linux cooked
    "generated/baresip_call_pcmu_8s.pcap": (814, 0),
    "generated/sipp_20calls_g711a_dtmf.pcap": (9960, 0),
    "hep/hep.pcap": (8, 0),
    "hep/hep3_compressed.pcap.pcapng": (21, 0),  # Linux cooked; 7 are mirror duplicates
    "hep/kamailio_5calls_hep_only.pcap": (65, 0),
    "hep/kamailio_5calls_sip_and_hep.pcap": (130, 0),
}
DUPLICATES = {"hep/hep3_compressed.pcap.pcapng": 7}


def test_expectations_cover_every_capture() -> None:
    assert set(EXPECTED) == set(RECORDS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_datagrams_of_every_shared_capture(testdata: Path, name: str) -> None:
    counters = CaptureCounters()
    datagrams = list(read_file(testdata / name, counters=counters))
    udp, tcp = EXPECTED[name]
    duplicates = DUPLICATES.get(name, 0)
    assert sum(d.transport is Transport.UDP for d in datagrams) == udp - duplicates
    assert sum(d.transport is Transport.TCP for d in datagrams) == tcp
    assert counters.packets == RECORDS[name]
    assert counters.datagrams == len(datagrams)
    assert counters.duplicates == duplicates
    assert counters.errors == {}
    assert not counters.truncated
    assert all(d.source == "pcap" and d.vlan is None for d in datagrams)


def test_first_datagram_of_linux_cooked_and_loopback_files(testdata: Path) -> None:
    # `tshark -r F -c 1 -T fields -e ip.src -e udp.srcport -e ip.dst -e udp.dstport -e udp.length`
    first = next(iter(read_file(testdata / "pcap/rtp-only/speech_8k_ulaw.pcap")))
    assert (first.src, first.dst, len(first.payload)) == (
        Endpoint("10.0.0.60", 6000),
        Endpoint("172.20.0.30", 6000),
        180 - 8,
    )
    first = next(iter(read_file(testdata / "pcap/h263-over-rtp.pcap", source="live")))
    assert (first.src, first.dst, len(first.payload)) == (
        Endpoint("127.0.0.1", 13764),
        Endpoint("127.0.0.1", 5060),
        947 - 8,
    )
    assert first.source == "live"


def test_truncated_file_is_reported_in_the_counters(testdata: Path) -> None:
    raw = (testdata / "pcap/sip-rtp-g711.pcap").read_bytes()
    counters = CaptureCounters()
    got = list(read_file(io.BytesIO(raw[: len(raw) // 2]), counters=counters))
    assert 0 < len(got) < 852
    assert got == list(read_file(io.BytesIO(raw)))[: len(got)]
    assert counters.truncated
    assert counters.errors == {"capture.truncated": 1}
    assert counters.anomalies == [
        Anomaly("capture.truncated", "capture file ends inside a record", counters.anomalies[0].at)
    ]
    assert counters.anomalies[0].at is not None


def test_damaged_record_in_the_middle_is_an_anomaly() -> None:
    from tests.capture import wire

    good = wire.ether(wire.ipv4("192.0.2.1", "192.0.2.2", wire.udp(1, 2, b"rtp")))
    data = wire.pcap([(10**18, good), (10**18 + 1, good)])
    data += struct.pack("<IIII", 0, 0, 10**6, 10**6)  # record longer than the limit
    counters = CaptureCounters()
    got = list(
        read_file(io.BytesIO(data), counters=counters, config=CaptureConfig(dedup_window_ns=0))
    )
    assert len(got) == 2
    assert not counters.truncated
    assert counters.errors == {"capture.parse": 1}
    assert counters.anomalies[0].detail == "record length exceeds limit"


def test_not_a_capture_raises_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("INVITE sip:bob@example.org SIP/2.0\r\n")
    with pytest.raises(CaptureParseError) as err:
        read_file(path)
    assert str(err.value) == "capture file format not recognised"


def test_counters_are_live_during_iteration(testdata: Path) -> None:
    counters = CaptureCounters()
    iterator = read_file(testdata / "generated/sipp_20calls_g711a_dtmf.pcap", counters=counters)
    for _ in range(100):
        next(iterator)
    assert counters.datagrams == 100
    assert counters.packets == 100
    iterator.close()  # type: ignore[attr-defined]
