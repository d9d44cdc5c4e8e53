"""Secrets the database keeps but must not reveal: sealed with a key that is not in it.

A TOTP secret lets whoever holds it produce valid second-factor codes, so a copy of the
database (a backup, a dump handed to a vendor) must not contain it readable. Each value is
sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the installation's
``SECRET_KEY``, which lives in the data directory or the environment, not in the database.
The value's *context* (e.g. ``user:42:totp``) is authenticated with it, so a sealed value
copied into another row does not open there.

Stored form: ``sealed1:`` + URL-safe base64 of nonce (12 bytes) + ciphertext and tag.
A value without the prefix is a plaintext left from before sealing (the migration seals
those); `unseal` returns it as it is. When ``SECRET_KEY`` is replaced, the previous key in
``SECRET_KEY_FALLBACKS`` still opens older values; without it they cannot be opened
(`SealError`): the manager resets the user's second factor and the user enrols again.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "sealed1:"
_INFO = b"callscope accounts: sealed secrets v1"
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that none of the configured keys opens (or that is damaged)."""


def _key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return hkdf.derive(secret_key.encode("utf-8"))


def _keys() -> Iterable[bytes]:
    yield _key(settings.SECRET_KEY)
    for fallback in getattr(settings, "SECRET_KEY_FALLBACKS", ()):
        yield _key(fallback)


def seal(plain: str, context: str) -> str:
    """``plain`` sealed for storage under ``context`` (empty stays empty: nothing to hide)."""
    if not plain:
        return ""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(settings.SECRET_KEY)).encrypt(
        nonce, plain.encode("utf-8"), context.encode("utf-8")
    )
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def unseal(value: str, context: str) -> str:
    """The plaintext of a stored value (a legacy plaintext is returned as it is)."""
    if not is_sealed(value):
        return value
    try:
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SealError("damaged sealed value") from exc
    if len(raw) <= _NONCE_BYTES:
        raise SealError("damaged sealed value")
    nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for key in _keys():
        try:
            return AESGCM(key).decrypt(nonce, sealed, context.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            continue
    raise SealError("no configured key opens this value (SECRET_KEY changed?)")
