"""Ladder labels and SDP details made once per distinct value equal making them each time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.assembly.call import _audio_detail, _response_label, _sdp_detail
from callscope.protocol.errors import SdpParseError
from callscope.protocol.sdp import SessionDescription

LINES = st.sampled_from(
    [
        "m=audio 4000 RTP/AVP 0 8 101", "m=audio 4002 RTP/AVP 8 0", "m=video 0 RTP/AVP 34",
        "m=audio 4000 RTP/SAVP 96 9", "m=audio 5000 udp/bfcp *",
        "a=rtpmap:101 telephone-event/8000", "a=rtpmap:96 opus/48000/2", "a=rtpmap:8 G729/8000",
        "a=rtpmap:13 CN/8000", "a=sendonly",
        "a=inactive", "a=recvonly", "a=sendrecv", "c=IN IP4 0.0.0.0", "c=IN IP4 192.0.2.1",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINES, min_size=1, max_size=8))
def test_sdp_detail_is_the_detail_made_afresh(lines: list[str]) -> None:
    text = "\r\n".join(["v=0", "c=IN IP4 192.0.2.9", *lines])
    try:
        sdp = SessionDescription.parse(text.encode())
    except SdpParseError:
        return
    audio = [m for m in sdp.media if m.media == "audio"]
    expected = _audio_detail(audio[0]) if audio else "SDP"
    assert _sdp_detail(sdp) == expected
    assert _sdp_detail(SessionDescription.parse(text.encode())) == expected  # from the table


@given(
    code=st.none() | st.integers(min_value=100, max_value=699),
    reason=st.none() | st.text(max_size=300),
)
def test_response_label_is_code_and_reason(code: int | None, reason: str | None) -> None:
    expected = f"{code} {reason or ''}".rstrip()
    assert _response_label(code, reason) == expected
    assert _response_label(code, reason) == expected
