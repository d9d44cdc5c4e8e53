"""UAS message builders: responses copy what RFC 3261 8.2.6 says, lengths count bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscope.protocol.errors import SipParseError
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipbuild import build_bye, build_request, build_response

INVITE = (
    b"INVITE sip:srs@192.0.2.10 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2, SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK3\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b"Record-Route: <sip:192.0.2.2;lr>\r\n"
    b'f: "\xe7\xb7\x8f\xe5\x8b\x99" <sip:src@192.0.2.1>;tag=src1\r\n'
    b"To: <sip:srs@192.0.2.10>\r\n"
    b"Call-ID: rec-1@192.0.2.1\r\n"
    b"CSeq: 101 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:src@192.0.2.1:5060>;+sip.src\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_response_copies_via_from_to_call_id_cseq_and_adds_the_tag() -> None:
    response = SipMessage.parse(
        build_response(SipMessage.parse(INVITE), 180, "Ringing", to_tag="srs9")
    )
    assert (response.status_code, response.reason) == (180, "Ringing")
    assert response.headers_all("via") == (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=192.0.2.1",
        "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2, SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK3",
    )
    assert [v.branch for v in response.via] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert response.from_ is not None and response.from_.display_name == "総務"
    assert response.from_.tag == "src1"
    assert response.to is not None and response.to.tag == "srs9"
    assert response.call_id == "rec-1@192.0.2.1"
    assert response.cseq == (101, "INVITE")
    assert response.headers_all("record-route") == ("<sip:192.0.2.1;lr>", "<sip:192.0.2.2;lr>")
    assert response.header("timestamp") is None
    assert response.content_length == 0 and response.defects == ()


def test_100_trying_has_no_tag_but_copies_timestamp() -> None:
    trying = SipMessage.parse(build_response(SipMessage.parse(INVITE), 100, "Trying", to_tag="x"))
    assert trying.to is not None and trying.to.tag is None
    assert trying.header("timestamp") == "54"
    assert trying.headers_all("record-route") == ()


def test_in_dialog_request_keeps_its_to_tag() -> None:
    bye = INVITE.replace(b"To: <sip:srs@192.0.2.10>", b"To: <sip:srs@192.0.2.10>;tag=old")
    response = SipMessage.parse(build_response(SipMessage.parse(bye), 200, "OK", to_tag="new"))
    assert response.to is not None and response.to.tag == "old"


def test_utf8_body_content_length_counts_bytes() -> None:
    body = "v=0\r\ns=録音サーバ\r\n"
    data = build_response(
        SipMessage.parse(INVITE),
        200,
        "OK",
        to_tag="t",
        headers=[("Contact", "<sip:srs@192.0.2.10>"), ("Require", "siprec")],
        body=body,
        content_type="application/sdp",
    )
    response = SipMessage.parse(data)
    assert response.content_length == len(body.encode("utf-8")) > len(body)
    assert response.body.decode("utf-8") == body
    assert response.defects == ()
    assert response.header("content-type") == "application/sdp"
    assert response.require == ("siprec",)
    assert data.endswith(b"\r\n\r\n" + body.encode("utf-8"))


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^header text contains a line break$"):
        build_response(SipMessage.parse(INVITE), 200, "OK\r\nX: y", to_tag="t")
    with pytest.raises(ValueError, match=r"^status code out of range$"):
        build_response(SipMessage.parse(INVITE), 99, "Nope")


def test_build_request_round_trips_through_the_parser() -> None:
    data = build_request(
        "OPTIONS",
        "sip:pbx.example.jp",
        via="SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKping",
        from_="<sip:srs@192.0.2.10>;tag=a",
        to="<sip:pbx.example.jp>",
        call_id="ping-1",
        cseq=7,
    )
    msg = SipMessage.parse(data)
    assert (msg.method, msg.request_uri, msg.cseq, msg.max_forwards) == (
        "OPTIONS",
        "sip:pbx.example.jp",
        (7, "OPTIONS"),
        70,
    )
    assert msg.content_length == 0 and bytes(msg) == data


def test_bye_from_the_recording_server_side_of_the_dialog() -> None:
    invite = SipMessage.parse(INVITE)
    bye = SipMessage.parse(
        build_bye(invite, local_tag="srs9", via="SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKbye", cseq=1)
    )
    assert (bye.method, bye.request_uri) == ("BYE", "sip:src@192.0.2.1:5060")
    assert bye.from_ is not None and bye.from_.tag == "srs9" and bye.from_.uri.user == "srs"
    assert bye.to is not None and bye.to.tag == "src1" and bye.to.display_name == "総務"
    assert bye.headers_all("route") == ("<sip:192.0.2.1;lr>", "<sip:192.0.2.2;lr>")
    assert bye.call_id == "rec-1@192.0.2.1" and bye.cseq == (1, "BYE")


def test_bye_needs_a_dialog() -> None:
    with pytest.raises(SipParseError) as caught:
        build_bye(
            SipMessage.parse(b"INVITE sip:a@b SIP/2.0\r\n\r\n"), local_tag="t", via="v", cseq=1
        )
    assert str(caught.value) == "INVITE cannot form a dialog"


def test_responses_to_real_siprec_invite(testdata: Path) -> None:
    data = (
        testdata / "siprec" / "vendor_docs" / "cisco_cube_media_proxy_siprec_invite.txt"
    ).read_bytes()
    invite = SipMessage.parse(data)
    ok = SipMessage.parse(build_response(invite, 200, "OK", to_tag="rec"))
    assert ok.call_id == "B0FA2851-4D4811EA-82E5D263-E98F8024@8.43.33.209"
    assert ok.cseq == (101, "INVITE") and ok.to is not None and ok.to.tag == "rec"
    assert ok.via[0].branch == "z9hG4bK20959B"
