"""SipMessage.parse and its accessors on small messages whose every byte the test controls."""

from __future__ import annotations

import pytest

from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipDefect, SipMessage, is_start_line, looks_like_sip


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


SDP = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
INVITE = crlf(
    "INVITE sip:2001@pbx.example.jp SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\n"
    "Via: SIP/2.0/TCP proxy.example.jp;branch=z9hG4bK1, SIP/2.0/UDP [2001:db8::1]:5070"
    ";received=198.51.100.7;rport=5071;branch=z9hG4bK2\n"
    "Max-Forwards: 70\n"
    'From: "山田 太郎" <sip:0312345678@pbx.example.jp;user=phone>;tag=1928301774\n'
    "To: <sip:2001@pbx.example.jp>\n"
    "Call-ID: a84b4c76e66710@pc33.example.jp\n"
    "CSeq: 314159 INVITE\n"
    'Contact: <sip:0312345678@192.0.2.1:5060>;expires=60, "B" <sips:b@example.jp>\n'
    'P-Asserted-Identity: "Reception" <sip:+81312345678@pbx.example.jp>\n'
    "P-Asserted-Identity: <tel:+81-3-1234-5678>\n"
    "Supported: replaces, timer\n"
    "Supported: 100rel\n"
    "Require: siprec\n"
    "Allow: INVITE,ACK , BYE\n"
    "User-Agent: Example PBX 1.0\n"
    "Expires: 180\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(crlf(SDP))}\n"
    "\n" + SDP
)
RESPONSE = crlf(
    "SIP/2.0 486 Busy Here\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\n"
    "From: <sip:a@example.jp>;tag=1\n"
    "To: <sip:b@example.jp>;tag=2\n"
    "Call-ID: x@y\n"
    "CSeq: 1 INVITE\n"
    "Server: Gateway 2\n"
    'Reason: Q.850;cause=17;text="User busy", SIP;cause=486\n'
    "Content-Length: 0\n"
    "\n"
)


def test_request_line_headers_and_body() -> None:
    msg = SipMessage.parse(INVITE)
    assert bytes(msg) == INVITE
    assert msg.is_request and not msg.is_response
    assert (msg.method, msg.request_uri, msg.version) == (
        "INVITE",
        "sip:2001@pbx.example.jp",
        "SIP/2.0",
    )
    assert msg.names[:3] == ("via", "via", "max-forwards")
    assert msg.headers[2] == (b"Max-Forwards", b"70")
    assert msg.body == crlf(SDP)
    assert msg.content_length == len(msg.body)
    assert msg.defects == ()


def test_typed_accessors() -> None:
    msg = SipMessage.parse(INVITE)
    assert msg.call_id == "a84b4c76e66710@pc33.example.jp"
    assert msg.cseq == (314159, "INVITE")
    assert msg.from_ is not None and msg.from_.display_name == "山田 太郎"
    assert msg.from_.tag == "1928301774"
    assert msg.from_.uri.number == "0312345678"
    assert msg.from_.uri.param("user") == "phone"
    assert msg.to is not None and msg.to.tag is None and msg.to.uri.user == "2001"
    assert [c.uri.host for c in msg.contacts] == ["192.0.2.1", "example.jp"]
    assert msg.contact is not None and msg.contact.param("expires") == "60"
    assert msg.contacts[1].display_name == "B" and msg.contacts[1].uri.scheme == "sips"
    assert msg.supported == ("replaces", "timer", "100rel")
    assert msg.require == ("siprec",)
    assert msg.allow == ("INVITE", "ACK", "BYE")
    assert msg.user_agent == "Example PBX 1.0"
    assert msg.max_forwards == 70
    assert msg.expires == 180
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"
    pai = msg.p_asserted_identity
    assert pai is not None and pai.display_name == "Reception"
    assert pai.uri.number == "+81312345678"


