"""Call-ID stems: the parts before and after each separator, at least 8 characters long."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callscope.assembly.links import call_id_stems


def stems_char_by_char(call_id: str) -> list[str]:
    stems = []
    for i, char in enumerate(call_id):
        if char in "-_.;:+~=":
            if i >= 8:
                stems.append(call_id[:i])
            if len(call_id) - i - 1 >= 8:
                stems.append(call_id[i + 1 :])
    return stems


def test_a_b2bua_call_id_extends_the_original_at_a_separator() -> None:
    assert call_id_stems("abcdefgh-b2b_1") == ["abcdefgh", "abcdefgh-b2b"]
    assert call_id_stems("short-id") == []


@given(st.text(alphabet="ab1-_.;:+~=@ é\n", max_size=40))
def test_stems_are_those_of_every_separator(call_id: str) -> None:
    assert call_id_stems(call_id) == stems_char_by_char(call_id)
