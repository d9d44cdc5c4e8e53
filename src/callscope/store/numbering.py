"""The Japanese numbering plan: classify, normalise and display phone numbers.

Numbers that are not in the city's own directory are classed by the plan of the Ministry of
Internal Affairs and Communications (電気通信番号計画):

- ``0AB-CDE-FGHJ`` fixed lines, ten digits, with area codes (市外局番) of two to five digits
  (``03`` Tokyo, ``06`` Osaka, ``078`` Kobe, ``0799`` Awaji, ``01267`` ...);
- ``070``/``080``/``090`` mobile, ``050`` IP phones, ``020`` M2M, all eleven digits;
- ``0120`` and ``0800`` toll-free (フリーダイヤル), ``0570`` navi-dial (ナビダイヤル),
  ``0180`` mass calling (テレドーム), ``0990`` premium rate (ダイヤルQ2);
- ``110`` police, ``118`` coast guard, ``119`` fire and ambulance; other ``1XY`` and ``#XXXX``
  numbers are carrier and public services (``104``, ``117``, ``171``, ``188``, ``189``,
  ``#7119``, ...);
- ``010`` and ``+`` international (``+81`` is Japan itself and becomes national ``0``);
- withheld (非通知: empty, ``anonymous``, ``Anonymous``, ``184`` prefix), unavailable
  (表示圏外) and payphones (公衆電話);
- short numbers of ``EXTENSION_LENGTHS`` digits are internal extensions (内線).

Everything here is pure (no database): `classify_number`, `normalise_number` and
`format_number` run for every imported call.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class NumberClass(StrEnum):
    """What kind of number a party has; stored in ``Call.caller_class``/``callee_class``."""

    EXTENSION = "extension"
    FIXED = "fixed"
    MOBILE = "mobile"
    IP_PHONE = "ip_phone"
    M2M = "m2m"
    TOLL_FREE = "toll_free"
    NAVI_DIAL = "navi_dial"
    MASS_CALLING = "mass_calling"
    PREMIUM = "premium"
    INTERNATIONAL = "international"
    EMERGENCY = "emergency"
    SERVICE = "service"
    WITHHELD = "withheld"
    UNAVAILABLE = "unavailable"
    PAYPHONE = "payphone"
    INVALID = "invalid"


LABELS = {
    NumberClass.EXTENSION: _("Extension"),
    NumberClass.FIXED: _("Fixed line"),
    NumberClass.MOBILE: _("Mobile"),
    NumberClass.IP_PHONE: _("IP phone (050)"),
    NumberClass.M2M: _("M2M (020)"),
    NumberClass.TOLL_FREE: _("Toll-free"),
    NumberClass.NAVI_DIAL: _("Navi-dial (0570)"),
    NumberClass.MASS_CALLING: _("Mass calling (0180)"),
    NumberClass.PREMIUM: _("Premium rate (0990)"),
    NumberClass.INTERNATIONAL: _("International"),
    NumberClass.EMERGENCY: _("Emergency"),
    NumberClass.SERVICE: _("Service number"),
    NumberClass.WITHHELD: _("Withheld"),
    NumberClass.UNAVAILABLE: _("Unavailable"),
    NumberClass.PAYPHONE: _("Payphone"),
    NumberClass.INVALID: _("Invalid"),
}

EXTERNAL_CLASSES = frozenset(NumberClass) - {NumberClass.EXTENSION, NumberClass.INVALID}

# Internal extensions of the city's PBX: this many digits, not starting with 0.
EXTENSION_LENGTHS = range(3, 7)

# Caller identities that mean "the number is not shown" (RFC 3323 anonymous, carriers' words).
_WITHHELD = {"", "anonymous", "anonymous.invalid", "private", "restricted", "withheld", "非通知"}
_UNAVAILABLE = {"unavailable", "unknown", "out-of-area", "表示圏外", "通知不可能"}
_PAYPHONE = {"payphone", "coin line/payphone", "公衆電話"}
_WORDS: dict[str, NumberClass] = {
    **dict.fromkeys(_WITHHELD, NumberClass.WITHHELD),
    **dict.fromkeys(_UNAVAILABLE, NumberClass.UNAVAILABLE),
    **dict.fromkeys(_PAYPHONE, NumberClass.PAYPHONE),
}

# Prefixes of eleven-digit non-geographic numbers, and of the special services.
_PREFIX_CLASSES: dict[str, NumberClass] = {
    "070": NumberClass.MOBILE,
    "080": NumberClass.MOBILE,
    "090": NumberClass.MOBILE,
    "050": NumberClass.IP_PHONE,
    "020": NumberClass.M2M,
    "0120": NumberClass.TOLL_FREE,
    "0800": NumberClass.TOLL_FREE,
    "0570": NumberClass.NAVI_DIAL,
    "0180": NumberClass.MASS_CALLING,
    "0990": NumberClass.PREMIUM,
}
_LENGTHS: dict[NumberClass, int] = {
    NumberClass.MOBILE: 11,
    NumberClass.IP_PHONE: 11,
    NumberClass.M2M: 11,
    NumberClass.TOLL_FREE: 10,  # 0120-XXX-XXX; 0800-XXX-XXXX is checked below
    NumberClass.NAVI_DIAL: 10,
    NumberClass.MASS_CALLING: 10,
    NumberClass.PREMIUM: 10,
}
_EMERGENCY = {"110", "118", "119"}
_FOUR_DIGIT_PREFIX = {
    NumberClass.TOLL_FREE,
    NumberClass.NAVI_DIAL,
    NumberClass.MASS_CALLING,
    NumberClass.PREMIUM,
}

# Area codes (市外局番) that are not three digits long. Fixed numbers whose prefix is not
# listed are shown with a three-digit area code (0AB-CDE-FGHJ), the most common shape.
# Complete for Hyogo and the Kinki region; the other regions list their largest cities.
_AREA_CODES_2 = ("03", "06")
_AREA_CODES_4 = (
    # Hyogo (兵庫県)
    "0790", "0791", "0794", "0795", "0796", "0797", "0798", "0799",
    # Osaka, Kyoto, Nara, Shiga, Wakayama, Mie
    "0721", "0725", "0735", "0736", "0737", "0738", "0739", "0740", "0742", "0743",
    "0744", "0745", "0746", "0747", "0748", "0749", "0771", "0772", "0773", "0774",
    "0594", "0595", "0596", "0597", "0598", "0599",
    # Kanto and others
    "0422", "0428", "0436", "0438", "0439", "0460", "0463", "0465", "0466", "0467",
    "0470", "0475", "0476", "0478", "0479", "0480", "0493", "0494", "0495",
    "0263", "0266", "0267", "0268", "0269", "0276", "0277", "0278", "0279",
    "0285", "0287", "0288", "0289", "0294", "0295", "0296", "0297", "0299",
    "0823", "0824", "0826", "0827", "0829", "0833", "0834", "0835", "0836", "0837",
    "0838", "0940", "0942", "0943", "0944", "0946", "0947", "0948", "0949", "0955",
    "0956", "0957", "0959", "0980",
)  # fmt: skip
_AREA_CODES_5 = (
    "01267", "01372", "01374", "01377", "01392", "01397", "01398", "04992", "04994", "04996",
    "04998", "05769", "05979", "08387", "08388", "08396", "08477", "08512", "08514", "09496",
    "09802", "09912", "09913", "09969",
)  # fmt: skip
_AREA_LENGTH: dict[str, int] = {
    **dict.fromkeys(_AREA_CODES_2, 2),
    **dict.fromkeys(_AREA_CODES_4, 4),
    **dict.fromkeys(_AREA_CODES_5, 5),
}

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―ー−().・/]")
_SIP_USER = re.compile(r"^(?:sips?:|tel:)?([^@;]*)")


@functools.lru_cache(maxsize=4096)  # both numbers of every saved call; they come back often
def normalise_number(raw: str) -> str:
    """The number as digits in national form, or a lower-case word for non-numbers.

    Full-width digits and separators are folded (NFKC), ``sip:``/``tel:`` prefixes and URI
    parameters dropped, ``+81``/``0081``/``01081`` become ``0``, other international numbers
    become ``+`` and digits, and the ``184``/``186`` caller-ID prefixes (非通知/通知 dialling)
    are removed from numbers long enough to carry them.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    match = _SIP_USER.match(text)
    text = _SEPARATORS.sub("", match.group(1) if match else text)
    if text.startswith("+"):
        digits = text[1:]
        if not digits.isdigit():
            return text.lower()
        return "0" + digits[2:] if digits.startswith("81") else "+" + digits
    if not text.replace("#", "").replace("*", "").isdigit():
        return text.lower()
    return _dialled_prefixes(text)


