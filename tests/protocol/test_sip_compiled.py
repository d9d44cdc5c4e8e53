"""The compiled twin of SipMessage.parse's framing gives the message the Python code gives.

Both run on the same input (fuzzed bytes, header soups with every mix of line ends, the
edge cases of the header block's end); the messages must be equal field for field, defects
in the same order, and errors the same. Skipped only where the twin is not built (or
``CALLSCOPE_PURE_PYTHON=1``); tests/test_compiled.py fails when CI did not build it.
"""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.protocol import sip, sipheaders
from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage

pytestmark = pytest.mark.skipif(sip._split_message is None, reason="the compiled twin is not built")

EOLS = st.sampled_from(["\r\n", "\n", "\r", "\r\r\n", "\n\r\n", "\n\n", "\r\n\r\n", ""])
LINES = st.sampled_from(
    [
        "INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 180", "sip/2.0 180 R", "x",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@b>;tag=1", "Call-ID: x",
        "Content-Length: 5", "l: 0", "Content-Length: x", "content-length: 99", " folded",
        "\tfolded", "no colon", ":", "", "Subject: 神戸", "X: \udcff", "c: application/sdp",
    ]
)  # fmt: skip


def parse_both(data: bytes) -> tuple[object, object]:
    """(twin's result, Python's result): a message, or the error's type and text."""
    results = []
    for twin in (sip._split_message, None):
        with mock.patch.object(sip, "_split_message", twin):
            try:
                results.append(SipMessage.parse(data))
            except SipParseError as error:
                results.append((type(error), str(error)))
    return results[0], results[1]


def assert_same(data: bytes) -> None:
    compiled, python = parse_both(data)
    assert compiled == python
    if isinstance(python, SipMessage):
        assert isinstance(compiled, SipMessage)
        assert compiled.defects == python.defects and compiled.raw is data


@settings(max_examples=1500, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=1500, deadline=None)
@given(
    lead=st.sampled_from(["", "\r\n", "\n\n\r", "\r"]),
    parts=st.lists(st.tuples(st.one_of(LINES, st.text(max_size=20)), EOLS), max_size=14),
    body=st.binary(max_size=30),
)
def test_header_soup_with_every_line_end(
    lead: str, parts: list[tuple[str, str]], body: bytes
) -> None:
    text = lead + "".join(line + eol for line, eol in parts)
    assert_same(text.encode("utf-8", "surrogatepass") + body)


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\r\n", b"\r\n\r\n", b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK\r\n\r\n",
        b"SIP/2.0 200 OK\r\nX: 1\r\r\n\r\nbody", b"SIP/2.0 200 OK\r\nX: 1\r\n\r\r",
        b"SIP/2.0 200 OK\nX: 1\r\nY: 2\n\nbody", b"SIP/2.0 200 OK\r\nl: 2\r\n\r\nbody",
        b"SIP/2.0 200 OK\r\nl: 9\r\n\r\nbody", b"SIP/2.0 200 OK\r\nl: \xd9\xa3\r\n\r\nbody",
        b"SIP/2.0 200 OK\r\n folded first\r\nX: a\r\n  b\r\n\tc\r\n\r\n",
        b"SIP/2.0 200 OK\r\nSubject: \xff\xfe\r\n\r\n", b"\n\rSIP/2.0 200 OK\r\n\r\n",
        b"SIP/2.0 200 OK\r\nX: 1\r\n\n\r\nafter", b"SIP/2.0 200 OK\r\nX: 1\n\r\n",
        b"SIP/2.0 200 OK\r\nX: 1\r", b"SIP/2.0 200 OK\r\nX: 1\r\n", b"FOO\r\n\r\n",
        b"SIP/2.0 200 OK\nX: 1\n\r\r\n\r\n", b"SIP/2.0 200 OK\r\nX: 1\r\n\r\r\n\r\n",
    ],
)  # fmt: skip
def test_edges_of_the_header_block(data: bytes) -> None:
    assert_same(data)


def test_tables_full_or_empty_give_the_same_message() -> None:
    data = b"SIP/2.0 180 Ringing\r\nCall-ID: t@x\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"
    first = parse_both(data)
    sipheaders.HEADER_LINES.table.clear()
    sip._start_line.table.clear()
    assert parse_both(data) == first
    assert first[0] == first[1]
