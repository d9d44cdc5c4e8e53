"""SIPREC metadata (RFC 7865) and request bodies from real recording clients, plus fuzz tests.

Every INVITE, UPDATE and body in testdata/siprec is parsed here or rejected with its fixed
reason; where parsed, each SDP ``a=label`` is tied through the metadata to the party that
sends it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.protocol.errors import SipParseError, SiprecParseError
from callscope.protocol.sdp import SessionDescription
from callscope.protocol.sip import SipMessage
from callscope.protocol.siprec import DataMode, RecordingMetadata, aor_user
from callscope.protocol.siprec_offer import (
    DEFAULT_CODECS,
    RecordingBody,
    acceptable_formats,
    answer_sdp,
    is_siprec,
)
from tests.protocol._siprec_wire import as_invite, drachtio_parts, miarec_messages

RECORDING_1 = "urn:ietf:params:xml:ns:recording:1"


def senders_by_label(metadata: RecordingMetadata, labels: list[str]) -> dict[str, list[str]]:
    """label -> numbers of the participants sending that stream."""
    found: dict[str, list[str]] = {}
    for label in labels:
        stream = metadata.stream_for_label(label)
        senders = metadata.senders(stream.stream_id) if stream is not None else ()
        found[label] = [p.number or "" for p in senders]
    return found


# -- drachtio: bodies captured from real SRCs --------------------------------------------

DRACHTIO = {
    "acme-siprec-offer.txt": {"16777227": ["9000"], "16777228": ["1002"]},
    "broadworks-offer-2.txt": {"10": ["9878942259"], "20": ["ASBCE"]},
    "cisco-siprec-offer.txt": {"1": ["7301"], "2": ["7300"]},
    "connectel-offer.txt": {"1": [], "2": []},  # no participantstreamassoc at all
    "connectel-offer2.txt": {"1": [], "2": []},
    "connectel-offer3.txt": {"1": [], "2": []},
    "inactive-sdp-offer.txt": {"1": [], "2": []},  # paused: associations are empty
    "procomm-siprec-offer.txt": {"a_leg": ["016190200"], "b_leg": ["Extension-016190619"]},
    "sonus-siprec-offer.txt": {"1": ["2249888012"], "2": ["2249888500"]},
}


@pytest.mark.parametrize("name", sorted(DRACHTIO))
def test_drachtio_bodies_map_each_label_to_its_sender(testdata: Path, name: str) -> None:
    invite = SipMessage.parse(
        as_invite((testdata / "siprec" / "drachtio" / name).read_bytes().lstrip(b"\r\n"))
    )
    assert is_siprec(invite)
    body = RecordingBody.of(invite)
    assert body.sdp is not None and body.metadata is not None, body.problems
    labels = [m.label or "" for m in body.sdp.media]
    assert senders_by_label(body.metadata, labels) == DRACHTIO[name]


def test_acme_draft_schema_and_calling_party_flag(testdata: Path) -> None:
    meta = RecordingMetadata.parse(
        drachtio_parts(testdata, "acme-siprec-offer.txt")["application/rs-metadata+xml"]
    )
    assert meta.namespace == "urn:ietf:params:xml:ns:recording"
    assert meta.data_mode is DataMode.COMPLETE
    assert [s.session_id for s in meta.sessions] == ["AavRXwIIQj1Q39eJulTipQ=="]
    caller, callee = meta.participants
    assert (caller.aor, caller.name, caller.calling) == ("sip:9000@192.168.50.102", "9000", True)
    assert callee.calling is False and callee.session_ids == ("AavRXwIIQj1Q39eJulTipQ==",)
    assert [s.mode for s in meta.streams] == ["separate", "separate"]


def test_sonus_prefixed_namespace_and_call_data_hints(testdata: Path) -> None:
    meta = RecordingMetadata.parse(
        drachtio_parts(testdata, "sonus-siprec-offer.txt")["application/rs-metadata+xml"]
    )
    first, second = meta.participants
    assert (first.number, first.name) == ("2249888500", "Extension 8500")
    assert second.name is None  # <tns:name> holds one space
    assert meta.calling_hints == (
        '"Extension 8500" <sip:2249888500@172.16.198.55>;tag=SerryvK5ej0jc',
    )
    assert aor_user(meta.calling_hints[0]) == "2249888500"
    assert meta.sessions[0].group_ref == "MTQ3YzA3YzAtNjdkNy0xMA=="


def test_broadworks_mangled_part_is_found_by_disposition_and_rejected(testdata: Path) -> None:
    # the part's type was logged as "application/ +xml" and its markup stripped
    body = (testdata / "siprec" / "drachtio" / "broadworks-offer.txt").read_bytes()
    parsed = RecordingBody.of(SipMessage.parse(as_invite(body.strip())))
    assert parsed.sdp is not None and [m.label for m in parsed.sdp.media] == ["1"]
    assert parsed.metadata is None
    assert parsed.metadata_error == "metadata has no elements"
    assert parsed.has_metadata_part


@pytest.mark.parametrize(
    "name", ["non-siprec-payload.txt", "sample-sdp2.txt", "sample-sdp3.txt", "sample-sdps.txt"]
)
def test_plain_sdp_payloads_are_not_siprec(testdata: Path, name: str) -> None:
    sdp = (testdata / "siprec" / "drachtio" / name).read_bytes().split(b"__split_here__")[0]
    invite = SipMessage.parse(
        b"INVITE sip:srs@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:srs@192.0.2.2>\r\nCall-ID: x\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\nContent-Type: application/sdp\r\n"
        b"Content-Length: " + str(len(sdp)).encode() + b"\r\n\r\n" + sdp
    )
    assert not is_siprec(invite)
    body = RecordingBody.of(invite)
    assert body.sdp is not None and body.metadata is None and not body.has_metadata_part


# -- vendor documentation samples ---------------------------------------------------------


def test_cisco_cube_invite_survives_its_short_content_length(testdata: Path) -> None:
    path = testdata / "siprec" / "vendor_docs" / "cisco_cube_media_proxy_siprec_invite.txt"
    invite = SipMessage.parse(path.read_bytes().replace(b"\n", b"\r\n"))
    assert invite.content_length == 2250 and len(invite.body) == 2250
    body = RecordingBody.of(invite)
    assert body.problems == ("Content-Length shorter than the multipart body",)
    assert body.metadata is not None and body.sdp is not None
    assert senders_by_label(body.metadata, ["1", "2"]) == {"1": ["3478"], "2": ["98765"]}
    assert body.metadata.sessions[0].sip_session_ids == (
        "0e0960d88013509f86e7ad2d78da208a;remote=4d0de1325c205fa08f77d8d31c1b3a6f",
    )


def aws_metadata(testdata: Path) -> bytes:
    text = testdata / "siprec" / "vendor_docs" / "aws_chime_sdk_doc_siprec_initial_invite.txt"
    data = text.read_bytes()
    return data[data.index(b"<?xml") :]


def test_aws_doc_metadata_typo_is_rejected(testdata: Path) -> None:
    with pytest.raises(SiprecParseError) as caught:
        RecordingMetadata.parse(aws_metadata(testdata))
    assert str(caught.value) == "metadata is not well-formed XML"


def test_aws_hold_and_resume_partial_updates(testdata: Path) -> None:
    fixed = aws_metadata(testdata).replace(b"<naSRCme ", b"<name ")
    initial = RecordingMetadata.parse(fixed)
    assert [p.name for p in initial.participants] == ["Alice", "Bob"]
    assert len(initial.streams) == 4 and len(initial.sessions) == 1
    assert initial.sessions[0].group_ref == "7+OTCyoxTmqmqyA/1weDAg=="
    labels = ["96", "97", "98", "99"]
    before = senders_by_label(initial, labels)
    assert before == {"96": ["alice"], "97": ["alice"], "98": ["bob"], "99": ["bob"]}
    folder = testdata / "siprec" / "vendor_docs"
    hold = RecordingMetadata.parse(
        (folder / "aws_chime_sdk_doc_siprec_hold_metadata.xml").read_bytes()
    )
    assert hold.data_mode is DataMode.PARTIAL
    held = initial.merge(hold)
    assert held.data_mode is DataMode.COMPLETE and len(held.participants) == 2
    assert senders_by_label(held, labels) == {"96": [], "97": [], "98": ["bob"], "99": ["bob"]}
    assert held.participants[0].name == "Alice"  # kept from the snapshot
    assert held.participants[1].receive == ()  # Bob receives nothing while Alice holds
    resume = (folder / "aws_chime_sdk_doc_siprec_resume_metadata.xml").read_bytes()
    assert senders_by_label(held.merge(RecordingMetadata.parse(resume)), labels) == before


# -- MiaRec: 144 vendor-modelled messages ---------------------------------------------------

# the oracle template pastes a second SDP (label 1) into its SDP part
UNLABELLED = {"oracle_sbc_basic_calls_outbound.1.sipp-template.txt": ["1"]}


def test_every_miarec_message_is_siprec_with_metadata(testdata: Path) -> None:
    messages = miarec_messages(testdata)
    assert len(messages) == 144
    namespaces: dict[str, int] = {}
    for name, data in messages:
        msg = SipMessage.parse(data)
        assert msg.method in ("INVITE", "UPDATE") and msg.defects == (), name
        assert is_siprec(msg), name
        body = RecordingBody.of(msg)
        assert body.metadata is not None and body.problems == (), (name, body.problems)
        namespaces[body.metadata.namespace] = namespaces.get(body.metadata.namespace, 0) + 1
        assert body.metadata.participants, name
        labels = [m.label or "" for m in body.sdp.media] if body.sdp is not None else []
        unmatched = [label for label in labels if body.metadata.stream_for_label(label) is None]
        assert unmatched == UNLABELLED.get(name, []), name
    assert namespaces == {
        "urn:ietf:params:xml:ns:recording": 114,
        "urn:ietf:params:xml:ns:siprec": 27,
        RECORDING_1: 3,
    }


def test_broadworks_old_draft_nested_send_ids(testdata: Path) -> None:
    data = dict(miarec_messages(testdata))["cisco_webex_calling__inbound_01.1.sipp-template.txt"]
    body = RecordingBody.of(SipMessage.parse(data))
    assert body.metadata is not None and body.sdp is not None
    assert senders_by_label(body.metadata, ["1", "2"]) == {"1": ["kculs9klre"], "2": ["7711"]}
    assert body.metadata.recording_id == "urn:uuid:03dd5b5d-6217-425a-ab0d-d04261388c36"
    assert body.metadata.called_hints[0] == "sip:+12102298592@10.155.7.148"


def test_metaswitch_mixed_stream_sent_by_both(testdata: Path) -> None:
    data = dict(miarec_messages(testdata))["16_basic_call_inbound.1.sipp-template.txt"]
    body = RecordingBody.of(SipMessage.parse(data))
    assert body.metadata is not None and body.metadata.recording_id == "WUGd5uHBEea+seyezQV3BA=="
    assert senders_by_label(body.metadata, ["1"]) == {"1": ["7602922416", "7602922410"]}
    assert body.metadata.calling_hints == ("7602922416",)


def test_avaya_update_with_metadata_only(testdata: Path) -> None:
    messages = dict(miarec_messages(testdata))
    first = RecordingBody.of(
        SipMessage.parse(messages["avaya_sbce_inbound__avaya_sbce_inbound.1.sipp-template.txt"])
    )
    update = RecordingBody.of(
        SipMessage.parse(messages["avaya_sbce_inbound__avaya_sbce_inbound.2.sipp-template.txt"])
    )
    assert first.metadata is not None and update.metadata is not None
    assert first.metadata.problems == ("stream without id",)  # <stream stream_id="">
    assert update.sdp is None
    merged = first.metadata.merge(update.metadata)  # datamode complete: replaces
    assert senders_by_label(merged, ["10", "20"]) == {"10": ["13035381001"], "20": ["7204541001"]}


# -- safety and edge cases ------------------------------------------------------------------


def xml(inner: str, root: str = f'<recording xmlns="{RECORDING_1}">') -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>{root}{inner}</recording>'.encode()


PARTY = (
    '<participant participant_id="p1"><nameID aor="tel:+81312345678">'
    "<name>{}</name></nameID></participant>"
)


def test_japanese_names_in_utf8_and_shift_jis() -> None:
    meta = RecordingMetadata.parse(xml(PARTY.format("市民課 山田太郎")))
    assert meta.participants[0].name == "市民課 山田太郎"
    assert meta.participants[0].number == "+81312345678"
    sjis = (
        f'<?xml version="1.0" encoding="Shift_JIS"?><recording xmlns="{RECORDING_1}">'
        + PARTY.format("税務課 鈴木")
        + "</recording>"
    ).encode("shift_jis")
    assert RecordingMetadata.parse(sjis).participants[0].name == "税務課 鈴木"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "metadata is empty"),
        (b" \r\n", "metadata is empty"),
        (b"<recording", "metadata is not well-formed XML"),
        (b"\xff\xfe<", "metadata is not well-formed XML"),
        (xml("").replace(b"</recording>", b""), "metadata is not well-formed XML"),
        (b'<?xml version="1.0" encoding="x-nonesuch"?><r/>', "metadata encoding is unknown"),
        (b"<recording/>", "metadata has no elements"),
        (xml(""), "metadata has no elements"),
        (f'<session xmlns="{RECORDING_1}"/>'.encode(), "metadata root is not a recording element"),
        (b'<recording xmlns="http://example.com/x"><a/></recording>', "unknown metadata namespace"),
        (b'<!DOCTYPE recording [<!ENTITY a "x">]><recording/>', "metadata has a DTD"),
        (b'<!DOCTYPE recording SYSTEM "http://192.0.2.9/x.dtd"><recording/>', "metadata has a DTD"),
        (b"<recording>" + b"<a>" * 40 + b"</a>" * 40 + b"</recording>", "metadata nests too deep"),
        (b"<recording>" + b"<a/>" * 10_001 + b"</recording>", "metadata has too many elements"),
        (b"<recording>" + b" " * 300_000 + b"<a/></recording>", "metadata is too large"),
    ],
)  # fmt: skip
def test_unreadable_metadata_is_rejected_with_a_fixed_reason(data: bytes, message: str) -> None:
    with pytest.raises(SiprecParseError) as caught:
        RecordingMetadata.parse(data)
    assert str(caught.value) == message
    assert caught.value.kind == "siprec.parse"


def test_billion_laughs_is_refused_before_expansion() -> None:
    lol = (
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b'<!ENTITY a%d "&a%d;&a%d;&a%d;&a%d;&a%d;&a%d;&a%d;&a%d;&a%d;&a%d;">'
            % ((i,) + (i - 1,) * 10)
            for i in range(1, 10)
        )
        + b']><recording xmlns="urn:ietf:params:xml:ns:recording:1"><a>&a9;</a></recording>'
    )
    with pytest.raises(SiprecParseError, match="metadata has a DTD"):
        RecordingMetadata.parse(lol)


def test_problems_are_kept_and_oddities_tolerated() -> None:
    meta = RecordingMetadata.parse(
        b"<recording><dataMode>sometimes</dataMode><participant><name>x</name></participant>"
        b"<stream><label>1</label></stream><session/><participantstreamassoc/>"
        b'<participantsessionassoc participant_id="p"/></recording>'
    )
    assert meta.namespace == "" and meta.data_mode is DataMode.COMPLETE
    assert meta.problems == (
        "metadata has no namespace", "unknown datamode", "participant without id",
        "stream without id", "session without id", "association without ids",
    )  # fmt: skip
    assert meta.participants == ()


def test_partial_update_adds_a_participant_and_relabels() -> None:
    snapshot = RecordingMetadata.parse(
        xml(
            '<stream stream_id="s1"><label>1</label></stream>'
            '<participant participant_id="a"><nameID aor="sip:100@x"/></participant>'
            '<participantstreamassoc participant_id="a"><send>s1</send></participantstreamassoc>'
        )
    )
    update = RecordingMetadata.parse(
        xml(
            "<datamode>partial</datamode>"
            '<participant participant_id="c"><nameID aor="sip:300@x"><name>転送先</name></nameID>'
            '</participant><stream stream_id="s1"><label>9</label></stream>'
            '<participantstreamassoc participant_id="c"><send>s1</send></participantstreamassoc>'
            '<participantstreamassoc participant_id="a"><recv>s1</recv></participantstreamassoc>'
        )
    )
    merged = snapshot.merge(update)
    assert [(p.number, p.send, p.receive) for p in merged.participants] == [
        ("100", (), ("s1",)),
        ("300", ("s1",), ()),  # an association states both lists whole
    ]
    assert merged.stream_for_label("9") is not None and merged.stream_for_label("1") is None
    transferred = merged.participant("c")
    assert transferred is not None and transferred.name == "転送先"


@pytest.mark.parametrize(
    ("aor", "user"),
    [
        ("sip:3478@8.41.17.71", "3478"), ("sips:+81312345678@x;user=phone", "+81312345678"),
        ("tel:+81-3-1234-5678;phone-context=x", "+81-3-1234-5678"), ("7602922416", "7602922416"),
        ("2249888500@172.16.198.55", "2249888500"), ('"A" <sip:7300@h>;tag=1', "7300"),
        ("sip:h.example", "h.example"), ("", None), (None, None),
    ],
)  # fmt: skip
def test_aor_user(aor: str | None, user: str | None) -> None:
    assert aor_user(aor) == user


def test_answer_keeps_labels_and_refuses_what_cannot_be_recorded() -> None:
    offer = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 8000 RTP/AVP 3 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\na=label:a\r\na=sendonly\r\n"
        b"m=video 8002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:v\r\n"
        b"m=audio 8004 RTP/AVP 3\r\na=label:gsm\r\n"
        b"m=audio 8006 RTP/AVP 0\r\na=label:p\r\na=inactive\r\n"
        b"m=audio 8008 RTP/SAVP 0\r\na=label:s\r\n"
    )
    assert [acceptable_formats(m, DEFAULT_CODECS) for m in offer.media] == [
        (0, 101), (), (), (0,), (),
    ]  # fmt: skip
    ports = [40000, 0, 0, 40002, 0]
    answer = answer_sdp(offer, ports, address="192.0.2.2", session_id=7, version=2)
    assert answer.decode().split("\r\n") == [
        "v=0", "o=callscope 7 2 IN IP4 192.0.2.2", "s=callscope", "c=IN IP4 192.0.2.2",
        "t=0 0", "m=audio 40000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=label:a", "a=recvonly",
        "m=video 0 RTP/AVP 96", "m=audio 0 RTP/AVP 3", "m=audio 40002 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000", "a=label:p", "a=inactive", "m=audio 0 RTP/SAVP 0", "",
    ]  # fmt: skip


# -- fuzz -------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_raise_only_siprec_parse_error(data: bytes) -> None:
    with contextlib.suppress(SiprecParseError):
        RecordingMetadata.parse(data)


NAMES = st.sampled_from(
    ["recording", "recording_metadata", "datamode", "dataMode", "session", "participant",
     "nameID", "name", "aor", "send", "recv", "id", "stream", "label", "mode", "group",
     "participantstreamassoc", "participantsessionassoc", "extensiondata", "callingParty",
     "fromhdr", "sipSessionID", "start-time"]
)  # fmt: skip
ATTRS = st.sampled_from(
    ["", ' participant_id="p1"', ' id="s1"', ' stream_id="s1"', ' session_id="c1"',
     ' session="c1"', ' aor="sip:1@x"', ' aor=""', ' xml:lang="ja"']
)  # fmt: skip
TEXTS = st.sampled_from(["", "p1", "s1", "complete", "partial", "true", "1", "市民課", " "])


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    name, attrs, text = draw(NAMES), draw(ATTRS), draw(TEXTS)
    children = "" if depth > 2 else "".join(draw(st.lists(elements(depth + 1), max_size=3)))
    return f"<{name}{attrs}>{text}{children}</{name}>"


@settings(max_examples=200, deadline=None)
@given(body=st.lists(elements(), max_size=4), namespace=st.sampled_from(["", RECORDING_1]))
def test_fuzz_structured_metadata_and_merge(body: list[str], namespace: str) -> None:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    data = f"<recording{xmlns}>{''.join(body)}</recording>".encode()
    try:
        meta = RecordingMetadata.parse(data)
    except SiprecParseError:
        return
    merged = meta.merge(meta)
    for stream in merged.streams:
        merged.senders(stream.stream_id)
    for participant in merged.participants:
        aor_user(participant.aor)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=500), ctype=st.sampled_from(
    ["multipart/mixed;boundary=b", "application/rs-metadata+xml", "application/sdp", "text/x"]
))  # fmt: skip
def test_fuzz_request_bodies_never_raise(data: bytes, ctype: str) -> None:
    try:
        msg = SipMessage.parse(
            b"INVITE sip:a@b SIP/2.0\r\nContent-Type: " + ctype.encode() + b"\r\n"
            b"Content-Length: 10\r\n\r\n" + data
        )
    except SipParseError:
        return
    is_siprec(msg)
    RecordingBody.of(msg)
