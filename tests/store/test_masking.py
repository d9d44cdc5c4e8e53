import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.store.masking import mask_number, national_digits, pseudonym


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("0781234567", "078-***-4567"),
        ("078-123-4567", "078-***-4567"),
        ("+81 78 123 4567", "078-***-4567"),
        ("09012345678", "090-***-5678"),
        ("1234567", "***-4567"),
        ("2301", "2301"),  # an internal extension is a desk, not a citizen
        ("anonymous", "***"),
        ("", ""),
    ],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked


def test_national_digits_folds_the_country_code():
    assert national_digits("+81-78-123-4567") == "0781234567"
    assert national_digits("0081781234567") == "0781234567"


def test_pseudonym_is_stable_keyed_and_short():
    first = pseudonym("078-123-4567", "key-a")
    assert first == pseudonym("+81781234567", "key-a")
    assert first != pseudonym("078-123-4567", "key-b")
    assert first != pseudonym("078-123-4568", "key-a")
    assert len(first) == 16 and first.isalnum() and first == first.lower()
    assert pseudonym("", "key-a") == ""


@given(st.text(alphabet="0123456789-+ ", min_size=10, max_size=20))
def test_a_masked_long_number_never_shows_its_middle_digits(number):
    digits = national_digits(number)
    masked = mask_number(number)
    if len(digits) >= 10:
        assert masked == f"{digits[:3]}-***-{digits[-4:]}"
        assert sum(ch.isdigit() for ch in masked) == 7
