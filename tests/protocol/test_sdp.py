"""SessionDescription.parse: media, payload maps, direction, encryption, problems, fuzz."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.protocol import sdp as sdp_module
from callscope.protocol.errors import SdpParseError
from callscope.protocol.multipart import body_part
from callscope.protocol.sdp import (
    Connection,
    Direction,
    Origin,
    RtpMap,
    SdpProblem,
    SessionDescription,
)
from callscope.protocol.sip import SipMessage, looks_like_sip
from tests.protocol._pcap_walk import UDP, payloads


def sdp(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode("utf-8") + b"\r\n"


OFFER = sdp("""
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=通話
c=IN IP4 192.0.2.10
t=0 0
b=AS:128
a=recvonly
m=audio 49170 RTP/AVP 0 8 9 18 101 13
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=fmtp:18 annexb=no
a=ptime:20
a=rtcp:49171
a=label:1
m=audio 49172/2 RTP/AVP 96
c=IN IP4 198.51.100.7/127/3
a=rtpmap:96 opus/48000/2
a=sendrecv
a=rtcp-mux
k=prompt
m=video 0 RTP/AVP 34
""")


def test_session_level_fields() -> None:
    parsed = SessionDescription.parse(OFFER)
    assert bytes(parsed) == OFFER
    assert parsed.version == 0
    assert parsed.origin == Origin("jdoe", "2890844526", "2890842807", "IN", "IP4", "10.47.16.5")
    assert parsed.session_name == "通話"
    assert parsed.connection == Connection("IN", "IP4", "192.0.2.10")
    assert parsed.bandwidth == (("AS", 128),)
    assert parsed.direction is Direction.RECVONLY
    assert parsed.other_lines == (("t", "0 0"),)
    assert parsed.problems == () and not parsed.is_encrypted


def test_media_with_static_payload_types_filled_in() -> None:
    audio = SessionDescription.parse(OFFER).media[0]
    assert (audio.media, audio.port, audio.port_count, audio.proto) == (
        "audio",
        49170,
        1,
        "RTP/AVP",
    )
    assert audio.formats == ("0", "8", "9", "18", "101", "13")
    assert audio.payload_types == (0, 8, 9, 18, 101, 13)
    assert list(audio.rtpmap.items()) == [
        (0, RtpMap("PCMU", 8000)),
        (8, RtpMap("PCMA", 8000)),
        (9, RtpMap("G722", 8000)),  # RFC 3551 4.5.2: 8000 Hz RTP clock for G.722
        (18, RtpMap("G729", 8000)),
        (101, RtpMap("telephone-event", 8000)),
        (13, RtpMap("CN", 8000)),
    ]
    assert audio.fmtp == {101: "0-15", 18: "annexb=no"}
    assert audio.address == "192.0.2.10"  # session c= applies
    assert audio.direction is Direction.RECVONLY  # session attribute inherited
    assert (audio.ptime, audio.rtcp_port, audio.rtcp_mux, audio.label) == (20, 49171, False, "1")


def test_media_level_overrides() -> None:
    second, video = SessionDescription.parse(OFFER).media[1:]
    assert second.port_count == 2
    assert second.connection == Connection("IN", "IP4", "198.51.100.7", ttl=127, count=3)
    assert second.rtpmap == {96: RtpMap("opus", 48000, 2)}
    assert second.direction is Direction.SENDRECV and second.rtcp_mux
    assert second.other_lines == (("k", "prompt"),)
    assert second.attribute("rtpmap") == "96 opus/48000/2"
    assert video.media == "video" and video.rejected
    assert video.rtpmap == {34: RtpMap("H263", 90000)}


def test_default_direction_and_old_style_hold() -> None:
    held = SessionDescription.parse(
        sdp("v=0\no=- 1 2 IN IP4 0.0.0.0\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 0")
    )
    (media,) = held.media
    # RFC 3264 8.4: c=0.0.0.0 means "do not send to me": sendrecv becomes sendonly
    assert media.declared_direction is Direction.SENDRECV
    assert media.direction is Direction.SENDONLY and media.zero_address
    recvonly = SessionDescription.parse(
        sdp("v=0\ns=-\nm=audio 4000 RTP/AVP 0\nc=IN IP4 0.0.0.0\na=recvonly")
    )
    assert recvonly.media[0].direction is Direction.INACTIVE


def test_direction_attribute_case_is_tolerated() -> None:
    parsed = SessionDescription.parse(sdp("v=0\ns=-\nm=audio 1 RTP/AVP 0\na=SendOnly"))
    assert parsed.media[0].direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("media_lines", "encrypted"),
    [
        ("m=audio 4000 RTP/AVP 0", False),
        ("m=audio 4000 RTP/SAVP 0", True),
        ("m=audio 4000 RTP/SAVPF 111", True),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111\na=fingerprint:sha-256 AB:CD\na=setup:actpass", True),
        (
            "m=audio 4000 RTP/AVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0|2^20|1:32",
            True,
        ),
        ("m=audio 4000 RTP/AVP 0\na=zrtp-hash:1.10 fe30efd0", True),
    ],
)
def test_encrypted_media(media_lines: str, encrypted: bool) -> None:
    parsed = SessionDescription.parse(sdp("v=0\ns=-\nc=IN IP4 192.0.2.1\n" + media_lines))
    assert parsed.media[0].is_encrypted is encrypted
    assert parsed.is_encrypted is encrypted


def test_crypto_key_is_kept_but_not_printed() -> None:
    line = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0|2^20|1:32 KDR=1"
    (crypto,) = (
        SessionDescription.parse(sdp("v=0\ns=-\nm=audio 1 RTP/AVP 0\n" + line)).media[0].crypto
    )
    assert (crypto.tag, crypto.suite, crypto.session_params) == (
        1,
        "AES_CM_128_HMAC_SHA1_80",
        ("KDR=1",),
    )
    assert crypto.key_params.startswith("inline:")
    assert "inline" not in repr(crypto)


def test_session_fingerprint_applies_to_every_stream() -> None:
    parsed = SessionDescription.parse(
        sdp("v=0\ns=-\na=fingerprint:sha-1 00:11\nm=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 8")
    )
    assert [m.fingerprint for m in parsed.media] == ["sha-1 00:11", "sha-1 00:11"]


def test_missing_line_break_from_a_real_hep_capture(testdata: Path) -> None:
    line = (testdata / "hep" / "hep.pcap.hep.jsonl").read_text().splitlines()[0]
    body = SipMessage.parse(json.loads(line)["payload"].encode()).body
    parsed = SessionDescription.parse(body)
    assert parsed.problems == (
        SdpProblem(
            "line break missing",
            "o=nodejs-Session 1028236597 1930329353 IN IP4 127.126.124.123s=nodejs",
        ),
    )
    assert parsed.origin is not None and parsed.origin.address == "127.126.124.123"
    assert parsed.session_name == "nodejs"
    (audio,) = parsed.media
    assert (audio.address, audio.port, audio.payload_types) == (
        "127.126.124.123",
        5072,
        (18, 0, 8, 101),
    )


def test_bad_lines_are_problems_not_failures() -> None:
    text = sdp(
        "v=1\no=short\ns=-\nc=IN IP4\nb=AS:lots\nthis is not sdp\nm=audio x RTP/AVP 0\n"
        "a=rtpmap:0 PCMU\nm=audio 5000 RTP/AVP 0 97\na=rtpmap:97 opus\na=fmtp:x y\n"
        "a=rtcp:port\na=ptime:twenty\na=crypto:x\na=rtpmap:200 X/1"
    )
    parsed = SessionDescription.parse(text)
    assert [p.message for p in parsed.problems] == [
        "unknown SDP version",
        "bad o= line",
        "bad c= line",
        "bad b= line",
        "line is not type=value",
        "bad m= line",
        "bad a=rtpmap",
        "bad a=fmtp",
        "bad a=rtpmap",
        "bad a=rtcp",
        "bad a=crypto",
        "bad a=ptime",
    ]
    (media,) = parsed.media  # the section with the broken m= line is dropped
    assert media.port == 5000 and media.rtpmap == {0: RtpMap("PCMU", 8000)}


def test_non_utf8_sdp_is_a_problem() -> None:
    parsed = SessionDescription.parse(b"v=0\r\ns=\xff\xfe\r\nm=audio 1 RTP/AVP 0\r\n")
    assert parsed.problems == (SdpProblem("SDP is not UTF-8", ""),)


def test_non_rtp_media_gets_no_static_map() -> None:
    parsed = SessionDescription.parse(sdp("v=0\ns=-\nm=image 4000 udptl t38"))
    assert parsed.media[0].rtpmap == {} and parsed.media[0].payload_types == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "SDP has no v= line"),
        (b"\x80\x00garbage", "SDP has no v= line"),
        (b"s=-\r\nm=audio 1 RTP/AVP 0\r\n", "SDP has no v= line"),
        (b"v=0\r\ns=-\r\n", "SDP has no usable m= line"),
        (b"v=0\r\nm=audio port RTP/AVP 0\r\n", "SDP has no usable m= line"),
        (b"v=0\r\nm=audio 1\r\n", "SDP has no usable m= line"),
    ],
)
def test_unusable_sdp_raises_fixed_messages(data: bytes, message: str) -> None:
    with pytest.raises(SdpParseError) as caught:
        SessionDescription.parse(data)
    assert str(caught.value) == message
    assert caught.value.kind == "sdp.parse"


EXPECTED_CODECS = {
    "sip-rtp-g722.pcap": ("audio", RtpMap("G722", 8000)),
    "sip-rtp-g729a.pcap": ("audio", RtpMap("G729", 8000)),
    "sip-rtp-opus-hybrid.pcap": ("audio", RtpMap("opus", 48000, 2)),
    "invite-opus-bye.pcap": ("audio", RtpMap("opus", 48000)),
    "h263-over-rtp.pcap": ("video", RtpMap("H263", 90000)),
    "rtp-protocol.pcap": ("audio", RtpMap("PCMA", 8000)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CODECS))
def test_codecs_offered_in_real_captures(testdata: Path, name: str) -> None:
    kind, codec = EXPECTED_CODECS[name]
    offered = set()
    for payload in payloads(testdata / "pcap" / name):
        if payload.proto == UDP and looks_like_sip(payload.data):
            part = body_part(SipMessage.parse(payload.data), "application/sdp")
            if part is not None:
                parsed = SessionDescription.parse(part.body)
                assert bytes(parsed) == part.body and parsed.problems == ()
                offered |= {(m.media, r) for m in parsed.media for r in m.rtpmap.values()}
    assert (kind, codec) in offered


LINES = st.sampled_from(
    [
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0/2/x",
        "t=0 0", "m=audio 4000 RTP/AVP 0 8 101", "m=video 0 RTP/AVP 34", "m=audio x/y z",
        "m=", "a=rtpmap:101 telephone-event/8000", "a=rtpmap:", "a=fmtp:101 0-15", "a=sendonly",
        "a=inactive", "a=crypto:1 A inline:k", "a=rtcp:", "a=ptime:", "b=AS:", "a=label:1",
        "o=a b c d e 1.2.3.4s=x", "c=IN IP4 1.2.3.4m=audio 1 RTP/AVP 0", "x", "=", "",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.one_of(LINES, st.text(max_size=30)), max_size=25))
def test_fuzz_line_soup_raises_only_sdp_parse_error(lines: list[str]) -> None:
    data = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    try:
        parsed = SessionDescription.parse(data)
    except SdpParseError:
        return
    assert bytes(parsed) == data and parsed.media


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=500))
def test_fuzz_bytes_raise_only_sdp_parse_error(data: bytes) -> None:
    try:
        SessionDescription.parse(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n" + data)
        SessionDescription.parse(data)
    except SdpParseError:
        pass


ATTRIBUTES = st.sampled_from(
    [
        "a=sendonly", "a=SENDONLY", "a=recvonly", "a=inactive", "a=sendrecv:x", "a=label:1",
        "a=label", "a=label:2", "a=rtcp-mux", "a=rtcp:5001 IN IP4 192.0.2.9", "a=rtcp:x",
        "a=rtcp:", "a=ptime:20", "a=ptime:20.5", "a=ptime:", "a=zrtp-hash:1.10 ab",
        "a=zrtp-hash:", "a=fingerprint:sha-256 AA", "a=crypto:1 A inline:k", "a=crypto:x",
        "a=rtpmap:96 opus/48000/2", "a=rtpmap:x", "a=fmtp:96 x=1", "a=other:1",
    ]
)  # fmt: skip


def _first(attrs: list[tuple[str, str | None]], name: str) -> str | None:
    return next((value for key, value in attrs if key == name), None)


@settings(max_examples=300, deadline=None)
@given(session=st.lists(ATTRIBUTES, max_size=4), media=st.lists(ATTRIBUTES, max_size=8))
def test_media_attributes_are_the_first_of_each_name(session: list[str], media: list[str]) -> None:
    text = "\r\n".join(["v=0", "c=IN IP4 192.0.2.1", *session, "m=audio 4000 RTP/AVP 0 96", *media])
    parsed = SessionDescription.parse(text.encode())
    (m,) = parsed.media
    attrs, top = list(m.attributes), list(parsed.attributes)
    names = {d.value for d in Direction}
    flags = [Direction(k.lower()) for k, v in attrs if v is None and k.lower() in names]
    top_flags = [Direction(k.lower()) for k, v in top if v is None and k.lower() in names]
    assert parsed.direction == (top_flags or [Direction.SENDRECV])[0]
    assert m.declared_direction == m.direction == (flags or [parsed.direction])[0]
    assert m.label == _first(attrs, "label")
    assert m.rtcp_mux == any(k == "rtcp-mux" for k, _ in attrs)
    rtcp = (_first(attrs, "rtcp") or "").split()
    assert m.rtcp_port == (int(rtcp[0]) if rtcp and rtcp[0].isdigit() else None)
    ptime = (_first(attrs, "ptime") or "").partition(".")[0]
    assert m.ptime == (int(ptime) if ptime.isdigit() else None)
    assert m.zrtp_hash == (_first(attrs, "zrtp-hash") or _first(top, "zrtp-hash"))
    assert m.fingerprint == (_first(attrs, "fingerprint") or _first(top, "fingerprint"))
    assert len(m.crypto) == sum(1 for k, v in attrs if k == "crypto" and v == "1 A inline:k")
    assert (96 in m.rtpmap) == any(v == "96 opus/48000/2" for k, v in attrs if k == "rtpmap")


def _parse_afresh(data: bytes) -> SessionDescription | tuple[str, str]:
    sdp_module._MEANINGS.clear()
    try:
        return SessionDescription.parse(data)
    except SdpParseError as exc:
        return "error", str(exc)


@settings(max_examples=300, deadline=None)
@given(
    session=st.lists(ATTRIBUTES, max_size=3),
    media=st.lists(ATTRIBUTES, max_size=6),
    other=st.lists(ATTRIBUTES, max_size=6),
    lines=st.lists(st.one_of(LINES, st.text(max_size=20)), max_size=8),
)
def test_remembered_media_meanings_give_the_description_parsed_afresh(
    session: list[str], media: list[str], other: list[str], lines: list[str]
) -> None:
    texts = [
        ["v=0", "c=IN IP4 192.0.2.1", *session, "m=audio 4000 RTP/AVP 0 96", *media],
        ["v=0", *session, "m=audio 4002 RTP/AVP 96 0", *media, "m=video 0 RTP/AVP 34", *other],
        ["v=0", "c=IN IP4 0.0.0.0", "m=audio 4004 RTP/AVP 0 96", *media, *lines],
    ]
    datas = ["\r\n".join(text).encode("utf-8", "surrogatepass") for text in texts]
    fresh = [_parse_afresh(data) for data in datas]
    for data in datas + datas:  # every meaning is remembered by now
        try:
            parsed: SessionDescription | tuple[str, str] = SessionDescription.parse(data)
        except SdpParseError as exc:
            parsed = "error", str(exc)
        assert parsed == fresh[datas.index(data)]


def test_descriptions_do_not_share_their_payload_maps() -> None:
    one = SessionDescription.parse(OFFER)
    one.media[0].rtpmap.clear()  # type: ignore[attr-defined]
    two = SessionDescription.parse(OFFER)
    assert two.media[0].rtpmap and two.media[0].rtpmap is not one.media[0].rtpmap


def test_a_body_seen_lately_is_parsed_once() -> None:
    """`parse_recent`: the same body again (a proxy's copy, a retransmission) gives the same
    description object, equal to a fresh parse; a bad body raises every time, and a body
    too long to keep is parsed afresh each time."""
    first = sdp_module.parse_recent(OFFER)
    assert first == SessionDescription.parse(OFFER)
    assert sdp_module.parse_recent(bytes(bytearray(OFFER))) is first
    for _ in range(2):
        with pytest.raises(SdpParseError):
            sdp_module.parse_recent(b"no SDP here")
    long_body = OFFER + b"a=x-pad:" + b"0" * 5000 + b"\r\n"
    one, two = sdp_module.parse_recent(long_body), sdp_module.parse_recent(long_body)
    assert one == two and one is not two