def _dialled_prefixes(text: str) -> str:
    for prefix in ("0081", "01081"):  # international access to Japan itself
        if text.startswith(prefix):
            return "0" + text[len(prefix) :]
    if text.startswith("010") and len(text) > 6:
        return "+" + text[3:]
    if text[:3] in {"184", "186"} and len(text) >= 13 and text[3] == "0":
        return text[3:]
    return text


def _national_class(digits: str) -> NumberClass:
    for length in (4, 3):
        cls = _PREFIX_CLASSES.get(digits[:length])
        if cls is not None:
            if digits.startswith("0800"):
                return cls if len(digits) == 11 else NumberClass.INVALID
            return cls if len(digits) == _LENGTHS[cls] else NumberClass.INVALID
    if len(digits) == 10 and digits[1] != "0":
        return NumberClass.FIXED
    return NumberClass.INVALID


@functools.lru_cache(maxsize=4096)
def classify_number(raw: str) -> NumberClass:
    """The numbering-plan class of a number as seen on the wire (any spelling)."""
    word = unicodedata.normalize("NFKC", raw).strip().lower()
    user = word.split("@", 1)[0].removeprefix("sip:").removeprefix("sips:")
    named = _WORDS.get(word) or _WORDS.get(user)
    if named is not None:
        return named
    digits = normalise_number(raw)
    if digits.startswith("+"):
        return NumberClass.INTERNATIONAL if len(digits) >= 5 else NumberClass.INVALID
    if digits.startswith("#"):
        valid = digits[1:].isdigit() and len(digits) == 5
        return NumberClass.SERVICE if valid else NumberClass.INVALID
    if not digits.isdigit():
        return NumberClass.INVALID
    if digits[0] == "0":
        return _national_class(digits)
    return _short_class(digits)


