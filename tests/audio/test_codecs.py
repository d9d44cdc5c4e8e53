"""The codec registry, and G.722 / G.729 / Opus decoding of real captures through the timeline."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from callscope.audio.codecs import (
    DECODERS,
    G722Decoder,
    G729Decoder,
    OpusDecoder,
    PayloadKind,
    PcmaDecoder,
    PcmuDecoder,
    UnsupportedCodec,
    lookup_decoder,
    opus_bandwidth,
)
from callscope.audio.errors import AudioDecodeError
from callscope.audio.packets import MediaPacket
from callscope.audio.timeline import render_call, render_direction

from ._pcap_walk import rtp_by_ssrc, rtp_packet, udp_datagrams


@pytest.mark.parametrize(
    ("name", "decoder"),
    [
        ("PCMU", PcmuDecoder),
        ("pcma", PcmaDecoder),
        ("G722", G722Decoder),
        ("g729", G729Decoder),
        ("G729A", G729Decoder),
        ("G.729", G729Decoder),
        ("opus", OpusDecoder),
        ("OPUS", OpusDecoder),
    ],
)
def test_lookup_is_case_insensitive(name: str, decoder: type) -> None:
    assert lookup_decoder(name) is decoder


def test_events_and_comfort_noise_are_registered_as_non_audio() -> None:
    event, noise = lookup_decoder("telephone-event"), lookup_decoder("CN")
    assert not isinstance(event, UnsupportedCodec) and event.kind is PayloadKind.EVENT
    assert not isinstance(noise, UnsupportedCodec) and noise.kind is PayloadKind.COMFORT_NOISE


def test_unknown_encoding_is_an_unsupported_codec_result() -> None:
    result = lookup_decoder("G726-32")
    assert result == UnsupportedCodec(("G726-32",))
    assert isinstance(result, UnsupportedCodec) and result.status == "unsupported_codec"


def test_registry_keys_are_upper_case() -> None:
    assert all(key == key.upper() for key in DECODERS)


def test_rtp_clock_knowledge() -> None:
    # RFC 3551 4.5.2: G.722 ticks at 8000 for 16 kHz audio; RFC 7587: Opus ticks at 48000
    assert (G722Decoder.rtp_clock_rate, G722Decoder.samples_per_rtp_tick()) == (8000, 2)
    assert (OpusDecoder.rtp_clock_rate, OpusDecoder.samples_per_rtp_tick()) == (48000, 1)
    assert PcmuDecoder.samples_per_rtp_tick() == G729Decoder.samples_per_rtp_tick() == 1


@pytest.mark.parametrize(
    ("toc", "bandwidth"),
    [(0 << 3, 4000), (4 << 3, 6000), (8 << 3, 8000), (12 << 3, 12000), (15 << 3, 20000),
     (16 << 3, 4000), (20 << 3, 8000), (31 << 3 | 3, 20000)],
)  # fmt: skip
def test_opus_toc_bandwidth(toc: int, bandwidth: int) -> None:
    # RFC 6716 3.1 table 2
    assert opus_bandwidth(bytes([toc, 0])) == bandwidth


def test_opus_wideband_decision_follows_the_toc() -> None:
    assert not OpusDecoder.is_wideband(bytes([16 << 3]))  # CELT NB
    assert OpusDecoder.is_wideband(bytes([20 << 3]))  # CELT WB
    assert G722Decoder.is_wideband(b"\x00") and not PcmuDecoder.is_wideband(b"\x00")


def test_g729_annex_b_sid_frame_is_silence() -> None:
    decoder = G729Decoder()
    speech = decoder.decode(bytes(20))
    with_sid = decoder.decode(bytes(10) + b"\x12\x34")
    assert len(speech) == 160 and len(with_sid) == 160
    assert not with_sid[80:].any()


def test_g729_odd_payload_size_is_a_decode_error() -> None:
    with pytest.raises(AudioDecodeError, match=r"^payload could not be decoded$"):
        G729Decoder().decode(bytes(7))


def _pyav_decode(codec: str, rate: int, payloads: list[bytes]) -> np.ndarray:
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    out = [f.to_ndarray().reshape(-1) for p in payloads for f in ctx.decode(av.Packet(p))]
    return np.concatenate(out)


def _placed_exactly(track: np.ndarray, direct: np.ndarray, first_at: int, rate: int) -> None:
    # the direct decode must appear verbatim, starting within 20 ms of the first arrival
    hits = [
        k
        for k in range(max(0, first_at - rate // 50), first_at + rate // 50)
        if np.array_equal(track[k : k + len(direct)], direct)
    ]
    assert hits, "timeline output is not the decoder output"
    assert len(track) == hits[0] + len(direct)


CAPTURES = [
    # file, ssrc, codec for PyAV, decoded rate, ptime in RTP ticks
    ("pcap/sip-rtp-g722.pcap", 0x043DAABA, "g722", 16000),
    ("pcap/sip-rtp-g729a.pcap", 0x044559A1, "g729", 8000),
    ("pcap/rtp-only/10a_g722.pcap", 0x45495EB7, "g722", 16000),
    ("pcap/rtp-only/12a_g729.pcap", 0x4ADC1838, "g729", 8000),
]


@pytest.mark.parametrize(("name", "ssrc", "codec", "rate"), CAPTURES)
def test_capture_decodes_to_media_duration_and_matches_pyav(
    testdata: Path, name: str, ssrc: int, codec: str, rate: int
) -> None:
    packets = rtp_by_ssrc(testdata / name, ssrc)
    assert packets[0].payload_type in (9, 18)
    start = packets[0].arrival_ns - 1_000_000_000  # the first packet lands at 1 s
    audio = render_direction(packets, {}, start, rate)  # static payload types 9 / 18
    assert audio.stats.decoded == len(packets) and audio.stats.segments == 1
    assert audio.stats.lost == 0
    ordered = sorted(packets, key=lambda p: p.seq)
    direct = _pyav_decode(codec, rate, [p.payload for p in ordered])
    # media duration from the RTP timestamps: 8000 Hz clock for both codecs
    tick = rate // 8000
    last_len = len(_pyav_decode(codec, rate, [ordered[-1].payload]))
    assert len(direct) == (ordered[-1].timestamp - ordered[0].timestamp) * tick + last_len
    _placed_exactly(audio.pcm, direct, rate, rate)


def test_g722_call_from_sip_capture_has_the_talk_duration(testdata: Path) -> None:
    truth = json.loads((testdata / "pcap/ground_truth/sip-rtp-g722.pcap.calls.json").read_text())
    call, stream = truth["calls"][0], truth["rtp_streams"][0]
    packets = rtp_by_ssrc(testdata / "pcap/sip-rtp-g722.pcap", int(stream["ssrc"], 16))
    result = render_call([], packets, {9: ("G722", 8000, 1)}, round(call["t_invite"] * 1e9))
    assert not isinstance(result, UnsupportedCodec)
    assert result.sample_rate == 16000
    # audio runs from the first packet to the last packet + one 20 ms packet
    end_seconds = stream["t_last"] + 0.02 - call["t_invite"]
    assert abs(result.frames / 16000 - end_seconds) < 0.03
    assert not result.caller.any()  # one-way audio: the caller track stays silent


def _by_source(path: Path) -> dict[str, list[MediaPacket]]:
    streams: dict[str, list[MediaPacket]] = {}
    for dgram in udp_datagrams(path):
        pkt = rtp_packet(dgram.at_ns, dgram.payload)
        # RTCP (RFC 3550 6.4: packet types 200-204) parses as RTP with payload type 72-76
        if pkt is not None and not 72 <= pkt.payload_type <= 76:
            streams.setdefault(dgram.src, []).append(pkt)
    return streams


def test_opus_call_decodes_at_48k_clock_into_a_wideband_recording(testdata: Path) -> None:
    streams = _by_source(testdata / "pcap/invite-opus-bye.pcap")
    caller, callee = streams["127.0.0.1:5094"], streams["127.0.0.1:5084"]
    start = min(caller[0].arrival_ns, callee[0].arrival_ns)
    result = render_call(caller, callee, {96: ("opus", 48000, 2)}, start)
    assert not isinstance(result, UnsupportedCodec)
    assert result.sample_rate == 16000  # TOC says fullband CELT
    ticks = max(p.timestamp for p in caller) - min(p.timestamp for p in caller) + 960
    span = result.frames / 16000
    assert abs(span - ticks / 48000) < 0.05  # not 6x too long or short
    assert result.caller_stats.decoded == len(caller) == 152


def test_codec_change_mid_call_keeps_both_parts_at_16k(testdata: Path) -> None:
    # PCMU first, then a re-INVITE to G.722 with a new SSRC: one 16 kHz timeline
    truth = json.loads(
        (testdata / "pcap/ground_truth/codec-negotiation.pcap.calls.json").read_text()
    )
    streams = _by_source(testdata / "pcap/codec-negotiation.pcap")
    caller, callee = streams["127.0.0.1:5094"], streams["127.0.0.1:5084"]
    result = render_call(caller, callee, {}, round(truth["calls"][0]["t_invite"] * 1e9))
    assert not isinstance(result, UnsupportedCodec)
    assert result.sample_rate == 16000
    assert result.caller_stats.segments == 2 and result.caller_stats.decoded == 302
    assert abs(result.frames / 16000 - truth["calls"][0]["talk_s"]) < 0.5


def test_g726_capture_is_unsupported(testdata: Path) -> None:
    packets = rtp_by_ssrc(testdata / "pcap/rtp-only/11a_g721.pcap", 0x50BA4CDA)
    assert render_call(packets, [], {}, packets[0].arrival_ns) == UnsupportedCodec(("pt2",))
    named = render_call(packets, [], {2: ("G726-32", 8000, 1)}, packets[0].arrival_ns)
    assert named == UnsupportedCodec(("G726-32",))


def test_stereo_opus_packets_are_downmixed_to_mono() -> None:
    # RFC 7587: opus/48000/2 in SDP; a party may send stereo, the recording keeps one track
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "stereo", "s16", 64000
    enc.open()
    t = np.arange(960 * 10) / 48000
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    payloads = []
    for i in range(10):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo[i * 960 : (i + 1) * 960]).reshape(1, -1),
            format="s16",
            layout="stereo",
        )
        frame.sample_rate, frame.pts = 48000, i * 960
        payloads += [bytes(p) for p in enc.encode(frame)]
    assert payloads[0][0] & 0x04  # RFC 6716 3.1: the TOC's stereo flag
    decoder = OpusDecoder()
    mono = np.concatenate([decoder.decode(p) for p in payloads])
    assert len(mono) == 960 * len(payloads)
    assert 3000 < np.abs(mono[2000:]).max() < 5000  # half of the left channel


def test_malformed_opus_packets_are_counted_not_fatal(testdata: Path) -> None:
    # the wiki's hybrid-mode sample: the two code-3 packets do not split into whole frames
    packets = [
        p
        for d in udp_datagrams(testdata / "pcap/sip-rtp-opus-hybrid.pcap")
        if (p := rtp_packet(d.at_ns, d.payload)) is not None and p.payload_type == 99
    ]
    audio = render_direction(packets, {99: ("opus", 48000, 2)}, packets[0].arrival_ns, 16000)
    assert (audio.stats.decoded, audio.stats.decode_errors) == (3, 2)
