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
def test_format_utc_is_the_strftime_text(at):
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at // 1000)
    assert format_utc(at) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
