"""Recent parse results: the same values as parsing, a bounded table, errors never kept."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.protocol.errors import SipParseError
from callscope.protocol.recent import RecentParses
from callscope.protocol.sipuri import NameAddr

name_addrs = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda name, user, tag: f'"{name}" <sip:{user}@pbx.example>;tag={tag}',
        st.text(alphabet=st.characters(blacklist_characters='"\\\r\n'), max_size=12),
        st.from_regex(r"[0-9a-z]{1,10}", fullmatch=True),
        st.from_regex(r"[0-9a-f]{1,8}", fullmatch=True),
    ),
)


def outcome(parse, text):
    try:
        return parse(text)
    except SipParseError as exc:
        return type(exc), str(exc)


@given(st.lists(name_addrs, max_size=20))
def test_remembered_results_equal_parsing_each_time(texts):
    recent = RecentParses(NameAddr.parse, limit=8)
    for text in texts + texts:  # the second round is served from the table where kept
        assert outcome(recent, text) == outcome(NameAddr.parse, text)


def test_the_table_is_bounded_and_keeps_neither_errors_nor_long_texts():
    calls = []

    def parse(text):
        calls.append(text)
        if text == "bad":
            raise SipParseError("unusable")
        return text.upper()

    recent = RecentParses(parse, limit=3, max_text=10)
    for text in ("a", "a", "b", "c", "a"):
        assert recent(text) == text.upper()
    assert calls == ["a", "b", "c"]
    recent("d")  # the table was full: emptied, then "d" kept
    recent("a")
    assert calls == ["a", "b", "c", "d", "a"]
    for _ in range(2):
        with pytest.raises(SipParseError):
            recent("bad")
        assert recent("x" * 11) == "X" * 11
    assert calls.count("bad") == 2 and calls.count("x" * 11) == 2


def test_known_gives_the_remembered_value_or_none():
    recent = RecentParses(str.upper, limit=2)
    assert recent.known("a") is None
    assert recent("a") == "A" and recent.known("a") == "A"
    recent("b")
    recent("c")  # full: emptied, then "c" kept
    assert recent.known("a") is None and recent.known("c") == "C"
