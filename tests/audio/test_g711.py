"""G.711 lookup tables: bit-exact with the ITU reference code (as shipped in `audioop`)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from callscope.audio import g711

ALL_CODES = bytes(range(256))
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)

if sys.version_info < (3, 13):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
else:  # pragma: no cover - audioop is gone; the fixed-value tests below still run
    audioop = None

needs_audioop = pytest.mark.skipif(
    sys.version_info >= (3, 13), reason="audioop was removed in Python 3.13"
)


@needs_audioop
def test_ulaw_decode_matches_audioop_on_all_codes() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    assert np.array_equal(g711.ulaw_decode(ALL_CODES), expected)


@needs_audioop
def test_alaw_decode_matches_audioop_on_all_codes() -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype="<i2")
    assert np.array_equal(g711.alaw_decode(ALL_CODES), expected)


@needs_audioop
def test_ulaw_encode_matches_audioop_on_every_int16() -> None:
    assert g711.ulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.astype("<i2").tobytes(), 2)


@needs_audioop
def test_alaw_encode_matches_audioop_on_every_int16() -> None:
    assert g711.alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16.astype("<i2").tobytes(), 2)


def test_audioop_comparison_runs_on_python_311() -> None:
    # the bit-exactness tests above must not silently skip where audioop exists
    if sys.version_info < (3, 13):
        assert audioop is not None


def test_known_values_from_the_g711_tables() -> None:
    # G.711 extremes: µ-law full scale 32124, A-law 32256; smallest A-law step 8
    assert g711.ulaw_decode(bytes([0x00, 0x7F, 0x80, 0xFF])).tolist() == [-32124, 0, 32124, 0]
    assert g711.alaw_decode(bytes([0x2A, 0xAA, 0x55, 0xD5])).tolist() == [-32256, 32256, -8, 8]
    assert g711.ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert g711.alaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xd5\xaa\x2a"


def test_alaw_round_trips_every_code() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_ulaw_round_trips_every_code_but_negative_zero() -> None:
    # 0x7F is µ-law "negative zero": it decodes to 0, which encodes as 0xFF
    expected = ALL_CODES.replace(b"\x7f", b"\xff")
    assert g711.ulaw_encode(g711.ulaw_decode(ALL_CODES)) == expected


def test_decode_is_monotonic_within_each_sign() -> None:
    # codes 0x80..0xFF are positive, falling in magnitude towards 0xFF
    positive = g711.ulaw_decode(bytes(range(0x80, 0x100))).astype(int)
    assert np.all(np.diff(positive) < 0)
