"""Waveform peaks for the player."""

from __future__ import annotations

import numpy as np

from callscope.audio.mix import interleave, split
from callscope.audio.peaks import peaks_fixed_count, peaks_per_interval


def test_peaks_per_10ms_bucket_and_channel() -> None:
    left = np.zeros(8000, dtype=np.int16)
    left[85] = -32768  # bucket 1 (80..159) at full scale
    left[500] = 129  # bucket 6: ceil(129 * 255 / 32768) = 2
    right = np.full(8000, 1, dtype=np.int16)  # quietest non-silence still shows as 1
    peaks = peaks_per_interval(interleave(left, right), 8000)
    assert peaks.samples_per_bucket == 80 and len(peaks.channels) == 2
    assert len(peaks.channels[0]) == 100
    assert peaks.channels[0][:7] == bytes([0, 255, 0, 0, 0, 0, 2])
    assert set(peaks.channels[1]) == {1}


def test_last_partial_bucket_is_kept() -> None:
    pcm = np.zeros(1001, dtype=np.int16)
    pcm[-1] = 32767
    peaks = peaks_per_interval(pcm, 8000, bucket_ms=10)
    assert len(peaks.channels[0]) == 13 and peaks.channels[0][-1] == 255


def test_fixed_count_covers_the_whole_recording() -> None:
    pcm = np.zeros(16000 * 60, dtype=np.int16)
    pcm[-1] = 16384
    peaks = peaks_fixed_count(pcm, 16000, buckets=1000)
    assert len(peaks.channels[0]) == 1000 and peaks.channels[0][-1] == 128
    assert peaks.as_lists()[0][:3] == [0, 0, 0]


def test_fixed_count_of_a_short_recording() -> None:
    peaks = peaks_fixed_count(np.ones(10, dtype=np.int16), 8000, buckets=1000)
    assert peaks.samples_per_bucket == 1 and len(peaks.channels[0]) == 10


def test_empty_recording_has_no_peaks() -> None:
    empty = np.zeros((0, 2), dtype=np.int16)
    assert peaks_per_interval(empty, 8000).channels == (b"", b"")
    assert peaks_fixed_count(empty, 8000).channels == (b"", b"")


def test_split_inverts_interleave() -> None:
    left, right = np.arange(5, dtype=np.int16), -np.arange(5, dtype=np.int16)
    got_left, got_right = split(interleave(left, right))
    assert np.array_equal(got_left, left) and np.array_equal(got_right, right)
