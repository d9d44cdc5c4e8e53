"""SipFramer: Content-Length framing on streams, keepalives, resync and the bounded buffer."""

from __future__ import annotations

from pathlib import Path

from callscope.protocol.sip import SipMessage
from callscope.protocol.sipframing import SipFramer
from tests.protocol._pcap_walk import TCP, payloads


def message(body: bytes = b"", *, length: int | None = None, compact: bool = False) -> bytes:
    name = b"l" if compact else b"Content-Length"
    size = len(body) if length is None else length
    return (
        b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n"
        + name
        + b": "
        + str(size).encode()
        + b"\r\n\r\n"
    ) + body


def test_two_messages_in_one_segment() -> None:
    framer = SipFramer()
    first, second = message(b"hello"), message(b"\r\n\r\nworld", compact=True)
    assert framer.feed(first + second) == [first, second]
    assert framer.buffered == 0


def test_message_split_across_every_byte() -> None:
    data = message("日本語の本文".encode())
    framer = SipFramer()
    out: list[bytes] = []
    for i in range(len(data)):
        out += framer.feed(data[i : i + 1])
    assert out == [data]
    assert SipMessage.parse(out[0]).body == "日本語の本文".encode()


def test_crlf_keepalives_are_skipped_and_counted() -> None:
    framer = SipFramer()
    # RFC 5626 4.4.1: CRLFCRLF ping and CRLF pong between messages
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.feed(message() + b"\r\n") == [message()]
    assert framer.keepalives == 2
    assert framer.garbage_bytes == 0 and framer.buffered == 0


def test_missing_content_length_on_a_stream_means_no_body() -> None:
    head = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: y\r\n\r\n"
    assert SipFramer().feed(head + message()) == [head, message()]


def test_lf_only_stream() -> None:
    data = b"SIP/2.0 200 OK\nContent-Length: 3\n\nabc"
    assert SipFramer().feed(data + data) == [data, data]


def test_lf_message_followed_by_crlf_keepalive() -> None:
    data = b"SIP/2.0 200 OK\nContent-Length: 0\n\n"
    framer = SipFramer()
    assert framer.feed(data + b"\r\n" + data) == [data, data]
    assert framer.keepalives == 1


def test_resynchronises_after_garbage() -> None:
    framer = SipFramer()
    garbage = b"tail of a lost segment\r\na=rtpmap:0 PCMU/8000\r\n"
    assert framer.feed(garbage + message(b"ok")) == [message(b"ok")]
    assert framer.garbage_bytes == len(garbage)


def test_garbage_without_line_ends_is_dropped_not_hoarded() -> None:
    framer = SipFramer()
    assert framer.feed(b"\x00" * 10_000) == []
    assert framer.garbage_bytes == 10_000 and framer.buffered == 0
    assert framer.feed(message()) == [message()]


def test_overflow_drops_the_buffer_and_counts_it() -> None:
    framer = SipFramer(max_buffer=1024)
    assert framer.feed(message(length=5000)) == []  # can never fit
    assert framer.overflows == 1 and framer.buffered == 0
    # a header block that never ends also cannot grow the buffer past the bound
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X-Pad: aaaaaaaa\r\n" * 100)
    assert framer.overflows == 2 and framer.buffered == 0
    assert framer.feed(message(b"after")) == [message(b"after")]


def test_partial_message_waits_for_more() -> None:
    framer = SipFramer()
    data = message(b"0123456789")
    assert framer.feed(data[:-3]) == []
    assert framer.buffered == len(data) - 3
    assert framer.feed(data[-3:]) == [data]


def test_sip_over_tcp_capture_segments(testdata: Path) -> None:
    framers: dict[tuple[object, object], SipFramer] = {}
    messages: list[bytes] = []
    for payload in payloads(testdata / "pcap" / "sip-over-tcp.pcap"):
        if payload.proto == TCP:
            framer = framers.setdefault((payload.src, payload.dst), SipFramer())
            messages += framer.feed(payload.data)
    assert len(messages) == 7
    assert all(f.garbage_bytes == 0 and f.overflows == 0 for f in framers.values())
