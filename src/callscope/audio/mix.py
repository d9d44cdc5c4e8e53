"""Two mono tracks -> one stereo array: caller left, callee right (the product's convention)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Stereo = NDArray[np.int16]  # shape (frames, 2), interleaved when flattened


def interleave(left: NDArray[np.int16], right: NDArray[np.int16]) -> Stereo:
    """Stack two int16 tracks into ``(frames, 2)``; the shorter one is padded with silence."""
    frames = max(len(left), len(right))
    stereo = np.zeros((frames, 2), dtype=np.int16)
    stereo[: len(left), 0] = left
    stereo[: len(right), 1] = right
    return stereo


def split(stereo: Stereo) -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    """The inverse of `interleave` (without the padding): ``(left, right)``."""
    return np.ascontiguousarray(stereo[:, 0]), np.ascontiguousarray(stereo[:, 1])
