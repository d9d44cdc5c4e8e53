"""G.711 µ-law and A-law by numpy lookup tables built from the ITU-T G.711 formulas.

The tables reproduce the classic Sun/CCITT reference code that `audioop` used, bit for bit
(`ulaw2lin`/`alaw2lin` and `lin2ulaw`/`lin2alaw` on 16-bit samples), without `audioop`,
which Python 3.13 removed. Decoding is one fancy-indexing operation per payload.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

_SIGN_BIT: Final = 0x80
_QUANT_MASK: Final = 0x0F
_SEG_SHIFT: Final = 4
_SEG_MASK: Final = 0x70
_ULAW_BIAS: Final = 0x84  # G.711 µ-law: magnitudes are biased by 33 (x4 in 16-bit scale)
_ULAW_CLIP: Final = 8159  # largest 14-bit magnitude µ-law represents


def _ulaw_expand() -> NDArray[np.int16]:
    # G.711 table 2: µ-law code -> linear; the code is transmitted with all bits inverted
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((code & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (code & _SEG_MASK) >> _SEG_SHIFT
    return np.where(code & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _alaw_expand() -> NDArray[np.int16]:
    # G.711 table 1: A-law code -> linear; even bits are inverted on the line (XOR 0x55)
    code = np.arange(256, dtype=np.int32) ^ 0x55
    t = (code & _QUANT_MASK) << 4
    seg = (code & _SEG_MASK) >> _SEG_SHIFT
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(code & _SIGN_BIT, t, -t).astype(np.int16)


def _segment(magnitude: NDArray[np.int32], ends: tuple[int, ...]) -> NDArray[np.int32]:
    # index of the first segment end >= magnitude (8 when beyond the last one)
    return np.searchsorted(np.array(ends, dtype=np.int32), magnitude, side="left").astype(np.int32)


def _ulaw_compress() -> NDArray[np.uint8]:
    # 16-bit sample (indexed as uint16) -> µ-law, from its top 14 bits
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    val = pcm >> 2
    mask = np.where(val < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(val), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = (seg << 4) | ((mag >> (seg + 1)) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _alaw_compress() -> NDArray[np.uint8]:
    # 16-bit sample (indexed as uint16) -> A-law, from its top 13 bits
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    val = pcm >> 3
    mask = np.where(val >= 0, 0xD5, 0x55)
    mag = np.where(val >= 0, val, -val - 1)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    quant = np.where(seg < 2, mag >> 1, mag >> np.minimum(seg, 15)) & _QUANT_MASK
    code = np.where(seg >= 8, 0x7F, (seg << _SEG_SHIFT) | quant)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


#: µ-law code -> 16-bit linear sample
ULAW_TO_LINEAR: Final[NDArray[np.int16]] = _ulaw_expand()
#: A-law code -> 16-bit linear sample
ALAW_TO_LINEAR: Final[NDArray[np.int16]] = _alaw_expand()
#: 16-bit linear sample (as uint16) -> µ-law code
LINEAR_TO_ULAW: Final[NDArray[np.uint8]] = _ulaw_compress()
#: 16-bit linear sample (as uint16) -> A-law code
LINEAR_TO_ALAW: Final[NDArray[np.uint8]] = _alaw_compress()


def ulaw_decode(payload: bytes) -> NDArray[np.int16]:
    """µ-law bytes -> int16 samples (same values as ``audioop.ulaw2lin(payload, 2)``)."""
    return ULAW_TO_LINEAR[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes) -> NDArray[np.int16]:
    """A-law bytes -> int16 samples (same values as ``audioop.alaw2lin(payload, 2)``)."""
    return ALAW_TO_LINEAR[np.frombuffer(payload, dtype=np.uint8)]


def ulaw_encode(pcm: NDArray[np.int16]) -> bytes:
    """int16 samples -> µ-law bytes (same as ``audioop.lin2ulaw(pcm, 2)``)."""
    return LINEAR_TO_ULAW[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_encode(pcm: NDArray[np.int16]) -> bytes:
    """int16 samples -> A-law bytes (same as ``audioop.lin2alaw(pcm, 2)``)."""
    return LINEAR_TO_ALAW[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()