def test_fast_tag_and_top_via_accessors() -> None:
    msg = SipMessage.parse(INVITE)
    assert (msg.from_tag, msg.to_tag) == ("1928301774", None)
    assert msg.top_via == msg.via[0]
    quoted = SipMessage.parse(
        b'BYE sip:a@b SIP/2.0\r\nFrom: "a>;tag=no" <sip:x@y>;TAG=yes\r\n'
        b"To: sip:z@y;tag=t2\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa,SIP/2.0/UDP g\r\n\r\n"
    )
    assert (quoted.from_tag, quoted.to_tag) == ("yes", "t2")
    assert quoted.top_via is not None and quoted.top_via.branch == "z9hG4bKa"
    assert SipMessage.parse(b"OPTIONS sip:a SIP/2.0\r\n\r\n").top_via is None


@pytest.mark.parametrize(
    "value",
    [
        "<sip:a@b>;tag=1",
        "<sip:a@b;tag=uri>;x=1;tag=2",
        "<sip:a@b>;tag",
        "<sip:a@b>;tag=",
        '<sip:a@b>;tag="q"',
        "sip:a@b;tag=3;tag=4",
        "sip:a@b",
        "Name <sip:a@b> ; Tag = 5 ",
        '"x;tag=no" <sip:a@b>',
    ],
)
def test_fast_tag_agrees_with_the_full_parse(value: str) -> None:
    msg = SipMessage.parse(f"ACK sip:a SIP/2.0\r\nFrom: {value}\r\n\r\n".encode())
    assert msg.from_ is not None
    assert msg.from_tag == msg.from_.tag


def test_via_list_split_and_params() -> None:
    vias = SipMessage.parse(INVITE).via
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "192.0.2.1", 5060),
        ("TCP", "proxy.example.jp", None),
        ("UDP", "[2001:db8::1]", 5070),
    ]
    assert vias[0].branch == "z9hG4bK776asdhds" and vias[0].rport is None
    assert vias[2].received == "198.51.100.7" and vias[2].rport == 5071
    assert vias[0].protocol == "SIP/2.0"


def test_response_and_reason_header() -> None:
    msg = SipMessage.parse(RESPONSE)
    assert msg.is_response
    assert (msg.status_code, msg.reason) == (486, "Busy Here")
    assert msg.body == b""
    assert msg.user_agent == "Gateway 2"
    q850, sip = msg.reasons
    assert (q850.protocol, q850.cause, q850.text) == ("Q.850", 17, "User busy")
    assert (sip.protocol, sip.cause, sip.text) == ("SIP", 486, None)


def test_compact_forms_are_expanded() -> None:
    data = crlf(
        "BYE sip:a@b SIP/2.0\n"
        "v: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "f: <sip:x@y>;tag=a\n"
        "t: <sip:z@y>;tag=b\n"
        "i: cid\n"
        "m: <sip:x@h>\n"
        "k: timer\n"
        "o: refer;id=3\n"
        "r: <sip:c@y?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\n"
        "b: <sip:x@y>\n"
        "x: 1800\n"
        "u: dialog\n"
        "s: hello\n"
        "e: gzip\n"
        "y: sig\n"
        "c: text/plain\n"
        "l: 2\n"
        "\nhi"
    )
    msg = SipMessage.parse(data)
    assert msg.names == (
        "via", "from", "to", "call-id", "contact", "supported", "event", "refer-to",
        "referred-by", "session-expires", "allow-events", "subject", "content-encoding",
        "identity", "content-type", "content-length",
    )  # fmt: skip
    assert msg.headers[3] == (b"i", b"cid")
    assert msg.call_id == "cid" and msg.header("Call-ID") == "cid" and msg.header("i") == "cid"
    assert msg.event == "refer"
    assert msg.body == b"hi"
    assert msg.refer_to is not None
    assert msg.refer_to.uri.header("Replaces") == "abc@h;to-tag=1;from-tag=2"
    assert msg.referred_by is not None and msg.referred_by.uri.user == "x"


def test_replaces_header() -> None:
    data = crlf(
        "INVITE sip:a@b SIP/2.0\n"
        "Replaces: 425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only\n\n"
    )
    replaces = SipMessage.parse(data).replaces
    assert replaces is not None
    assert (replaces.call_id, replaces.to_tag, replaces.from_tag, replaces.early_only) == (
        "425928@bobster.example.org",
        "7743",
        "6472",
        True,
    )


