"""SIP parsing from remembered parts (header lines, start lines, From/To heads) gives the
same message as parsing afresh, and the shortcuts of the accessors agree with the long way."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callscope.protocol import sip, sipheaders
from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipuri import NameAddr

header_lines = st.one_of(
    st.sampled_from(
        [
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
            "v: SIP/2.0/UDP a, SIP/2.0/TCP b",
            "From: <sip:a@b>;tag=1",
            "To: Bob <sip:b@c>",
            "CSeq: 1 INVITE",
            "Call-ID: x@y",
            " folded continuation",
            "\tfolded with a tab",
            "no colon here",
            ": no name",
            "Subject:",
            "X-Long: " + "z" * 300,
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
        max_size=30,
    ),
)
start_lines = st.sampled_from(
    ["INVITE sip:a@b SIP/2.0", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK", "BYE sip:x SIP/2.0"]
)


def parsed(data: bytes) -> tuple[object, ...] | tuple[type, str]:
    try:
        msg = SipMessage.parse(data)
    except SipParseError as exc:
        return type(exc), str(exc)
    return (
        msg.method, msg.request_uri, msg.status_code, msg.reason, msg.version, msg.headers,
        msg.names, msg.body, msg.content_length, msg.defects,
    )  # fmt: skip


def forget_lines() -> None:
    sipheaders.HEADER_LINES._values.clear()
    sip._start_line._values.clear()


@given(start_lines, st.lists(header_lines, max_size=12), st.lists(header_lines, max_size=12))
def test_remembered_lines_give_the_message_parsed_afresh(start, first, second):
    one = (start + "\r\n" + "\r\n".join(first) + "\r\n\r\n").encode()
    two = (start + "\r\n" + "\r\n".join(second + first) + "\r\n\r\n").encode()
    forget_lines()
    fresh = parsed(one), parsed(two)
    forget_lines()
    parsed(two)  # its lines are remembered now, in another order
    assert (parsed(one), parsed(two)) == fresh
    assert (parsed(one), parsed(two)) == fresh


def test_a_fold_after_a_remembered_line_continues_it():
    SipMessage.parse(b"OPTIONS sip:a SIP/2.0\r\nSubject: hello\r\n\r\n")
    msg = SipMessage.parse(b"OPTIONS sip:a SIP/2.0\r\nSubject: hello\r\n  world\r\n\r\n")
    assert msg.header("subject") == "hello world"
    again = SipMessage.parse(b"OPTIONS sip:a SIP/2.0\r\nSubject: hello\r\n\r\n")
    assert again.header("subject") == "hello"


def test_the_line_table_is_bounded():
    forget_lines()
    lines = sipheaders.HEADER_LINES
    for n in range(lines._limit + 10):
        SipMessage.parse(f"OPTIONS sip:a SIP/2.0\r\nX-N: {n}\r\n\r\n".encode())
    assert len(lines._values) <= lines._limit


via_values = st.one_of(
    st.sampled_from(
        ["SIP/2.0/UDP a", "SIP/2.0/UDP a, SIP/2.0/UDP b", ' a;x="1,2"', "a,,b", "\x1c", ", "]
    ),
    st.text(max_size=20),
)


@given(st.lists(via_values, max_size=3))
def test_via_count_is_the_length_of_the_via_list(values):
    head = "".join(f"Via: {value}\r\n" for value in values if "\n" not in value)
    msg = SipMessage.parse(f"OPTIONS sip:a SIP/2.0\r\n{head}\r\n".encode())
    assert msg.via_count == len(msg.header_list("via"))


name_addrs = st.one_of(
    st.sampled_from(
        [
            "sipp <sip:0312345678@10.1.0.1>;tag=abc",
            "<sip:2001@10.2.0.1>",
            "<sip:2001@10.2.0.1>;tag=uas-1;x=2",
            '"A <b>" <sip:a@b>;tag=1',
            "sip:a@b;tag=3",
            "<>;tag=1",
            "<sip:a@b",
            "x>y<sip:a@b>;tag=1",
            "  <tel:+81312345678> ; Tag = 5 ",
        ]
    ),
    st.text(alphabet="<>;=\"' sip:@abtg1", max_size=30),
)


def outcome(parse, text):
    try:
        addr = parse(text)
    except SipParseError as exc:
        return type(exc), str(exc)
    return addr.display_name, addr.uri, addr.params


@given(st.lists(name_addrs, max_size=10))
def test_from_and_to_parsed_from_remembered_heads_equal_the_full_parse(texts):
    for text in texts + texts:
        assert outcome(sip._parse_name_addr, text) == outcome(NameAddr.parse, text)
