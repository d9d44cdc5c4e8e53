"""Waveform peaks for the console's player: the loudest sample of each time bucket.

One unsigned byte per bucket and channel: ``ceil(max |sample| * 255 / 32768)``, so any
non-silent bucket shows at least 1 and full scale is 255. Linear scale; the player may
apply its own curve. Buckets are either fixed-length (`peaks_per_interval`, e.g. 10 ms for
a zoomable view) or a fixed number over the whole recording (`peaks_fixed_count`, for an
overview strip whose width does not depend on the call length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Peaks:
    """Per-channel peak bytes; bucket ``i`` covers samples
    ``[i * samples_per_bucket, (i + 1) * samples_per_bucket)`` (the last may be shorter)."""

    sample_rate: int
    samples_per_bucket: int
    channels: tuple[bytes, ...]

    def as_lists(self) -> list[list[int]]:
        """The peaks as JSON-friendly lists of ints 0..255, one list per channel."""
        return [list(channel) for channel in self.channels]


def _as_channels(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    # (frames,) mono or (frames, channels) interleaved -> (frames, channels)
    return pcm.reshape(-1, 1) if pcm.ndim == 1 else pcm


def _bucket_peaks(pcm: NDArray[np.int16], per_bucket: int) -> tuple[bytes, ...]:
    # per channel, contiguous int16 max and min over whole buckets, then the partial tail
    # (several times faster than widening the interleaved recording to int32)
    channels = np.ascontiguousarray(_as_channels(pcm).T)
    full, rest = divmod(channels.shape[1], per_bucket)
    top = np.zeros((channels.shape[0], full + (rest > 0)), dtype=np.int32)
    if full:
        body = channels[:, : full * per_bucket].reshape(channels.shape[0], full, per_bucket)
        top[:, :full] = np.maximum(body.max(axis=2), -body.min(axis=2).astype(np.int32))
    if rest:
        tail = channels[:, full * per_bucket :]
        top[:, full] = np.maximum(tail.max(axis=1), -tail.min(axis=1).astype(np.int32))
    scaled = (top * 255 + 32767) // 32768  # ceil(top * 255 / 32768); 32768 -> 255
    return tuple(row.astype(np.uint8).tobytes() for row in scaled)


def peaks_per_interval(pcm: NDArray[np.int16], sample_rate: int, bucket_ms: int = 10) -> Peaks:
    """One peak per ``bucket_ms`` of audio (default 10 ms) per channel."""
    per_bucket = max(1, sample_rate * bucket_ms // 1000)
    return Peaks(sample_rate, per_bucket, _bucket_peaks(pcm, per_bucket))


def peaks_fixed_count(pcm: NDArray[np.int16], sample_rate: int, buckets: int = 1000) -> Peaks:
    """About ``buckets`` peaks per channel over the whole recording (fewer when it is short:
    a bucket holds at least one sample)."""
    frames = len(_as_channels(pcm))
    per_bucket = max(1, -(-frames // max(1, buckets)))
    return Peaks(sample_rate, per_bucket, _bucket_peaks(pcm, per_bucket))