def test_folded_header_is_joined_with_one_space() -> None:
    data = crlf("OPTIONS sip:a@b SIP/2.0\nSubject: I know you're there,\n   pick up the phone\n\n")
    msg = SipMessage.parse(data)
    assert msg.header("subject") == "I know you're there, pick up the phone"
    assert bytes(msg) == data
    assert msg.defects == ()


def test_bare_lf_message_as_hep_delivers_it() -> None:
    data = b"SIP/2.0 200 OK\nCall-ID: x\nCSeq: 2 BYE\nContent-Length: 0\n\n"
    msg = SipMessage.parse(data)
    assert msg.defects == (SipDefect.BARE_LF,)
    assert msg.cseq == (2, "BYE") and bytes(msg) == data


def test_lf_blank_line_before_a_body_that_starts_with_crlf() -> None:
    msg = SipMessage.parse(b"SIP/2.0 200 OK\nContent-Length: 2\n\n\r\n")
    assert msg.body == b"\r\n" and msg.defects == (SipDefect.BARE_LF,)


def test_header_values_do_not_keep_a_carriage_return() -> None:
    data = b"SIP/2.0 200 OK\r\nCall-ID: x\nCSeq: 2 BYE\r\n\r\n"
    msg = SipMessage.parse(data)
    assert msg.headers == ((b"Call-ID", b"x"), (b"CSeq", b"2 BYE"))
    assert SipDefect.BARE_LF in msg.defects


def test_body_is_never_split_on_a_later_blank_line() -> None:
    body = b"--b\r\n\r\npart one\r\n\r\nmore\r\n--b--\r\n"
    head = "MESSAGE sip:a@b SIP/2.0\nContent-Type: multipart/mixed;boundary=b\n"
    data = crlf(head + f"Content-Length: {len(body)}\n\n") + body
    assert SipMessage.parse(data).body == body


@pytest.mark.parametrize(
    ("length", "body", "defect"),
    [
        ("10", b"12345", SipDefect.BODY_TRUNCATED),
        ("3", b"12345", SipDefect.BODY_EXCESS),
        ("x", b"12345", SipDefect.BAD_CONTENT_LENGTH),
    ],
)
def test_content_length_mismatch_is_a_defect(length: str, body: bytes, defect: SipDefect) -> None:
    data = crlf(f"INFO sip:a@b SIP/2.0\nContent-Length: {length}\n\n") + body
    msg = SipMessage.parse(data)
    assert msg.defects == (defect,)
    assert msg.body == (b"123" if defect is SipDefect.BODY_EXCESS else body)
    assert bytes(msg) == data


def test_missing_content_length_takes_the_rest_of_the_datagram() -> None:
    msg = SipMessage.parse(crlf("INFO sip:a@b SIP/2.0\nCall-ID: c\n\n") + b"abc")
    assert msg.content_length is None and msg.body == b"abc" and msg.defects == ()


def test_cut_message_and_bad_lines_are_defects() -> None:
    msg = SipMessage.parse(b"\r\n\r\nACK sip:a@b SIP/2.0\r\nno colon here\r\nCall-ID: c\r\n")
    assert msg.defects == (
        SipDefect.LEADING_CRLF,
        SipDefect.NO_BLANK_LINE,
        SipDefect.BAD_HEADER_LINE,
    )
    assert msg.call_id == "c" and msg.method == "ACK"


def test_non_utf8_header_text_is_kept_and_flagged() -> None:
    sjis = "鈴木".encode("cp932")
    data = b'SIP/2.0 180 Ringing\r\nFrom: "' + sjis + b'" <sip:a@b>;tag=1\r\n\r\n'
    msg = SipMessage.parse(data)
    assert msg.defects == (SipDefect.NOT_UTF8,)
    assert msg.headers[0][1].startswith(b'"' + sjis)
    assert msg.from_ is not None and "\ufffd" in (msg.from_.display_name or "")