def _short_class(digits: str) -> NumberClass:
    if digits in _EMERGENCY:
        return NumberClass.EMERGENCY
    if len(digits) == 3 and digits[0] == "1":
        return NumberClass.SERVICE
    return NumberClass.EXTENSION if len(digits) in EXTENSION_LENGTHS else NumberClass.INVALID


def area_code_length(digits: str) -> int:
    """Digits of the area code of a ten-digit fixed number (2 to 5)."""
    for length in (5, 4, 2):
        if _AREA_LENGTH.get(digits[:length]) == length:
            return length
    return 3


def format_number(raw: str) -> str:
    """Hyphenated display form: ``078-322-5111``, ``090-1234-5678``, ``0120-123-456``.

    Numbers the plan does not know how to split are returned normalised, without hyphens.
    """
    digits = normalise_number(raw)
    cls = classify_number(raw)
    if cls in {NumberClass.MOBILE, NumberClass.IP_PHONE, NumberClass.M2M}:
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    if cls in _FOUR_DIGIT_PREFIX:  # 0120-123-456, 0800-123-4567, 0570-123-456
        return f"{digits[:4]}-{digits[4:7]}-{digits[7:]}"
    if cls is NumberClass.FIXED:
        area = area_code_length(digits)
        return f"{digits[:area]}-{digits[area:6]}-{digits[6:]}"
    return digits
