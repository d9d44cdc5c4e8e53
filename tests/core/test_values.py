import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.core import Endpoint, format_utc


def test_endpoint_text_round_trip_v4_and_v6():
    assert str(Endpoint.parse("192.0.2.1:5060")) == "192.0.2.1:5060"
    assert str(Endpoint.parse("[2001:db8::1]:5060")) == "[2001:db8::1]:5060"
    assert Endpoint.parse("[2001:0db8:0:0::1]:5060").ip == "2001:db8::1"


@pytest.mark.parametrize("text", ["192.0.2.1", "host:5060", "[::1]5060", "1.2.3.4:x"])
def test_endpoint_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        Endpoint.parse(text)


def test_format_utc_keeps_microseconds_and_z():
    assert format_utc(1_617_000_000_123_456_789) == "2021-03-29T06:40:00.123456Z"
    assert format_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert format_utc(None) is None


@given(st.integers(min_value=-62_135_596_800 * 10**9, max_value=253_402_300_799 * 10**9))
def test_format_utc_is_iso_8601_and_reads_back(at):
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at // 1000)
    text = format_utc(at)
    assert text == moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert dt.datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_format_utc_writes_early_years_with_four_digits():
    # a capture agent with a broken clock: the text must still be ISO 8601 (and read back)
    at = (dt.datetime(133, 9, 5, 0, 51, 14) - dt.datetime(1970, 1, 1)) // dt.timedelta(
        microseconds=1
    ) * 1000 + 841_409_000
    assert format_utc(at) == "0133-09-05T00:51:14.841409Z"


def test_format_utc_same_second_and_many_seconds():
    base = 1_617_000_000 * 10**9
    assert format_utc(base + 999_999_999) == "2021-03-29T06:40:00.999999Z"
    assert format_utc(base - 1) == "2021-03-29T06:39:59.999999Z"
    # more distinct seconds than are remembered: every text still right
    for second in range(0, 10_000, 7):
        at = base + second * 10**9 + 5_000
        expected = dt.datetime(2021, 3, 29, 6, 40, tzinfo=dt.UTC) + dt.timedelta(
            seconds=second, microseconds=5
        )
        assert format_utc(at) == expected.isoformat(timespec="microseconds").replace("+00:00", "Z")
