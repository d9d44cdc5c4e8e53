"""RFC 4733 telephone events and the per-stream DigitDetector, on real captures and fuzz."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.core import Endpoint
from callscope.protocol.errors import RtpParseError
from callscope.protocol.rtp import looks_like_rtp, parse_rtp_header
from callscope.protocol.telephone_event import DetectedEvent, DigitDetector, TelephoneEvent
from tests.protocol._hep_pcap import read_udp

StreamKey = tuple[Endpoint, Endpoint, int]
Detected = dict[StreamKey, list[DetectedEvent]]


@cache
def _detect(
    path: Path, event_payload_type: int
) -> tuple[int, dict[StreamKey, list[DetectedEvent]]]:
    """Run one detector per (src, dst, SSRC) over a capture; returns (first frame time, events)."""
    records = read_udp(path)
    detectors: dict[StreamKey, DigitDetector] = {}
    events: Detected = {}
    for record in records:
        if not looks_like_rtp(record.payload):
            continue
        payload_type, sequence, timestamp, ssrc, marker, offset, end = parse_rtp_header(
            record.payload
        )
        if payload_type != event_payload_type:
            continue
        key = (record.src, record.dst, ssrc)
        detector = detectors.setdefault(key, DigitDetector())
        found = detector.receive(record.at, timestamp, sequence, marker, record.payload[offset:end])
        events.setdefault(key, []).extend(found)
    for key, detector in detectors.items():
        events[key].extend(detector.flush())
    return records[0].at, events


def _event(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    return bytes(TelephoneEvent(event, end, volume, duration))


def test_parse_and_exact_inverse() -> None:
    # sipp_dtmf_2833_5.pcap: the End packet of digit 5
    block = TelephoneEvent.parse(bytes.fromhex("058a08c0"))
    assert block == TelephoneEvent(event=5, end=True, volume=10, duration=2240)
    assert block.digit == "5"
    assert bytes(block) == bytes.fromhex("058a08c0")
    reserved = TelephoneEvent.parse(b"\x10\x7f\xff\xff" + b"redundant")
    assert reserved == TelephoneEvent(16, False, 63, 0xFFFF, reserved=True)
    assert reserved.digit is None
    assert bytes(reserved) == b"\x10\x7f\xff\xff"
    assert [TelephoneEvent(n, False, 0, 0).digit for n in range(16)] == list("0123456789*#ABCD")


def test_short_payload_has_a_fixed_message() -> None:
    with pytest.raises(RtpParseError) as caught:
        TelephoneEvent.parse(b"\x05\x8a\x08")
    assert str(caught.value) == "telephone-event payload shorter than 4 octets"


@pytest.mark.parametrize(
    "digit", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "star", "pound"]
)
def test_sipp_digit_files(testdata: Path, digit: str) -> None:
    first, events = _detect(testdata / "pcap" / "rtp-only" / f"sipp_dtmf_2833_{digit}.pcap", 101)
    (stream,) = events.values()
    (event,) = stream  # 7 packets + 3 End copies with the same sequence number: one digit
    assert event.digit == {"star": "*", "pound": "#"}.get(digit, digit)
    assert event.at == first
    assert event.ended
    assert event.end_at is not None
    assert 139_000_000 < event.end_at - first < 141_000_000  # 8th packet, 7 x 20 ms later
    assert event.duration == 2240
    assert event.volume == 10


def test_sip_dtmf2_digits(testdata: Path) -> None:
    first, events = _detect(testdata / "pcap" / "SIP_DTMF2.cap", 96)
    (key,) = events
    assert key[0] == Endpoint("192.168.105.172", 4376)
    digits = events[key]
    assert "".join(e.digit or "?" for e in digits) == "6789123"
    # README: end-of-event at 81.65 .. 85.79 s
    assert all(e.end_at is not None for e in digits)
    ends = [round((e.end_at or 0) - first, -7) / 1e9 for e in digits]
    assert ends[0] == 81.65
    assert ends[-1] == 85.79
    assert all(e.duration == 960 for e in digits)


def test_digits_interleaved_with_audio_and_late_end_copies(testdata: Path) -> None:
    # 09a: events share the SSRC with PCMU, and a third End copy arrives after audio resumed
    first, events = _detect(testdata / "pcap" / "rtp-only" / "09a_2833_dtmf.pcap", 101)
    (digits,) = events.values()
    assert "".join(e.digit or "?" for e in digits) == "123456789**0#"
    assert all(e.ended for e in digits)
    assert round((digits[0].end_at or 0) - first, -7) / 1e9 == 15.77
    assert round((digits[-1].end_at or 0) - first, -7) / 1e9 == 38.62


def test_twenty_sipp_calls_each_send_one_digit(testdata: Path) -> None:
    _, events = _detect(testdata / "generated" / "sipp_20calls_g711a_dtmf.pcap", 101)
    # 20 callers send "1" and the echoing callee returns it: 40 streams, one digit each
    assert len(events) == 40
    assert all([e.digit for e in stream] == ["1"] for stream in events.values())


def test_lost_end_packets_are_settled_by_the_next_event() -> None:
    detector = DigitDetector()
    assert detector.receive(1000, 160, 1, True, _event(4, False, 160)) == ()
    assert detector.receive(2000, 160, 2, False, _event(4, False, 320)) == ()
    # the End packets of "4" are lost; "7" begins with a new timestamp
    (four,) = detector.receive(3000, 800, 5, True, _event(7, False, 160))
    assert four == DetectedEvent(4, "4", 1000, None, 160, 320, 10)
    assert not four.ended
    (seven,) = detector.receive(4000, 800, 6, False, _event(7, True, 480))
    assert seven == DetectedEvent(7, "7", 3000, 4000, 800, 480, 10)
    assert detector.receive(4100, 800, 6, False, _event(7, True, 480)) == ()
    assert detector.flush() == ()


def test_flush_reports_an_event_cut_by_the_end_of_the_stream() -> None:
    detector = DigitDetector()
    detector.receive(1000, 0xFFFFFF00, 1, True, _event(11, False, 160))
    (pound,) = detector.flush()
    assert pound.digit == "#"
    assert pound.end_at is None
    assert detector.flush() == ()


def test_late_copies_of_an_earlier_event_are_ignored() -> None:
    detector = DigitDetector()
    assert len(detector.receive(1, 100, 1, True, _event(1, True, 800))) == 1
    assert len(detector.receive(2, 900, 2, True, _event(2, True, 800))) == 1
    assert detector.receive(3, 100, 3, False, _event(1, True, 800)) == ()


def test_marker_bit_is_not_trusted() -> None:
    detector = DigitDetector()
    # marker set on every packet (a broken sender): still one digit per timestamp
    found = [
        event
        for n in range(6)
        for event in detector.receive(n, 4000, n, True, _event(9, n >= 3, 160 * (n + 1)))
    ]
    assert [e.digit for e in found] == ["9"]
    assert found[0].duration == 160 * 4


def test_long_event_segments_are_one_event() -> None:
    # RFC 4733 2.5.1.3: past 0xFFFF units the sender starts a new segment, no marker
    detector = DigitDetector()
    detector.receive(1, 1000, 1, True, _event(16, False, 0xFFFF))
    assert detector.receive(2, 1000 + 0xFFFF, 2, False, _event(16, False, 800)) == ()
    (flash,) = detector.receive(3, 1000 + 0xFFFF, 3, False, _event(16, True, 1600))
    assert flash.event == 16
    assert flash.digit is None  # hook flash: reported, but not a digit
    assert flash.rtp_timestamp == 1000
    assert flash.duration == 0xFFFF + 1600


def test_same_digit_twice_is_two_events() -> None:
    detector = DigitDetector()
    first = detector.receive(1, 1000, 1, True, _event(5, True, 800))
    second = detector.receive(2, 3000, 2, True, _event(5, True, 800))
    assert [e.digit for e in first + second] == ["5", "5"]


def test_short_payload_leaves_the_detector_unchanged() -> None:
    detector = DigitDetector()
    detector.receive(1, 1000, 1, True, _event(3, False, 160))
    with pytest.raises(RtpParseError):
        detector.receive(2, 1000, 2, False, b"\x03")
    (three,) = detector.receive(3, 1000, 3, False, _event(3, True, 480))
    assert three.at == 1
    assert three.end_at == 3


@given(st.binary(max_size=12))
def test_fuzz_parse_only_rtp_parse_error(data: bytes) -> None:
    try:
        block = TelephoneEvent.parse(data)
    except RtpParseError:
        return
    assert bytes(block) == data[:4]


_packets = st.lists(
    st.tuples(
        st.integers(0, 5).map(lambda n: 1000 * n),  # few timestamps: many repeats
        st.booleans(),
        st.binary(min_size=3, max_size=6),
    ),
    max_size=40,
)


@given(_packets)
def test_fuzz_detector(packets: list[tuple[int, bool, bytes]]) -> None:
    detector = DigitDetector()
    reported: list[DetectedEvent] = []
    for n, (timestamp, marker, payload) in enumerate(packets):
        try:
            reported.extend(detector.receive(n, timestamp, n, marker, payload))
        except RtpParseError:
            assert len(payload) < 4
    reported.extend(detector.flush())
    starts = [e.rtp_timestamp for e in reported]
    # a timestamp is reported at most once while it is remembered (here: always)
    assert len(starts) == len(set(starts))
    assert all(e.end_at is None or e.end_at >= e.at for e in reported)
