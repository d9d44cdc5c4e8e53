"""Multipart bodies (RFC 2046) as SIPREC clients really send them, plus a fuzz test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.protocol.errors import SipParseError
from callscope.protocol.multipart import BodyPart, body_bytes, body_part, parse_multipart
from callscope.protocol.sdp import Direction, SessionDescription
from callscope.protocol.sip import SipMessage
from tests.protocol._siprec_samples import miarec_templates, sipp_message

METADATA = ("application/rs-metadata+xml", "application/rs-metadata")


def test_parts_headers_and_bodies() -> None:
    body = (
        b"preamble to ignore\r\n"
        b"--b1\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Disposition: session;handling=required\r\n"
        b"\r\n"
        b"v=0\r\n"
        b"--b1\r\n"
        b"Content-Type: application/rs-metadata+xml\r\n"
        b"\r\n"
        b"<recording/>\r\n"
        b"--b1--\r\n"
        b"epilogue\r\n"
    )
    sdp, meta = parse_multipart(body, "multipart/mixed; boundary=b1")
    # RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter
    assert sdp.mime == "application/sdp" and sdp.body == b"v=0"
    assert sdp.header("content-disposition") == "session;handling=required"
    assert meta.mime == "application/rs-metadata+xml" and meta.body == b"<recording/>"


def test_lf_only_quoted_boundary_and_missing_close_delimiter() -> None:
    body = (
        b'--"x"\n'
        if False
        else b"--a:b\nContent-Type: text/plain\n\none\n--a:b\nc: text/x\n\ntwo\n"
    )
    first, second = parse_multipart(body, 'multipart/mixed;boundary="a:b"')
    assert (first.body, second.body) == (b"one", b"two\n")
    assert second.mime == "text/x"  # compact form of Content-Type inside a part


def test_part_without_headers_is_text_plain() -> None:
    (part,) = parse_multipart(b"--q\r\n\r\nplain\r\n--q--", "multipart/mixed;boundary=q")
    assert part.content_type is None and part.mime == "text/plain" and part.body == b"plain"


def test_boundary_must_start_a_line() -> None:
    body = b"--q\r\nContent-Type: text/plain\r\n\r\nsee --q inside\r\n--q--\r\n"
    (part,) = parse_multipart(body, "multipart/mixed;boundary=q")
    assert part.body == b"see --q inside"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"v=0\r\n", None, "multipart body has no boundary"),
        (b"v=0\r\n", "multipart/mixed", "multipart body has no boundary"),
        (b"no delimiter here", "multipart/mixed;boundary=z", "multipart body has no delimiter"),
        (b"--z--\r\n", "multipart/mixed;boundary=z", "multipart body has no parts"),
        (b"--z", "multipart/mixed;boundary=z", "multipart body has no parts"),
    ],
)
def test_broken_multipart_raises_fixed_messages(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_multipart(body, content_type)
    assert str(caught.value) == message


def test_body_part_plain_nested_and_absent() -> None:
    plain = SipMessage.parse(
        b"INVITE sip:a@b SIP/2.0\r\nContent-Type: Application/SDP\r\n"
        b"Content-Length: 5\r\n\r\nv=0\r\n"
    )
    found = body_part(plain, "application/sdp")
    assert found is not None and found.body == b"v=0\r\n"
    assert found.header("content-length") == "5"
    assert body_part(plain, *METADATA) is None
    inner = b"--in\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--in--"
    outer = (
        b"--out\r\nContent-Type: multipart/alternative;boundary=in\r\n\r\n" + inner + b"\r\n--out--"
    )
    nested = SipMessage.parse(
        b"INVITE sip:a@b SIP/2.0\r\nContent-Type: multipart/mixed;boundary=out\r\n\r\n" + outer
    )
    deep = body_part(nested, "application/sdp")
    assert deep is not None and deep.body == b"v=0"
    assert body_part(SipMessage.parse(b"ACK sip:a@b SIP/2.0\r\n\r\n"), "application/sdp") is None


DRACHTIO = {
    "acme-siprec-offer.txt": ("application/rs-metadata+xml", ["16777227", "16777228"]),
    "broadworks-offer-2.txt": ("application/rs-metadata+xml", ["10", "20"]),
    "broadworks-offer.txt": ("application/+xml", ["1"]),  # mangled "application/ +xml"
    "cisco-siprec-offer.txt": ("application/rs-metadata+xml", ["1", "2"]),
    "connectel-offer.txt": ("application/rs-metadata+xml", ["1", "2"]),
    "connectel-offer2.txt": ("application/rs-metadata+xml", ["1", "2"]),
    "connectel-offer3.txt": ("application/rs-metadata+xml", ["1", "2"]),
    "inactive-sdp-offer.txt": ("application/rs-metadata+xml", ["1", "2"]),
    "procomm-siprec-offer.txt": ("application/rs-metadata", ["a_leg", "b_leg"]),
    "sonus-siprec-offer.txt": ("application/rs-metadata+xml", ["1", "2"]),
}


@pytest.mark.parametrize("name", sorted(DRACHTIO))
def test_real_src_bodies_without_headers(testdata: Path, name: str) -> None:
    metadata_mime, labels = DRACHTIO[name]
    parts = parse_multipart((testdata / "siprec" / "drachtio" / name).read_bytes(), None)
    mimes = [p.mime for p in parts]
    assert "application/sdp" in mimes and metadata_mime in mimes
    sdp_part = next(p for p in parts if p.mime == "application/sdp")
    sdp = SessionDescription.parse(sdp_part.body)
    assert [m.label for m in sdp.media] == labels
    meta = next(p for p in parts if p.mime == metadata_mime)
    assert b"recording" in meta.body


def test_inactive_offer_pauses_both_streams(testdata: Path) -> None:
    parts = parse_multipart(
        (testdata / "siprec" / "drachtio" / "inactive-sdp-offer.txt").read_bytes(), None
    )
    sdp = SessionDescription.parse(parts[0].body)
    assert [m.direction for m in sdp.media] == [Direction.INACTIVE, Direction.INACTIVE]


@pytest.mark.parametrize(
    "name", ["non-siprec-payload.txt", "sample-sdp2.txt", "sample-sdp3.txt", "sample-sdps.txt"]
)
def test_plain_sdp_is_not_multipart(testdata: Path, name: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_multipart((testdata / "siprec" / "drachtio" / name).read_bytes(), None)
    assert str(caught.value) == "multipart body has no boundary"


def test_cisco_cube_siprec_invite(testdata: Path) -> None:
    path = testdata / "siprec" / "vendor_docs" / "cisco_cube_media_proxy_siprec_invite.txt"
    invite = SipMessage.parse(path.read_bytes())
    assert invite.require == ("siprec",)
    assert invite.contact is not None and invite.contact.params == (("+sip.src", None),)
    sdp_part = body_part(invite, "application/sdp")
    meta = body_part(invite, *METADATA)
    assert sdp_part is not None and meta is not None
    assert sdp_part.header("content-disposition") == "session;handling=required"
    assert b'xmlns="urn:ietf:params:xml:ns:recording:1"' in meta.body
    assert meta.body.rstrip().endswith(b"</recording>")  # declared length is short: all kept
    sdp = SessionDescription.parse(sdp_part.body)
    assert [(m.port, m.label, m.direction, m.rtpmap[0].encoding) for m in sdp.media] == [
        (8278, "1", Direction.SENDONLY, "PCMU"),
        (8280, "2", Direction.SENDONLY, "PCMU"),
    ]


def test_miarec_vendor_invites(testdata: Path) -> None:
    outcomes: dict[str, int] = {"rejected": 0, "INVITE": 0, "UPDATE": 0}
    for template in miarec_templates(testdata):
        data = sipp_message(template)
        try:
            msg = SipMessage.parse(data)
        except SipParseError as error:
            # fragments of 3pcc scenario commands the extraction picked up: not SIP
            assert str(error) == "not a SIP start line"
            outcomes["rejected"] += 1
            continue
        assert msg.method is not None
        outcomes[msg.method] += 1
        assert msg.defects == (), template.name
        assert bytes(msg) == data
        assert body_part(msg, *METADATA) is not None, template.name
        sdp_part = body_part(msg, "application/sdp")
        if msg.method == "UPDATE":
            assert sdp_part is None  # metadata-only updates (RFC 7866 9.3)
            continue
        assert sdp_part is not None, template.name
        sdp = SessionDescription.parse(sdp_part.body)
        assert sdp.media and all(m.port >= 6000 for m in sdp.media)
        assert all(m.label for m in sdp.media if not m.rejected), template.name
    assert outcomes == {"rejected": 8, "INVITE": 125, "UPDATE": 11}


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=600), boundary=st.sampled_from([None, "b", 'multipart/mixed;b="']))
def test_fuzz_parse_multipart_raises_only_sip_parse_error(
    body: bytes, boundary: str | None
) -> None:
    try:
        parts = parse_multipart(body, boundary)
    except SipParseError:
        return
    assert parts and all(isinstance(p, BodyPart) for p in parts)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(["application/sdp", "text/plain", "application/x"]), st.binary()),
        min_size=1,
        max_size=4,
    ),
    eol=st.sampled_from([b"\r\n", b"\n"]),
)
def test_generated_multiparts_round_trip(parts: list[tuple[str, bytes]], eol: bytes) -> None:
    boundary = b"zz-boundary-0123456789"
    body = b""
    for mime, content in parts:
        if boundary in content:
            return
        if eol == b"\n" and content.endswith(b"\r"):
            # ambiguous by construction: "\r" + LF before a delimiter reads as the CRLF that
            # RFC 2046 5.1.1 attaches to the delimiter, as a CRLF-framed body must
            return
        body += b"--" + boundary + eol + b"Content-Type: " + mime.encode() + eol + eol
        body += content + eol
    body += b"--" + boundary + b"--" + eol
    parsed = parse_multipart(body, "multipart/mixed;boundary=" + boundary.decode())
    assert [(p.mime, p.body) for p in parsed] == parts


CONTENT_TYPES = st.sampled_from(
    [
        None, "application/sdp", "Application/SDP ;charset=x", "text/plain", "application",
        "multipart/mixed;boundary=b1", "multipart/mixed", 'multipart/mixed;boundary="b1"',
        "multipart/alternative;boundary=zz",
    ]
)  # fmt: skip
BODIES = st.sampled_from(
    [
        b"", b"v=0\r\n",
        b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\n",
        b"--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1\r\nc: application/SDP\r\n\r\nv=1\r\n",
        b"no delimiter", b"--b1\r\n", b"--b1--\r\n",
    ]
)  # fmt: skip
WANTED = st.lists(
    st.sampled_from(["application/sdp", "APPLICATION/sdp", "text/plain", "multipart/mixed"]),
    min_size=1,
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(ctype=CONTENT_TYPES, body=BODIES | st.binary(max_size=60), wanted=WANTED)
def test_body_bytes_answers_as_body_part(ctype: str | None, body: bytes, wanted: list[str]) -> None:
    head = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n"
    if ctype is not None:
        head += b"Content-Type: " + ctype.encode() + b"\r\n"
    msg = SipMessage.parse(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    try:
        part = body_part(msg, *wanted)
    except SipParseError as exc:
        with pytest.raises(SipParseError) as raised:
            body_bytes(msg, *wanted)
        assert str(raised.value) == str(exc)
        return
    assert body_bytes(msg, *wanted) == (None if part is None else part.body)
