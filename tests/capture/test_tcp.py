"""TCP reassembly into SIP messages: a real SIP-over-TCP capture and synthetic streams."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.capture.pcapfile import open_capture
from callscope.capture.source import CaptureCounters, PacketPipeline, read_file
from callscope.capture.tcp import TcpReassembler
from callscope.core import Datagram, Endpoint, Transport
from tests.capture import wire

AT = 1_764_000_000_000_000_000
MS = 1_000_000
CLIENT = Endpoint("10.33.6.100", 64802)
SERVER = Endpoint("10.33.6.101", 5060)

# `tshark -r sip-over-tcp.pcap -Y "tcp.len>0" -T fields -e frame.number -e frame.time_epoch
#  -e tcp.len -e sip.Method -e sip.Status-Code`
TSHARK_MESSAGES = [
    (3, 1311857686562096000, 788, b"INVITE sip:201@10.33.6.101;user=phone SIP/2.0", CLIENT),
    (5, 1311857686602589000, 447, b"SIP/2.0 100 Trying", SERVER),
    (7, 1311857686621123000, 499, b"SIP/2.0 180 Ringing", SERVER),
    (9, 1311857690905636000, 752, b"SIP/2.0 200 OK", SERVER),
    (11, 1311857690933132000, 536, b"ACK sip:201@10.33.6.101:5060;transport=tcp SIP/2.0", CLIENT),
    (81, 1311857693057152000, 536, b"BYE sip:101@10.33.6.100:5060;transport=tcp SIP/2.0", SERVER),
    (83, 1311857693088359000, 477, b"SIP/2.0 200 OK", CLIENT),
]


def tcp_datagrams(datagrams: list[Datagram]) -> list[Datagram]:
    return [d for d in datagrams if d.transport is Transport.TCP]


def test_sip_over_tcp_capture_yields_complete_messages(testdata: Path) -> None:
    counters = CaptureCounters()
    got = tcp_datagrams(list(read_file(testdata / "pcap/sip-over-tcp.pcap", counters=counters)))
    assert len(got) == 7
    for datagram, (_frame, at, size, start, src) in zip(got, TSHARK_MESSAGES, strict=True):
        assert datagram.at == at
        assert len(datagram.payload) == size
        assert datagram.payload.split(b"\r\n", 1)[0] == start
        assert datagram.src == src
        assert datagram.dst == (SERVER if src == CLIENT else CLIENT)
    assert counters.tcp_messages == 7
    assert counters.tcp_segments == 16
    assert counters.errors == {}


def test_mid_stream_pickup(testdata: Path) -> None:
    records = list(open_capture(testdata / "pcap/sip-over-tcp.pcap"))
    # the capture starts after the handshake and after the INVITE
    pipeline = PacketPipeline()
    got = tcp_datagrams(list(pipeline.datagrams(records[3:])))
    assert [d.payload.split(b"\r\n", 1)[0] for d in got] == [m[3] for m in TSHARK_MESSAGES[1:]]
    # the capture starts after the handshake only
    pipeline = PacketPipeline()
    assert len(tcp_datagrams(list(pipeline.datagrams(records[2:])))) == 7


def test_non_sip_tcp_is_dropped_cheaply(testdata: Path) -> None:
    pipeline = PacketPipeline()
    datagrams = list(pipeline.datagrams(open_capture(testdata / "pcap/SIP_CALL_RTP_G711")))
    assert tcp_datagrams(datagrams) == []
    assert pipeline.counters.tcp_segments == 522
    assert pipeline.tcp.counters.non_sip_streams >= 8  # telnet and HTTP connections


# -- synthetic streams -----------------------------------------------------------------------

A, B = "192.0.2.1", "192.0.2.2"


IDENTS = itertools.count(1)


def seg(seq: int, payload: bytes = b"", flags: str = "PA", sport: int = 40000) -> bytes:
    # every segment gets its own IP identification, as a real retransmission does
    l4 = wire.tcp(sport, 5060, seq, flags, payload)
    return wire.ether(wire.ipv4(A, B, l4, proto=6, ident=next(IDENTS) & 0xFFFF))


def run(frames: list[bytes], **kwargs: int) -> tuple[list[bytes], PacketPipeline]:
    pipeline = PacketPipeline()
    for name, value in kwargs.items():
        setattr(pipeline.tcp, name, value)
    records = [(AT + i * MS, 1, f, len(f)) for i, f in enumerate(frames)]
    return [d.payload for d in pipeline.datagrams(records)], pipeline


INVITE = wire.sip_request("INVITE", b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n" * 20)
BYE = wire.sip_request("BYE", call_id="c2")
ISN = 1000


def test_split_message_out_of_order_and_retransmitted() -> None:
    a, b, c = INVITE[:100], INVITE[100:400], INVITE[400:]
    s1 = ISN + 1
    frames = [
        seg(ISN, flags="S"),
        seg(s1 + 400, c),  # third piece first
        seg(s1, a),
        seg(s1, a),  # retransmission
        seg(s1 + 100, b),  # fills the hole
        seg(s1 + 100, b + c),  # retransmission overlapping everything
        seg(s1 + len(INVITE), BYE),
    ]
    messages, pipeline = run(frames)
    assert messages == [INVITE, BYE]
    counters = pipeline.tcp.counters
    assert counters.out_of_order == 1
    assert counters.retransmissions == 2


def test_partial_overlap_is_trimmed() -> None:
    s1 = ISN + 1
    frames = [seg(ISN, flags="S"), seg(s1, INVITE[:300]), seg(s1 + 200, INVITE[200:])]
    messages, _pipeline = run(frames)
    assert messages == [INVITE]


def test_two_messages_in_one_segment_and_keepalives() -> None:
    frames = [seg(ISN, flags="S"), seg(ISN + 1, b"\r\n\r\n" + INVITE + BYE)]
    messages, _pipeline = run(frames)
    assert messages == [INVITE, BYE]


def test_sequence_number_wraps_around() -> None:
    isn = 0xFFFFFF00
    s1 = (isn + 1) & 0xFFFFFFFF
    half = 0x100 - 1
    frames = [
        seg(isn, flags="S"),
        seg(s1, INVITE[:half]),
        seg((s1 + half) & 0xFFFFFFFF, INVITE[half:]),
    ]
    messages, _pipeline = run(frames)
    assert messages == [INVITE]


def test_lost_segment_is_given_up_and_the_stream_resynchronises() -> None:
    s1 = ISN + 1
    after = s1 + len(INVITE)
    frames = [
        seg(ISN, flags="S"),
        seg(s1, INVITE[:100]),
        # INVITE[100:] never captured
        seg(after, BYE),
    ]
    pipeline = PacketPipeline()
    records = [(AT + i * 3_000 * MS, 1, f, len(f)) for i, f in enumerate(frames)]
    list(pipeline.datagrams(records))
    # the BYE waits behind the hole until the gap timeout (2 s of packet time) ...
    late = seg(after + len(BYE), BYE.replace(b"c2", b"c3"))
    got = [d.payload for d in pipeline.datagrams([(AT + 10_000 * MS, 1, late, len(late))])]
    assert got == [BYE, BYE.replace(b"c2", b"c3")]
    assert pipeline.tcp.counters.gaps == 1


def test_tls_and_other_protocols_are_not_sip() -> None:
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40
    messages, pipeline = run(
        [seg(ISN, flags="S"), seg(ISN + 1, hello), seg(ISN + 1 + len(hello), INVITE)]
    )
    assert messages == []
    assert (pipeline.tcp.counters.non_sip_streams, pipeline.tcp.counters.tls_streams) == (1, 1)


def test_rst_and_fin_end_streams() -> None:
    frames = [seg(ISN, flags="S"), seg(ISN + 1, INVITE[:50]), seg(ISN + 51, flags="R")]
    messages, pipeline = run(frames)
    assert messages == [] and len(pipeline.tcp) == 0
    frames = [seg(ISN, flags="S"), seg(ISN + 1, INVITE, flags="FPA")]
    messages, pipeline = run(frames)
    assert messages == [INVITE] and len(pipeline.tcp) == 0


def test_stream_count_is_bounded_and_idle_streams_expire() -> None:
    frames = [seg(ISN, INVITE[:10], sport=40000 + i) for i in range(10)]
    _messages, pipeline = run(frames, max_streams=4)
    assert len(pipeline.tcp) == 4
    assert pipeline.tcp.counters.evicted == 6
    pipeline.tcp.expire(AT + 10**15)
    assert len(pipeline.tcp) == 0


def test_message_split_at_the_end_of_capture_is_counted() -> None:
    counters = CaptureCounters()
    pipeline = PacketPipeline(counters=counters)
    frames = [seg(ISN, flags="S"), seg(ISN + 1, INVITE[:200])]
    assert list(pipeline.datagrams([(AT + i, 1, f, len(f)) for i, f in enumerate(frames)])) == []
    assert counters.errors == {"tcp.incomplete": 1}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 2**32 - 1),
            st.integers(0, 31),
            st.binary(max_size=300),
        ),
        max_size=40,
    )
)
def test_fuzz_segments_never_raise_and_stay_bounded(
    segments: list[tuple[int, int, int, bytes]],
) -> None:
    tcp = TcpReassembler(max_streams=2, max_out_of_order=1024)
    for i, (key, seq, flags, payload) in enumerate(segments):
        for message in tcp.push(AT + i, key, seq, flags, b"INVITE sip:x SIP/2.0\r\n" + payload):
            assert isinstance(message, bytes)
        assert len(tcp) <= 2
        assert all(s.pending_bytes <= 1024 + 400 for s in tcp._streams.values())


def test_memory_bound_over_all_streams() -> None:
    tcp = TcpReassembler(max_total=10_000)
    partial = INVITE[:-10]  # Content-Length says more is coming: the framer holds it
    for port in range(5):
        tcp.push(AT + port, port, ISN, 0x02, b"")
        assert tcp.push(AT + port, port, ISN + 1, 0x18, partial * 1) == []
        tcp.push(AT + port, port, ISN + 1 + len(partial), 0x18, b"x" * 3000)
    assert tcp.held_bytes <= 10_000
    assert tcp.counters.evicted >= 2
    assert len(tcp) <= 3


def test_segments_of_rejected_streams_skip_the_duplicate_check() -> None:
    http = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
    frames = [seg(ISN, flags="S"), seg(ISN + 1, http)]
    frames += [seg(ISN + 1 + len(http) + 100 * i, b"d" * 100) for i in range(50)]
    messages, pipeline = run(frames)
    assert messages == []
    assert pipeline.counters.tcp_segments == 52
    assert len(pipeline.dedup) == 2  # the SYN and the first payload only


def test_picked_up_stream_set_aside_then_revived() -> None:
    # a quiet connection seen mid-way: 70 kB of something else, then SIP
    frames = [seg(5000 + 1400 * i, b"z" * 1400) for i in range(50)]
    after = 5000 + 1400 * 50
    frames += [seg(after, INVITE), seg(after + len(INVITE), BYE)]
    messages, pipeline = run(frames)
    assert messages == [INVITE, BYE]
    assert pipeline.tcp.counters.non_sip_streams == 1
    assert pipeline.tcp.counters.revived == 1


def test_picked_up_stream_starting_inside_a_message() -> None:
    # the capture starts in the middle of the INVITE; the next message comes in the same
    # segment as the INVITE's end: the framer finds the boundary
    frames = [seg(7000, INVITE[300:] + BYE), seg(7000 + len(INVITE) - 300 + len(BYE), INVITE)]
    messages, _pipeline = run(frames)
    assert messages == [BYE, INVITE]


def test_picked_up_tls_stream_is_set_aside_for_good() -> None:
    record = b"\x17\x03\x03\x00\x20" + b"\x8f" * 32
    frames = [seg(9000, record), seg(9000 + len(record), INVITE)]
    messages, pipeline = run(frames)
    assert messages == []
    assert pipeline.tcp.counters.tls_streams == 1


def test_offloaded_segment_with_total_length_zero() -> None:
    # captured on the sending host with TSO: IPv4 Total Length 0
    frame = bytearray(seg(ISN + 1, INVITE))
    frame[16:18] = b"\0\0"
    messages, _pipeline = run([seg(ISN, flags="S"), bytes(frame)])
    assert messages == [INVITE]
