"""Timeline alignment on synthetic streams: reordering, wrap, loss, gaps, SSRC churn, overlap."""

from __future__ import annotations

import random

import numpy as np
import pytest

from callscope.audio import g711
from callscope.audio.codecs import UnsupportedCodec
from callscope.audio.packets import MediaPacket
from callscope.audio.timeline import (
    SEGMENT_TOLERANCE_NS,
    CallAudio,
    recording_rate,
    render_call,
    render_direction,
    resample,
)

MS = 1_000_000
START = 1_700_000_000 * 1_000_000_000  # INVITE time
PCMU = {0: ("PCMU", 8000, 1)}


def tone(level: int, samples: int = 160) -> bytes:
    """A µ-law payload whose samples all decode to (about) ``level``."""
    return g711.ulaw_encode(np.full(samples, level, dtype=np.int16))


def level_of(value: int) -> int:
    return int(g711.ulaw_decode(tone(value, 1))[0])


def stream(
    count: int,
    *,
    first_ms: int = 1000,
    ssrc: int = 0x1234,
    seq0: int = 100,
    ts0: int = 5000,
    level: int = 1000,
    pt: int = 0,
    step_ms: int = 20,
) -> list[MediaPacket]:
    """``count`` 20 ms PCMU packets, the first arriving ``first_ms`` after the INVITE."""
    return [
        MediaPacket(
            START + (first_ms + i * step_ms) * MS,
            ssrc,
            (seq0 + i) & 0xFFFF,
            (ts0 + i * 160) & 0xFFFFFFFF,
            pt,
            i == 0,
            tone(level),
        )
        for i in range(count)
    ]


def render(packets: list[MediaPacket], **kw: object) -> np.ndarray:
    return render_direction(packets, PCMU, START, 8000, **kw).pcm  # type: ignore[arg-type]


def test_first_packet_is_placed_at_its_arrival() -> None:
    pcm = render(stream(50, first_ms=1500))
    assert not pcm[:12000].any()
    assert np.all(pcm[12000 : 12000 + 8000] == level_of(1000))
    assert len(pcm) == 12000 + 50 * 160


def test_reordered_packets_give_the_same_audio() -> None:
    packets = stream(100)
    packets = [p._replace(payload=tone(100 * (i % 7 + 1))) for i, p in enumerate(packets)]
    shuffled = packets[:]
    random.Random(7).shuffle(shuffled)
    # reordered packets keep their (jittered) arrival times, within 60 ms
    shuffled = [p._replace(arrival_ns=p.arrival_ns + random.Random(p.seq).randint(0, 60) * MS)
                for p in shuffled]  # fmt: skip
    jittered, steady = render(shuffled), render(packets)
    # same audio, shifted by no more than the least delay among the first packets
    assert np.array_equal(np.trim_zeros(jittered, "f"), np.trim_zeros(steady, "f"))
    assert 0 <= len(jittered) - len(steady) <= 60 * 8


def test_sequence_and_timestamp_wrap_do_not_break_the_segment() -> None:
    packets = stream(100, seq0=65500, ts0=0xFFFFFFFF - 160 * 40)
    audio = render_direction(packets, PCMU, START, 8000)
    assert audio.stats.segments == 1 and audio.stats.lost == 0
    assert np.all(audio.pcm[8000:] == level_of(1000)) and len(audio.pcm) == 8000 + 16000


def test_duplicates_are_dropped_and_counted() -> None:
    packets = stream(20)
    audio = render_direction(packets + packets[5:8], PCMU, START, 8000)
    assert audio.stats.duplicates == 3
    assert np.array_equal(audio.pcm, render(packets))


def test_lost_packet_is_silence() -> None:
    packets = stream(20)
    del packets[10]
    audio = render_direction(packets, PCMU, START, 8000)
    assert audio.stats.lost == 1
    gap = slice(8000 + 10 * 160, 8000 + 11 * 160)
    assert not audio.pcm[gap].any()
    assert np.all(audio.pcm[8000 + 9 * 160 : gap.start] == level_of(1000))