def test_absent_headers_give_none_or_empty() -> None:
    msg = SipMessage.parse(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    assert msg.call_id is None and msg.cseq is None and msg.from_ is None and msg.via == ()
    assert msg.contact is None and msg.p_asserted_identity is None and msg.replaces is None
    assert msg.require == () and msg.max_forwards is None and msg.event is None
    assert msg.headers_all("via") == () and msg.header("x-anything") is None


def test_identity_falls_back_to_preferred_and_remote_party_id() -> None:
    ppi = SipMessage.parse(b"INVITE sip:a@b SIP/2.0\r\nP-Preferred-Identity: <sip:1@b>\r\n\r\n")
    rpid = SipMessage.parse(
        b'INVITE sip:a@b SIP/2.0\r\nRemote-Party-ID: "X" <sip:2@b>;party=calling\r\n\r\n'
    )
    assert ppi.p_asserted_identity is not None and ppi.p_asserted_identity.uri.user == "1"
    assert rpid.p_asserted_identity is not None
    assert rpid.p_asserted_identity.param("party") == "calling"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (b"\x80\x00\x12\x34rtp payload", "not a SIP start line"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "not a SIP start line"),
        (b"GET / HTTP/1.1\r\n\r\n", "not a SIP start line"),
        (b"SIP/2.0 OK\r\n\r\n", "bad status line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "bad status line"),
        (b"INV(ITE sip:a@b SIP/2.0\r\n\r\n", "bad request method"),
        (b"INVITE sip:a@b\r\n\r\n", "not a SIP start line"),
    ],
)
def test_non_sip_raises_fixed_messages(data: bytes, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        SipMessage.parse(data)
    assert str(caught.value) == message
    assert caught.value.kind == "sip.parse"


@pytest.mark.parametrize(
    ("header", "accessor", "message"),
    [
        ("CSeq: one INVITE", "cseq", "bad CSeq header"),
        ("CSeq: 1", "cseq", "bad CSeq header"),
        ("Via: garbage", "via", "bad Via header"),
        ("Max-Forwards: lots", "max_forwards", "bad Max-Forwards header"),
        ("Expires: soon", "expires", "bad Expires header"),
        ('From: "unterminated <sip:a@b>', "from_", "display name quote is not closed"),
        ("To: <sip:a@b", "to", "name-addr has no closing >"),
        ("Contact: <>", "contact", "name-addr has no URI"),
        ("Refer-To: <no-scheme>", "refer_to", "URI has no scheme"),
        ("Replaces: ;to-tag=1", "replaces", "Replaces has no Call-ID"),
        ("Reason: ;cause=1", "reasons", "Reason has no protocol"),
    ],
)
def test_malformed_headers_raise_on_access(header: str, accessor: str, message: str) -> None:
    msg = SipMessage.parse(crlf(f"INVITE sip:a@b SIP/2.0\n{header}\n\n"))
    with pytest.raises(SipParseError) as caught:
        getattr(msg, accessor)
    assert str(caught.value) == message


def test_accessor_results_are_cached() -> None:
    msg = SipMessage.parse(INVITE)
    assert msg.from_ is msg.from_
    assert msg.via is msg.via


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\n", True),
        (b"OPTIONS sip:a@b SIP/2.0\n", True),
        (b"SIP/2.0 200 OK\r\n", True),
        (b"REGISTER sip:b SIP/2.0", False),  # no line end: not a whole start line
        (b"INVITE sip:a@b HTTP/1.1\r\n", False),
        (b"FOO sip:a@b SIP/2.0\r\n", False),  # unknown method
        (b"\x80\x08\x00\x01" + bytes(160), False),  # RTP
        (b"SIP/2.0", False),
        (b"", False),
        (b"INVITE", False),
    ],
)
def test_looks_like_sip(payload: bytes, expected: bool) -> None:
    assert looks_like_sip(payload) is expected


def test_is_start_line_accepts_any_token_method() -> None:
    assert is_start_line(b"FOO sip:a@b SIP/2.0")
    assert is_start_line(b"SIP/2.0 183 Session Progress")
    assert not is_start_line(b"v=0")
    assert not is_start_line(b"SIP/2.0 1x0 Bad")
