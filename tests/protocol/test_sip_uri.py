"""SIP/SIPS/tel URIs, name-addr values and the dialled-number view of a URI."""

from __future__ import annotations

import pytest

from callscope.protocol.errors import SipParseError
from callscope.protocol.sipuri import NameAddr, SipUri, decode_text, split_outside_quotes


def test_full_sip_uri() -> None:
    uri = SipUri.parse("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=x%20y&h=1")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::10]",
        5061,
    )
    assert uri.params == (("transport", "tcp"), ("lr", None))
    assert uri.headers == (("subject", "x y"), ("h", "1"))
    assert str(uri) == "sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=x%20y&h=1"


def test_host_only_uri_and_case() -> None:
    uri = SipUri.parse("SIP:PBX.Example.JP:5060")
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sip", None, "pbx.example.jp", 5060)
    assert uri.number is None


def test_tel_uri() -> None:
    uri = SipUri.parse("tel:+81-3-1234-5678;phone-context=+81")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+81-3-1234-5678", None)
    assert uri.param("phone-context") == "+81"
    assert uri.number == "+81312345678"


def test_unknown_scheme_is_kept_opaque() -> None:
    uri = SipUri.parse("urn:service:sos")
    assert (uri.scheme, uri.user, uri.host, str(uri)) == ("urn", None, None, "urn:service:sos")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("sip:0312345678@pbx", "0312345678"),
        ("sip:+81312345678@pbx;user=phone", "+81312345678"),
        ("sip:*67@pbx", "*67"),
        ("sip:%2321@pbx", "#21"),  # '#' arrives escaped
        ("sip:03-1234-5678@pbx", "0312345678"),  # visual separators only
        ("sip:(03)1234.5678@pbx", "0312345678"),
        ("sip:1234;phone-context=example.jp@pbx", "1234"),  # user parameters dropped
        ("sip:alice@pbx", None),
        ("sip:anonymous@anonymous.invalid", None),
        ("sip:12ab@pbx", None),  # not clearly a number: not guessed at
        ("sip:---@pbx", None),
    ],
)
def test_number_is_the_user_part_as_dialled(text: str, number: str | None) -> None:
    assert SipUri.parse(text).number == number


def test_user_stays_verbatim() -> None:
    assert SipUri.parse("sip:%2321@pbx").user == "%2321"


@pytest.mark.parametrize("text", ["", "no-scheme-here", ":x", "sip", "ä:b"])
def test_uri_without_scheme_raises(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        SipUri.parse(text)
    assert str(caught.value) == "URI has no scheme"


def test_name_addr_quoted_japanese_display_name() -> None:
    value = '"総務課 \\"代表\\"" <sip:1000@city.example.jp>;tag=abc;x-flag'
    addr = NameAddr.parse(value)
    assert addr.display_name == '総務課 "代表"'
    assert addr.uri.user == "1000"
    assert addr.tag == "abc"
    assert addr.params == (("tag", "abc"), ("x-flag", None))


def test_name_addr_token_display_name_and_addr_spec() -> None:
    token = NameAddr.parse("Reception Desk <sip:100@h>")
    assert token.display_name == "Reception Desk" and token.uri.user == "100"
    # RFC 3261 20.10: without <>, parameters after the URI belong to the header
    spec = NameAddr.parse("sip:100@h;tag=9")
    assert spec.display_name is None and spec.tag == "9" and spec.uri.params == ()


def test_uri_params_inside_angle_brackets_stay_with_the_uri() -> None:
    addr = NameAddr.parse("<sip:100@h;user=phone>;tag=1")
    assert addr.uri.param("user") == "phone" and addr.tag == "1"


def test_quoted_header_param_keeps_semicolons() -> None:
    addr = NameAddr.parse('<sip:a@h>;+sip.instance="<urn:uuid:1;2>";reg-id=1')
    assert addr.param("+sip.instance") == "<urn:uuid:1;2>"
    assert addr.param("reg-id") == "1"


def test_split_outside_quotes_respects_quotes_and_brackets() -> None:
    text = '"Doe, John" <sip:j@h;a=b,c>, <sip:k@h>'
    assert split_outside_quotes(text, ",") == ['"Doe, John" <sip:j@h;a=b,c>', " <sip:k@h>"]


def test_decode_text_falls_back_and_says_so() -> None:
    assert decode_text("東京".encode()) == ("東京", False)
    text, bad = decode_text(b"\xff\xfeok")
    assert bad and text.endswith("ok") and "\ufffd" in text
