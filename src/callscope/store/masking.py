"""Phone numbers in views: masked by default, with a keyed pseudonym for counting.

Operators see ``078-***-1234`` unless the manager granted them the full-number right; the
pseudonym (HMAC-SHA256 under ``settings.PSEUDONYM_KEY``) lets analytics count repeat callers
without the number. Both functions are pure: the key is passed in.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

MASK = "***"

# Numbers of this many digits or fewer are internal extensions (staff desks, not citizens).
EXTENSION_DIGITS = 6


def national_digits(number: str) -> str:
    """The digits of a number in Japanese national form (+81 78... -> 078...)."""
    digits = "".join(ch for ch in number if ch.isdigit() and ch.isascii())
    if number.strip().startswith("+81") and digits.startswith("81"):
        return "0" + digits[2:]
    if digits.startswith("0081"):
        return "0" + digits[4:]
    return digits


def mask_number(number: str) -> str:
    """Hide the middle of a phone number: ``078-***-1234``.

    Short internal extensions are shown as they are; anything that is not a number (a SIP
    user name, "anonymous") is hidden entirely, and an empty value stays empty.
    """
    if not number.strip():
        return ""
    digits = national_digits(number)
    if not digits:
        return MASK
    if len(digits) <= EXTENSION_DIGITS and not number.strip().startswith("+"):
        return digits
    if len(digits) < 10:
        return f"{MASK}-{digits[-4:]}"
    return f"{digits[:3]}-{MASK}-{digits[-4:]}"


@functools.lru_cache(maxsize=4096)  # every saved call asks for two; numbers come back often
def pseudonym(number: str, key: str | bytes) -> str:
    """A short stable token for a number under ``key`` (keyed HMAC-SHA256, base32).

    Different spellings of one number (``+81-78-...``, ``078...``) give the same token; an
    empty number gives an empty token.
    """
    digits = national_digits(number) or number.strip()
    if not digits:
        return ""
    secret = key.encode() if isinstance(key, str) else key
    mac = hmac.new(secret, digits.encode(), hashlib.sha256).digest()
    # 80 bits: collisions stay negligible for a city's callers; 16 base32 characters.
    return base64.b32encode(mac[:10]).decode("ascii").lower()