def test_silence_suppression_gap_stays_in_one_segment() -> None:
    talk = stream(10)
    # 3 s pause: timestamps and arrival both advance by 3 s (RFC 3551 4.1 marker on restart)
    later = stream(10, first_ms=1000 + 200 + 3000, seq0=110, ts0=5000 + 1600 + 24000)
    audio = render_direction(talk + later, PCMU, START, 8000)
    assert audio.stats.segments == 1 and audio.stats.lost == 0
    assert not audio.pcm[8000 + 1600 : 8000 + 1600 + 24000].any()
    assert np.all(audio.pcm[8000 + 1600 + 24000 :] == level_of(1000))


def test_new_ssrc_starts_a_segment_anchored_at_its_arrival() -> None:
    first = stream(25, level=1000)
    second = stream(25, first_ms=4000, ssrc=0x9999, seq0=7, ts0=123456789, level=3000)
    audio = render_direction(first + second, PCMU, START, 8000)
    assert audio.stats.segments == 2
    assert np.all(audio.pcm[32000 : 32000 + 4000] == level_of(3000))
    assert not audio.pcm[8000 + 4000 : 32000].any()


def test_timestamp_jump_starts_a_segment_placed_by_arrival() -> None:
    first = stream(25)
    # same SSRC and sequence, but the timestamp jumps by ~52 minutes (e.g. after re-INVITE)
    jumped = stream(25, first_ms=1500, seq0=125, ts0=5000 + 25 * 160 + 25_000_000, level=2000)
    audio = render_direction(first + jumped, PCMU, START, 8000)
    assert audio.stats.segments == 2
    assert np.all(audio.pcm[12000 : 12000 + 4000] == level_of(2000))
    assert len(audio.pcm) == 16000


def test_hold_with_frozen_timestamps_is_placed_by_arrival() -> None:
    # the sender stops for 20 s and resumes where its timestamps left off
    before = stream(25)
    after = stream(25, first_ms=1500 + 20_000, seq0=125, ts0=5000 + 25 * 160, level=2000)
    audio = render_direction(before + after, PCMU, START, 8000)
    assert audio.stats.segments == 2
    resume = (1500 + 20_000) * 8
    assert not audio.pcm[12000:resume].any()
    assert np.all(audio.pcm[resume : resume + 4000] == level_of(2000))


def test_jitter_within_tolerance_does_not_split() -> None:
    packets = stream(200)
    rng = random.Random(3)
    jittered = [p._replace(arrival_ns=p.arrival_ns + rng.randint(0, 80) * MS) for p in packets]
    audio = render_direction(jittered, PCMU, START, 8000)
    assert audio.stats.segments == 1
    assert SEGMENT_TOLERANCE_NS > 80 * MS


def test_overlapping_segments_never_add_up() -> None:
    a = stream(100, level=1000)  # 1.0 .. 3.0 s
    b = stream(100, first_ms=2000, ssrc=0x5555, level=2000)  # 2.0 .. 4.0 s
    pcm = render(a + b)
    values = set(np.unique(pcm[8000:]).tolist())
    assert values == {level_of(1000), level_of(2000)}
    assert np.all(pcm[16000:24000] == level_of(1000))  # the earlier segment keeps its samples
    assert np.all(pcm[24000:32000] == level_of(2000))


def test_events_and_comfort_noise_are_excluded_and_silent() -> None:
    packets = stream(20)
    event = packets[5]._replace(payload_type=101, payload=b"\x01\x0a\x00\xa0")
    noise = packets[6]._replace(payload_type=13, payload=b"\x40")
    mixed = [*packets[:5], event, noise, *packets[7:]]
    pt_map = {**PCMU, 101: ("telephone-event", 8000, 1)}
    audio = render_direction(mixed, pt_map, START, 8000)
    assert audio.stats.not_audio == 2 and audio.stats.segments == 1
    assert not audio.pcm[8000 + 5 * 160 : 8000 + 7 * 160].any()


def test_undecodable_payload_is_counted_and_silent() -> None:
    packets = [p._replace(payload_type=18, payload=bytes(20)) for p in stream(10)]
    packets[4] = packets[4]._replace(payload=bytes(7))
    audio = render_direction(packets, {}, START, 8000)
    assert audio.stats.decode_errors == 1 and audio.stats.decoded == 9
    assert not audio.pcm[8000 + 4 * 160 : 8000 + 5 * 160].any()


