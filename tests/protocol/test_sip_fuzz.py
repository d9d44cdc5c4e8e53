"""Property and fuzz tests: only SipParseError may escape; the framer never raises."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import KNOWN_METHODS, SipDefect, SipMessage, looks_like_sip
from callscope.protocol.sipframing import SipFramer

ACCESSORS = (
    "call_id", "cseq", "from_", "to", "via", "contact", "contacts", "record_routes",
    "p_asserted_identity", "content_type", "require", "supported", "allow", "refer_to",
    "referred_by", "replaces", "reasons", "user_agent", "max_forwards", "expires", "event",
    "from_tag", "to_tag", "top_via",
)  # fmt: skip

HEADER_LINES = st.sampled_from(
    [
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "v: SIP/2.0", "Via: ,,", "From: <sip:a@b>;tag=1",
        'f: "x', "To: <", "t: sip:", "Call-ID: x", "CSeq: 1 INVITE", "CSeq: x", "Contact: *",
        "m: <sip:a@b>, <sips:c@d>", "Content-Length: 5", "l: 99999999999", "Content-Length: -1",
        "c: multipart/mixed;boundary=", "Max-Forwards: 7x", "Replaces: a;to-tag=1",
        "Reason: Q.850;cause=abc", "Refer-To: <sip:a@b?Replaces=x%3Bto-tag%3D1>", " folded",
        "\tfolded", "no colon", ":", "", "P-Asserted-Identity: tel:+81", "Expires: 5",
    ]
)  # fmt: skip
START_LINES = st.sampled_from(
    [
        "INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 200", "BYE sip: SIP/2.0",
        "SIP/2.0 999 x", "FOO bar SIP/2.0", "INVITE  sip:a@b  SIP/2.0", "sip/2.0 180 R",
    ]
)  # fmt: skip


def access_everything(msg: SipMessage) -> None:
    for name in ACCESSORS:
        with contextlib.suppress(SipParseError):
            getattr(msg, name)
    msg.header("via")
    msg.headers_all("contact")
    for fast, full in (("from_tag", "from_"), ("to_tag", "to"), ("top_via", "via")):
        try:
            whole = getattr(msg, full)
        except SipParseError:
            continue
        with contextlib.suppress(SipParseError):
            value = getattr(msg, fast)
            if full == "via":
                assert value == (whole[0] if whole else None)
            else:
                assert value == (whole.tag if whole is not None else None)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=800))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        msg = SipMessage.parse(data)
    except SipParseError:
        return
    assert bytes(msg) == data
    access_everything(msg)


@settings(max_examples=500, deadline=None)
@given(
    start=START_LINES,
    lines=st.lists(st.one_of(HEADER_LINES, st.text(max_size=40)), max_size=15),
    eol=st.sampled_from(["\r\n", "\n"]),
    body=st.binary(max_size=40),
)
def test_fuzz_header_soup(start: str, lines: list[str], eol: str, body: bytes) -> None:
    data = eol.join([start, *lines, "", ""]).encode("utf-8", "surrogatepass") + body
    try:
        msg = SipMessage.parse(data)
    except SipParseError:
        return
    assert bytes(msg) == data
    access_everything(msg)


TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
VALUE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    max_size=40,
).map(str.strip)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """A valid message and what its parse must give."""
    if draw(st.booleans()):
        method = draw(st.sampled_from(sorted(m.decode() for m in KNOWN_METHODS)) | TOKEN)
        uri = "sip:" + draw(TOKEN) + "@example.jp"
        start = f"{method} {uri} SIP/2.0"
        expect: dict[str, object] = {"method": method, "request_uri": uri}
    else:
        code = draw(st.integers(100, 699))
        reason = draw(VALUE)
        start = f"SIP/2.0 {code} {reason}".rstrip(" ") if reason else f"SIP/2.0 {code}"
        expect = {"status_code": code, "reason": reason}
    headers = draw(
        st.lists(st.tuples(TOKEN.filter(lambda t: t.lower() not in {"content-length", "l"}), VALUE))
    )
    body = draw(st.binary(max_size=200))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lines = [start, *(f"{n}: {v}" for n, v in headers), f"Content-Length: {len(body)}", "", ""]
    data = eol.join(lines).encode("utf-8") + body
    expect["headers"] = [(n.encode(), v.encode()) for n, v in headers]
    expect["body"] = body
    return data, expect


@settings(max_examples=400, deadline=None)
@given(case=well_formed())
def test_well_formed_messages_round_trip(case: tuple[bytes, dict[str, object]]) -> None:
    data, expect = case
    msg = SipMessage.parse(data)
    assert bytes(msg) == data
    assert list(msg.headers[:-1]) == expect["headers"]
    assert msg.body == expect["body"] and msg.content_length == len(msg.body)
    for field in ("method", "request_uri", "status_code", "reason"):
        if field in expect:
            assert getattr(msg, field) == expect[field]
    assert set(msg.defects) <= {SipDefect.BARE_LF}
    if msg.method is not None and msg.method.encode() in KNOWN_METHODS:
        assert looks_like_sip(data)


@settings(max_examples=300, deadline=None)
@given(
    cases=st.lists(well_formed(), min_size=1, max_size=4),
    keepalives=st.lists(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]), min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
)
def test_framer_returns_exactly_the_messages_however_the_stream_is_cut(
    cases: list[tuple[bytes, dict[str, object]]], keepalives: list[bytes], cuts: list[int]
) -> None:
    messages = [data for data, _ in cases]
    stream = b"".join(k + m for k, m in zip(keepalives, messages, strict=False))
    framer = SipFramer()
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        out += framer.feed(stream[start:cut])
        start = max(start, cut)
    assert out == messages
    assert framer.garbage_bytes == 0 and framer.overflows == 0 and framer.buffered == 0


@settings(max_examples=500, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from([b"INVITE sip:a SIP/2.0\r\n", b"l: 4\r\n\r\n", b"\r\n", b"SIP/2.0 2"]),
        ),
        max_size=12,
    ),
    limit=st.sampled_from([64, 512, 65536]),
)
def test_fuzz_framer_never_raises_and_stays_bounded(chunks: list[bytes], limit: int) -> None:
    framer = SipFramer(max_buffer=limit)
    for chunk in chunks:
        for message in framer.feed(chunk):
            assert message and len(message) <= limit
        assert framer.buffered <= limit
