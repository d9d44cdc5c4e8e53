"""The Japanese numbering plan: one table of numbers as seen on the wire."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.store.numbering import (
    NumberClass,
    area_code_length,
    classify_number,
    format_number,
    normalise_number,
)

C = NumberClass

# raw number, class, normalised, display
PLAN = [
    ("0783225111", C.FIXED, "0783225111", "078-322-5111"),  # 神戸市役所
    ("078-322-5111", C.FIXED, "0783225111", "078-322-5111"),
    ("+81783225111", C.FIXED, "0783225111", "078-322-5111"),
    ("+81-78-322-5111", C.FIXED, "0783225111", "078-322-5111"),
    ("0081783225111", C.FIXED, "0783225111", "078-322-5111"),
    ("０７８－３２２－５１１１", C.FIXED, "0783225111", "078-322-5111"),  # full-width
    ("sip:0783225111@pbx.city.local", C.FIXED, "0783225111", "078-322-5111"),
    ("tel:+81-78-322-5111", C.FIXED, "0783225111", "078-322-5111"),
    ("(078) 322-5111", C.FIXED, "0783225111", "078-322-5111"),
    ("0312345678", C.FIXED, "0312345678", "03-1234-5678"),  # 東京 2-digit area code
    ("0661234567", C.FIXED, "0661234567", "06-6123-4567"),  # 大阪
    ("0797311234", C.FIXED, "0797311234", "0797-31-1234"),  # 芦屋 4-digit
    ("0799221234", C.FIXED, "0799221234", "0799-22-1234"),  # 洲本 (淡路)
    ("0792211234", C.FIXED, "0792211234", "079-221-1234"),  # 姫路 3-digit
    ("0126721234", C.FIXED, "0126721234", "01267-2-1234"),  # 5-digit area code
    ("09012345678", C.MOBILE, "09012345678", "090-1234-5678"),
    ("08012345678", C.MOBILE, "08012345678", "080-1234-5678"),
    ("07012345678", C.MOBILE, "07012345678", "070-1234-5678"),
    ("+819012345678", C.MOBILE, "09012345678", "090-1234-5678"),
    ("05012345678", C.IP_PHONE, "05012345678", "050-1234-5678"),
    ("02012345678", C.M2M, "02012345678", "020-1234-5678"),
    ("0120123456", C.TOLL_FREE, "0120123456", "0120-123-456"),
    ("08001234567", C.TOLL_FREE, "08001234567", "0800-123-4567"),
    ("0570123456", C.NAVI_DIAL, "0570123456", "0570-123-456"),
    ("0180123456", C.MASS_CALLING, "0180123456", "0180-123-456"),
    ("0990123456", C.PREMIUM, "0990123456", "0990-123-456"),
    ("+12125551234", C.INTERNATIONAL, "+12125551234", "+12125551234"),
    ("010442071234567", C.INTERNATIONAL, "+442071234567", "+442071234567"),
    ("01081783225111", C.FIXED, "0783225111", "078-322-5111"),
    ("110", C.EMERGENCY, "110", "110"),
    ("119", C.EMERGENCY, "119", "119"),
    ("118", C.EMERGENCY, "118", "118"),
    ("189", C.SERVICE, "189", "189"),  # 児童相談所虐待対応ダイヤル
    ("104", C.SERVICE, "104", "104"),
    ("#7119", C.SERVICE, "#7119", "#7119"),
    ("1840783225111", C.FIXED, "0783225111", "078-322-5111"),  # 184: withhold prefix
    ("18609012345678", C.MOBILE, "09012345678", "090-1234-5678"),
    ("", C.WITHHELD, "", ""),
    ("anonymous", C.WITHHELD, "anonymous", "anonymous"),
    ("Anonymous", C.WITHHELD, "anonymous", "anonymous"),
    ("sip:anonymous@anonymous.invalid", C.WITHHELD, "anonymous", "anonymous"),
    ("非通知", C.WITHHELD, "非通知", "非通知"),
    ("unavailable", C.UNAVAILABLE, "unavailable", "unavailable"),
    ("公衆電話", C.PAYPHONE, "公衆電話", "公衆電話"),
    ("1234", C.EXTENSION, "1234", "1234"),
    ("52101", C.EXTENSION, "52101", "52101"),
    ("078322511", C.INVALID, "078322511", "078322511"),  # one digit short
    ("090123456789", C.INVALID, "090123456789", "090123456789"),  # one too many
    ("1234567", C.INVALID, "1234567", "1234567"),
    ("alice", C.INVALID, "alice", "alice"),
]


@pytest.mark.parametrize(("raw", "cls", "normalised", "display"), PLAN)
def test_numbering_plan(raw, cls, normalised, display):
    assert classify_number(raw) is cls
    assert normalise_number(raw) == normalised
    assert format_number(raw) == display


@pytest.mark.parametrize(
    ("digits", "length"),
    [("0783225111", 3), ("0312345678", 2), ("0799221234", 4), ("0126721234", 5)],
)
def test_area_code_length(digits, length):
    assert area_code_length(digits) == length


def test_display_form_reads_back_as_the_same_number():
    for _raw, cls, normalised, display in PLAN:
        if cls is not C.INVALID and display:
            assert normalise_number(display) == normalised


@given(st.text(max_size=30))
def test_any_text_gets_a_class_and_a_display(text):
    assert classify_number(text) in set(NumberClass)
    assert isinstance(format_number(text), str)
