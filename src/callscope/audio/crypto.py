"""Recordings at rest: a chunked AES-256-GCM container and per-recording data keys.

Container layout (all integers big-endian)::

    header  magic "CSAC" | version u8 (=1) | flags u8 (=0) | key id length u8 | reserved u8
            | chunk size u32 (plaintext bytes per chunk) | plaintext length u64
            | base nonce 12 bytes (random) | key id (UTF-8)
    chunks  chunk i = AES-256-GCM(plaintext[i*C:(i+1)*C]) || 16-byte tag, back to back

Chunk ``i`` uses nonce ``base_nonce XOR i`` (i in the low 64 bits, as TLS 1.3 does) and
associated data ``header || i (u64) || last (u8)``: a changed header, a swapped, dropped or
repeated chunk, or a cut-off tail fails authentication. An empty recording still has one
(empty, last) chunk, so even it cannot be truncated unnoticed. Every chunk but the last holds
exactly C plaintext bytes, so a plaintext byte range maps to a ciphertext range without
reading anything else: `decrypt_range` reads the header and only the chunks it needs.

Keys: each recording gets a random 32-byte data key, stored only wrapped (AES-256-GCM) by
a master key that has an id. Rotating the master key rewraps data keys; the audio is not
re-encrypted. Deleting the wrapped data key makes the recording unrecoverable (shredding).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callscope.audio.errors import (
    AudioIntegrityError,
    AudioKeyError,
    AudioParseError,
    AudioRangeError,
)

#: read_at(offset, length) -> up to ``length`` bytes at ``offset`` (fewer only at the end)
ReadAt = Callable[[int, int], bytes]

MAGIC: Final = b"CSAC"
VERSION: Final = 1
KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
NONCE_SIZE: Final = 12
DEFAULT_CHUNK_SIZE: Final = 64 * 1024
MIN_CHUNK_SIZE: Final = 1024
MAX_CHUNK_SIZE: Final = 16 * 1024 * 1024
_FIXED: Final = struct.Struct(">4sBBBBIQ12s")
_CHUNK_AAD: Final = struct.Struct(">QB")
_INTEGRITY: Final = "recording failed its integrity check"


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise AudioKeyError("key must be 32 bytes")


def new_data_key() -> bytes:
    """A fresh random 32-byte data key for one recording."""
    return secrets.token_bytes(KEY_SIZE)


def bytes_reader(data: bytes) -> ReadAt:
    """A `ReadAt` over bytes in memory."""
    view = memoryview(data)
    return lambda offset, length: bytes(view[offset : offset + length])


@dataclass(frozen=True, slots=True)
class ContainerHeader:
    """The container's plaintext header; ``bytes(h)`` and `parse` are exact inverses."""

    key_id: str
    chunk_size: int
    plaintext_length: int
    base_nonce: bytes

    @classmethod
    def parse(cls, data: bytes) -> ContainerHeader:
        """Parse a header from the start of ``data``; `AudioParseError` when it is not one."""
        if len(data) < _FIXED.size:
            raise AudioParseError("container header truncated")
        magic, version, flags, id_len, reserved, chunk, length, nonce = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise AudioParseError("not an encrypted recording container")
        if version != VERSION or flags != 0 or reserved != 0:
            raise AudioParseError("unsupported container version")
        if not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
            raise AudioParseError("container chunk size out of range")
        raw_id = data[_FIXED.size : _FIXED.size + id_len]
        if len(raw_id) != id_len:
            raise AudioParseError("container header truncated")
        try:
            key_id = raw_id.decode("utf-8")
        except UnicodeDecodeError:
            raise AudioParseError("container key id is not UTF-8") from None
        return cls(key_id, chunk, length, nonce)

    def __bytes__(self) -> bytes:
        raw_id = self.key_id.encode("utf-8")
        fixed = _FIXED.pack(
            MAGIC,
            VERSION,
            0,
            len(raw_id),
            0,
            self.chunk_size,
            self.plaintext_length,
            self.base_nonce,
        )
        return fixed + raw_id

    @property
    def size(self) -> int:
        """Header length in bytes (where chunk 0 starts)."""
        return _FIXED.size + len(self.key_id.encode("utf-8"))

    @property
    def chunk_count(self) -> int:
        """Number of chunks (at least one, even for an empty recording)."""
        return max(1, -(-self.plaintext_length // self.chunk_size))

    @property
    def container_length(self) -> int:
        """Total bytes of a complete container with this header."""
        return self.size + self.plaintext_length + self.chunk_count * TAG_SIZE

    def chunk_plain_length(self, index: int) -> int:
        """Plaintext bytes in chunk ``index``."""
        return min(self.chunk_size, self.plaintext_length - index * self.chunk_size)

    def chunk_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the container."""
        return self.size + index * (self.chunk_size + TAG_SIZE)

    def nonce(self, index: int) -> bytes:
        """Chunk ``index``'s GCM nonce: the base nonce XOR ``index`` in its low 64 bits."""
        tail = int.from_bytes(self.base_nonce[4:], "big") ^ index
        return self.base_nonce[:4] + tail.to_bytes(8, "big")

    def associated_data(self, index: int) -> bytes:
        """Chunk ``index``'s AAD: header, index and last-chunk flag."""
        last = 1 if index == self.chunk_count - 1 else 0
        return bytes(self) + _CHUNK_AAD.pack(index, last)


def _new_header(key_id: str, chunk_size: int, plaintext_length: int) -> ContainerHeader:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AudioRangeError("chunk size out of range")
    if len(key_id.encode("utf-8")) > 255:
        raise AudioRangeError("key id longer than 255 bytes")
    return ContainerHeader(key_id, chunk_size, plaintext_length, secrets.token_bytes(NONCE_SIZE))


def encrypt_stream(
    read: Callable[[int], bytes | memoryview],
    plaintext_length: int,
    data_key: bytes,
    *,
    key_id: str = "",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encrypt ``plaintext_length`` bytes pulled from ``read(n)`` (e.g. a file's ``read``),
    yielding the header and then one encrypted chunk at a time."""
    _check_key(data_key)
    header = _new_header(key_id, chunk_size, plaintext_length)
    aead = AESGCM(data_key)
    yield bytes(header)
    for index in range(header.chunk_count):
        want = header.chunk_plain_length(index)
        plain = read(want)
        if len(plain) != want:
            raise AudioRangeError("plaintext shorter than announced")
        yield aead.encrypt(header.nonce(index), plain, header.associated_data(index))


def encrypt(
    plain: bytes, data_key: bytes, *, key_id: str = "", chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """Encrypt a whole recording into a container (``key_id`` names its data key)."""
    view = memoryview(plain)
    pos = 0

    def read(n: int) -> memoryview:
        nonlocal pos
        pos += n
        return view[pos - n : pos]

    return b"".join(
        encrypt_stream(read, len(plain), data_key, key_id=key_id, chunk_size=chunk_size)
    )


def read_header(read_at: ReadAt) -> ContainerHeader:
    """Read and parse the container header (key id, chunk size, plaintext length)."""
    head = read_at(0, _FIXED.size + 255)
    return ContainerHeader.parse(head)


def _open_chunk(aead: AESGCM, read_at: ReadAt, header: ContainerHeader, index: int) -> bytes:
    want = header.chunk_plain_length(index) + TAG_SIZE
    sealed = read_at(header.chunk_offset(index), want)
    if len(sealed) != want:
        raise AudioIntegrityError(_INTEGRITY)
    try:
        return aead.decrypt(header.nonce(index), sealed, header.associated_data(index))
    except InvalidTag:
        raise AudioIntegrityError(_INTEGRITY) from None


def iter_decrypt_range(read_at: ReadAt, start: int, end: int, data_key: bytes) -> Iterator[bytes]:
    """Yield the plaintext bytes ``[start, end)`` chunk by chunk, reading only the chunks
    that cover them. ``end`` is clamped to the plaintext length; a range starting at or
    after the end yields nothing. `AudioIntegrityError` on any tampering or truncation."""
    _check_key(data_key)
    if start < 0 or end < start:
        raise AudioRangeError("invalid byte range")
    header = read_header(read_at)
    end = min(end, header.plaintext_length)
    if start >= end:
        return
    aead = AESGCM(data_key)
    for index in range(start // header.chunk_size, (end - 1) // header.chunk_size + 1):
        plain = _open_chunk(aead, read_at, header, index)
        base = index * header.chunk_size
        yield plain[max(start - base, 0) : end - base]


def decrypt_range(read_at: ReadAt, start: int, end: int, data_key: bytes) -> bytes:
    """Plaintext bytes ``[start, end)`` (end exclusive, clamped), decrypting only the chunks
    needed; for HTTP ``Range: bytes=a-b`` pass ``start=a, end=b + 1``."""
    return b"".join(iter_decrypt_range(read_at, start, end, data_key))


def decrypt(container: bytes, data_key: bytes) -> bytes:
    """Decrypt a whole container held in memory, checking every chunk and the exact length."""
    _check_key(data_key)
    read_at = bytes_reader(container)
    header = read_header(read_at)
    if len(container) != header.container_length:
        raise AudioIntegrityError(_INTEGRITY)
    aead = AESGCM(data_key)
    return b"".join(_open_chunk(aead, read_at, header, i) for i in range(header.chunk_count))


WRAP_MAGIC: Final = b"CSWK"
_WRAP_FIXED: Final = struct.Struct(">4sBB")
_WRAP_CONTEXT: Final = b"callscope data key wrap v1\x00"
_WRAP_INTEGRITY: Final = "wrapped data key failed its integrity check"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed by a master key: ``"CSWK" | version u8 | id length u8 |
    master key id | nonce (12) | AES-256-GCM(data key) + tag (48)``. ``bytes(w)`` and
    `parse` are exact inverses."""

    master_key_id: str
    nonce: bytes
    sealed: bytes

    @classmethod
    def parse(cls, data: bytes) -> WrappedKey:
        """Parse a wrapped key; `AudioParseError` when the bytes are not one."""
        if len(data) < _WRAP_FIXED.size:
            raise AudioParseError("wrapped key truncated")
        magic, version, id_len = _WRAP_FIXED.unpack_from(data)
        if magic != WRAP_MAGIC or version != VERSION:
            raise AudioParseError("not a wrapped data key")
        rest = data[_WRAP_FIXED.size :]
        if len(rest) != id_len + NONCE_SIZE + KEY_SIZE + TAG_SIZE:
            raise AudioParseError("wrapped key has the wrong length")
        try:
            key_id = rest[:id_len].decode("utf-8")
        except UnicodeDecodeError:
            raise AudioParseError("wrapped key id is not UTF-8") from None
        return cls(key_id, rest[id_len : id_len + NONCE_SIZE], rest[id_len + NONCE_SIZE :])

    def __bytes__(self) -> bytes:
        raw_id = self.master_key_id.encode("utf-8")
        return (
            _WRAP_FIXED.pack(WRAP_MAGIC, VERSION, len(raw_id)) + raw_id + self.nonce + self.sealed
        )


def _wrap_aad(master_key_id: str, data_key_id: str) -> bytes:
    # binds the wrapped key to its master key id and to the recording's data key id
    return _WRAP_CONTEXT + master_key_id.encode("utf-8") + b"\x00" + data_key_id.encode("utf-8")


def wrap_key(
    data_key: bytes, master_key: bytes, master_key_id: str, *, data_key_id: str = ""
) -> bytes:
    """Seal ``data_key`` with ``master_key`` (AES-256-GCM, random nonce); returns the bytes
    of a `WrappedKey`. ``data_key_id`` (e.g. the container's key id) is bound as AAD."""
    _check_key(data_key)
    _check_key(master_key)
    if len(master_key_id.encode("utf-8")) > 255:
        raise AudioKeyError("master key id longer than 255 bytes")
    nonce = secrets.token_bytes(NONCE_SIZE)
    sealed = AESGCM(master_key).encrypt(nonce, data_key, _wrap_aad(master_key_id, data_key_id))
    return bytes(WrappedKey(master_key_id, nonce, sealed))


def unwrap_key(wrapped: bytes, master_keys: Mapping[str, bytes], *, data_key_id: str = "") -> bytes:
    """Recover a data key; ``master_keys`` maps master key id -> key (the keyring, old keys
    included during a rotation). `AudioKeyError` when its master key is not in the keyring,
    `AudioIntegrityError` when the wrapped key or its binding was altered."""
    parsed = WrappedKey.parse(wrapped)
    master_key = master_keys.get(parsed.master_key_id)
    if master_key is None:
        raise AudioKeyError("master key not found")
    _check_key(master_key)
    aad = _wrap_aad(parsed.master_key_id, data_key_id)
    try:
        return AESGCM(master_key).decrypt(parsed.nonce, parsed.sealed, aad)
    except InvalidTag:
        raise AudioIntegrityError(_WRAP_INTEGRITY) from None


def rewrap_key(
    wrapped: bytes,
    master_keys: Mapping[str, bytes],
    new_master_key: bytes,
    new_master_key_id: str,
    *,
    data_key_id: str = "",
) -> bytes:
    """Master key rotation for one recording: unwrap with the keyring, wrap with the new
    master key. The audio container is untouched."""
    data_key = unwrap_key(wrapped, master_keys, data_key_id=data_key_id)
    return wrap_key(data_key, new_master_key, new_master_key_id, data_key_id=data_key_id)
