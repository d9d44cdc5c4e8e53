"""Stereo Ogg/Opus encoding: exact length, timing, channel separation, settings, errors."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from callscope.audio.errors import AudioEncodeError, AudioParseError
from callscope.audio.opus import OpusSettings, decode_ogg_opus, encode_stereo


def clicks(rate: int, seconds: int, at: int) -> np.ndarray:
    pcm = np.zeros(rate * seconds, dtype=np.int16)
    pcm[at] = 30000
    return pcm


def opus_head(data: bytes) -> tuple[int, int, int, int, int]:
    # RFC 7845 5.1: version, channels, pre-skip, input rate, gain, mapping family
    i = data.index(b"OpusHead") + 8
    version, channels, _pre_skip, rate, _gain, family = struct.unpack_from("<BBHIhB", data, i)
    streams, coupled = (data[i + 11], data[i + 12]) if family else (1, channels - 1)
    return version, channels, rate, family, streams * 10 + coupled


@pytest.mark.parametrize("rate", [8000, 16000])
def test_round_trip_keeps_length_and_timing(rate: int) -> None:
    left, right = clicks(rate, 3, rate), clicks(rate, 3, 2 * rate + 17)
    encoded = encode_stereo(left, right, rate)
    decoded = decode_ogg_opus(encoded.data)
    assert decoded.sample_rate == rate
    assert decoded.pcm.shape == (3 * rate, 2) and encoded.frames == 3 * rate
    assert abs(int(np.argmax(np.abs(decoded.pcm[:, 0]))) - rate) <= 2
    assert abs(int(np.argmax(np.abs(decoded.pcm[:, 1]))) - (2 * rate + 17)) <= 2


def test_decode_at_48k_is_six_times_longer() -> None:
    encoded = encode_stereo(clicks(8000, 1, 4000), clicks(8000, 1, 0), 8000)
    assert decode_ogg_opus(encoded.data, 48000).pcm.shape == (48000, 2)


def test_channels_are_independent_mono_streams() -> None:
    encoded = encode_stereo(clicks(8000, 1, 100), clicks(8000, 1, 100), 8000)
    # mapping family 255, two streams, none coupled
    assert opus_head(encoded.data) == (1, 2, 8000, 255, 20)
    coupled = encode_stereo(
        clicks(8000, 1, 100), clicks(8000, 1, 100), 8000, OpusSettings(independent_channels=False)
    )
    assert opus_head(coupled.data)[3] == 0


def test_one_voice_does_not_leak_into_the_other_channel() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(8000 * 4) / 8000
    voice = (6000 * np.sin(2 * np.pi * 300 * t) * (rng.random(len(t)) * 0.2 + 0.8)).astype(np.int16)
    decoded = decode_ogg_opus(encode_stereo(voice, np.zeros_like(voice), 8000).data).pcm
    rms = np.sqrt(np.mean(decoded.astype(np.float64) ** 2, axis=0))
    assert rms[0] > 3000 and rms[1] < rms[0] / 1000


def test_bitrate_and_complexity_follow_the_recording_rate() -> None:
    settings = OpusSettings()
    assert settings.kbps_per_channel(8000) == 18 and settings.kbps_per_channel(16000) == 16
    assert settings.complexity_for(8000) == 1 and settings.complexity_for(16000) == 10
    nb = encode_stereo(clicks(8000, 1, 1), clicks(8000, 1, 1), 8000)
    wb = encode_stereo(clicks(16000, 1, 1), clicks(16000, 1, 1), 16000)
    assert (nb.kbps_per_channel, wb.kbps_per_channel) == (18, 16)


@pytest.mark.parametrize("frame_ms", [20, 40, 60])
def test_packets_have_the_frame_duration(frame_ms: int) -> None:
    encoded = encode_stereo(
        clicks(8000, 2, 5), clicks(8000, 2, 5), 8000, OpusSettings(frame_ms=frame_ms)
    )
    with av.open(io.BytesIO(encoded.data), "r", format="ogg") as container:
        stream = container.streams.audio[0]
        durations = [p.duration for p in container.demux(stream) if p.size]
    # Ogg/Opus granule positions run at 48 kHz; the last packet is trimmed to the audio's end
    assert set(durations[:-1]) == {48 * frame_ms} and durations[-1] <= 48 * frame_ms


def test_frame_duration_opus_cannot_take_is_refused() -> None:
    with pytest.raises(AudioEncodeError, match=r"^Opus frame duration must be 20, 40 or 60 ms$"):
        encode_stereo(clicks(8000, 1, 0), clicks(8000, 1, 0), 8000, OpusSettings(frame_ms=30))


def test_higher_bitrate_setting_gives_a_bigger_file() -> None:
    rng = np.random.default_rng(2)
    noise = (rng.standard_normal(8000 * 5) * 3000).astype(np.int16)
    small = encode_stereo(noise, noise, 8000, OpusSettings(narrowband_kbps=8))
    large = encode_stereo(noise, noise, 8000, OpusSettings(narrowband_kbps=32))
    assert large.size > 2 * small.size


def test_unequal_tracks_are_padded() -> None:
    encoded = encode_stereo(clicks(8000, 2, 5), clicks(8000, 1, 5), 8000)
    assert encoded.frames == 16000 and decode_ogg_opus(encoded.data).pcm.shape == (16000, 2)


def test_empty_audio_is_refused() -> None:
    empty = np.zeros(0, dtype=np.int16)
    with pytest.raises(AudioEncodeError, match=r"^no audio to encode$"):
        encode_stereo(empty, empty, 8000)


def test_rate_opus_cannot_take_is_refused() -> None:
    with pytest.raises(AudioEncodeError, match=r"^sample rate not supported by Opus$"):
        encode_stereo(clicks(11025, 1, 0), clicks(11025, 1, 0), 11025)


@pytest.mark.parametrize("data", [b"", b"OggS", b"not an ogg file at all" * 10])
def test_garbage_is_not_decodable(data: bytes) -> None:
    with pytest.raises(AudioParseError, match=r"^not a decodable Ogg/Opus file$"):
        decode_ogg_opus(data)