def test_only_unsupported_payloads_give_unsupported_codec() -> None:
    gsm = [p._replace(payload_type=3) for p in stream(10)]
    assert render_call(gsm, [], {}, START) == UnsupportedCodec(("GSM",))


def test_unsupported_payloads_beside_audio_are_counted() -> None:
    gsm = [p._replace(payload_type=3, ssrc=77) for p in stream(10, first_ms=3000)]
    result = render_call(stream(10), gsm, {}, START)
    assert isinstance(result, CallAudio)
    assert result.callee_stats.unsupported == 10
    assert result.callee_stats.unsupported_encodings == ("GSM",)
    assert not result.callee.any()


def test_call_without_media_has_no_audio() -> None:
    result = render_call([], [], PCMU, START)
    assert isinstance(result, CallAudio) and not result.has_audio and result.frames == 0


def test_both_tracks_have_the_same_length() -> None:
    result = render_call(stream(10), stream(50, ssrc=2, level=2000), PCMU, START)
    assert isinstance(result, CallAudio)
    assert len(result.caller) == len(result.callee) == 8000 + 50 * 160
    assert np.all(result.callee[8000:] == level_of(2000))


def test_directions_may_map_payload_types_differently() -> None:
    callee = [p._replace(payload_type=96) for p in stream(10, ssrc=2)]
    result = render_call(
        stream(10), callee, PCMU, START, callee_payload_types={96: ("PCMU", 8000, 1)}
    )
    assert isinstance(result, CallAudio) and result.callee_stats.decoded == 10


def test_recording_rate_is_wideband_only_with_wideband_audio() -> None:
    g722 = [p._replace(payload_type=9) for p in stream(3)]
    opus_nb = [p._replace(payload_type=111, payload=bytes([16 << 3, 0])) for p in stream(3)]
    opus_wb = [p._replace(payload_type=111, payload=bytes([20 << 3, 0])) for p in stream(3)]
    opus = {111: ("opus", 48000, 2)}
    assert recording_rate([(stream(3), PCMU)]) == 8000
    assert recording_rate([(stream(3), PCMU), (g722, {})]) == 16000
    assert recording_rate([(opus_nb, opus)]) == 8000
    assert recording_rate([(opus_wb, opus)]) == 16000


def test_narrowband_audio_is_resampled_into_a_wideband_call() -> None:
    g722 = [p._replace(payload_type=9, payload=bytes(160), ssrc=9) for p in stream(50)]
    result = render_call(stream(50), g722, {}, START)
    assert isinstance(result, CallAudio) and result.sample_rate == 16000
    assert result.frames == 16000 + 50 * 320
    # steady part of the resampled constant keeps its level
    assert abs(int(np.median(result.caller[20000:30000])) - level_of(1000)) <= 2


def test_audio_before_the_invite_is_clipped() -> None:
    audio = render_direction(stream(50, first_ms=-500), PCMU, START, 8000)
    assert audio.stats.clipped
    assert len(audio.pcm) == 50 * 160 - 4000


def test_audio_beyond_the_maximum_duration_is_clipped() -> None:
    audio = render_direction(stream(100), PCMU, START, 8000, max_duration_ns=2_000 * MS)
    assert audio.stats.clipped and len(audio.pcm) == 16000


def test_packets_far_outside_the_recording_window_are_not_decoded() -> None:
    # a stray packet hours after the call must not make the worker allocate hours of audio
    stray = stream(1, first_ms=10 * 3600 * 1000, ssrc=99)
    audio = render_direction(stream(10) + stray, PCMU, START, 8000, max_duration_ns=60_000 * MS)
    assert audio.stats.clipped and audio.stats.decoded == 10
    assert len(audio.pcm) == 8000 + 1600


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (48000, 8000)])
def test_resample_keeps_length_and_timing(src: int, dst: int) -> None:
    pcm = np.zeros(src, dtype=np.int16)
    pcm[src // 2] = 20000
    out = resample(pcm, src, dst)
    assert len(out) == dst
    assert abs(int(np.argmax(np.abs(out))) - dst // 2) <= 1


def test_plain_tuples_are_accepted() -> None:
    packets = [tuple(p) for p in stream(10)]
    assert np.array_equal(render_direction(packets, PCMU, START, 8000).pcm, render(stream(10)))  # type: ignore[arg-type]
