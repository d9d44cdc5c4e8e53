"""Chunked AES-256-GCM recordings and data-key wrapping."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.audio.crypto import (
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    ContainerHeader,
    WrappedKey,
    bytes_reader,
    decrypt,
    decrypt_range,
    encrypt,
    encrypt_stream,
    iter_decrypt_range,
    new_data_key,
    read_header,
    rewrap_key,
    unwrap_key,
    wrap_key,
)
from callscope.audio.errors import (
    AudioError,
    AudioIntegrityError,
    AudioKeyError,
    AudioParseError,
    AudioRangeError,
)

KEY = bytes(range(32))
CHUNK = MIN_CHUNK_SIZE
PLAIN = bytes((i * 7 + i // 251) % 256 for i in range(5 * CHUNK + 123))
INTEGRITY = r"^recording failed its integrity check$"
CONTAINER = encrypt(PLAIN, KEY, key_id="rec-42", chunk_size=CHUNK)


@pytest.fixture(scope="module")
def container() -> bytes:
    return CONTAINER


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_round_trip(size: int) -> None:
    data = PLAIN[:size]
    sealed = encrypt(data, KEY, key_id="k", chunk_size=CHUNK)
    header = read_header(bytes_reader(sealed))
    assert header.plaintext_length == size and header.key_id == "k"
    assert len(sealed) == header.container_length
    assert decrypt(sealed, KEY) == data


def test_header_has_an_exact_inverse(container: bytes) -> None:
    header = ContainerHeader.parse(container)
    assert bytes(header) == container[: header.size]
    assert (header.key_id, header.chunk_size, header.chunk_count) == ("rec-42", CHUNK, 6)


def test_every_container_gets_a_fresh_nonce() -> None:
    one, two = encrypt(b"same", KEY), encrypt(b"same", KEY)
    assert one != two and decrypt(one, KEY) == decrypt(two, KEY) == b"same"


def test_streaming_equals_whole_and_reads_in_chunks(container: bytes) -> None:
    reads: list[int] = []
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        reads.append(n)
        pos += n
        return PLAIN[pos - n : pos]

    parts = list(encrypt_stream(read, len(PLAIN), KEY, key_id="rec-42", chunk_size=CHUNK))
    assert len(parts) == 1 + 6 and reads == [CHUNK] * 5 + [123]
    assert decrypt(b"".join(parts), KEY) == PLAIN


def test_streaming_detects_a_short_source() -> None:
    with pytest.raises(AudioRangeError, match=r"^plaintext shorter than announced$"):
        b"".join(encrypt_stream(lambda n: b"x", 5000, KEY, chunk_size=CHUNK))


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, len(PLAIN) + 10),
    length=st.integers(0, 3 * CHUNK),
    nudge=st.sampled_from([0, -1, 1]),
)
def test_range_reads_match_slices(start: int, length: int, nudge: int) -> None:
    if nudge:  # bias towards chunk boundaries
        start = max(0, (start // CHUNK) * CHUNK + nudge)
    end = start + length
    assert decrypt_range(bytes_reader(CONTAINER), start, end, KEY) == PLAIN[start:end]


def test_range_read_touches_only_the_chunks_it_needs(container: bytes) -> None:
    header = ContainerHeader.parse(container)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return container[offset : offset + length]

    got = decrypt_range(read_at, 2 * CHUNK - 3, 2 * CHUNK + 5, KEY)
    assert got == PLAIN[2 * CHUNK - 3 : 2 * CHUNK + 5]
    chunk_reads = [r for r in reads if r[0] >= header.size]
    assert chunk_reads == [
        (header.chunk_offset(1), CHUNK + TAG_SIZE),
        (header.chunk_offset(2), CHUNK + TAG_SIZE),
    ]


def test_range_streams_chunk_by_chunk(container: bytes) -> None:
    parts = list(iter_decrypt_range(bytes_reader(container), 10, 3 * CHUNK, KEY))
    assert [len(p) for p in parts] == [CHUNK - 10, CHUNK, CHUNK]


def test_range_end_is_clamped_and_bad_ranges_refused(container: bytes) -> None:
    read_at = bytes_reader(container)
    assert decrypt_range(read_at, len(PLAIN) - 2, 10**12, KEY) == PLAIN[-2:]
    assert decrypt_range(read_at, len(PLAIN) + 5, len(PLAIN) + 9, KEY) == b""
    with pytest.raises(AudioRangeError, match=r"^invalid byte range$"):
        decrypt_range(read_at, 5, 4, KEY)
    with pytest.raises(AudioRangeError, match=r"^invalid byte range$"):
        decrypt_range(read_at, -1, 4, KEY)


def test_every_tampered_byte_is_detected(container: bytes) -> None:
    header = ContainerHeader.parse(container)
    # every header byte, and bytes at the start, middle and tag of chunks
    positions = [*range(header.size)]
    for index in (0, 2, header.chunk_count - 1):
        at = header.chunk_offset(index)
        size = header.chunk_plain_length(index)
        positions += [at, at + size // 2, at + size, at + size + TAG_SIZE - 1]
    for pos in positions:
        tampered = bytearray(container)
        tampered[pos] ^= 0x01
        with pytest.raises(AudioError) as info:
            decrypt(bytes(tampered), KEY)
        if pos >= header.size:
            assert type(info.value) is AudioIntegrityError
            assert str(info.value) == "recording failed its integrity check"


def test_tampered_header_fields_fail_the_integrity_check(container: bytes) -> None:
    # a header still well-formed but changed (key id, plaintext length) fails authentication
    header = ContainerHeader.parse(container)
    forged = ContainerHeader(
        "rec-43", header.chunk_size, header.plaintext_length, header.base_nonce
    )
    with pytest.raises(AudioIntegrityError, match=INTEGRITY):
        decrypt(bytes(forged) + container[header.size :], KEY)
    shorter = ContainerHeader(header.key_id, CHUNK, 4 * CHUNK, header.base_nonce)
    body = container[header.size : header.chunk_offset(4)]
    with pytest.raises(AudioIntegrityError, match=INTEGRITY):
        decrypt(bytes(shorter) + body, KEY)


def test_truncation_is_detected(container: bytes) -> None:
    header = ContainerHeader.parse(container)
    for cut in (header.chunk_offset(5), header.chunk_offset(5) + 10, len(container) - 1):
        with pytest.raises(AudioIntegrityError, match=INTEGRITY):
            decrypt(container[:cut], KEY)
        with pytest.raises(AudioIntegrityError, match=INTEGRITY):
            decrypt_range(bytes_reader(container[:cut]), 0, len(PLAIN), KEY)


def test_dropping_whole_trailing_chunks_is_detected(container: bytes) -> None:
    # cut at a chunk boundary: the new last chunk was not sealed as the last one
    header = ContainerHeader.parse(container)
    for keep in range(1, header.chunk_count):
        with pytest.raises(AudioIntegrityError, match=INTEGRITY):
            decrypt(container[: header.chunk_offset(keep)], KEY)


def test_reordered_or_repeated_chunks_are_detected(container: bytes) -> None:
    header = ContainerHeader.parse(container)
    chunks = [container[header.chunk_offset(i) : header.chunk_offset(i + 1)] for i in range(5)]
    tail = container[header.chunk_offset(5) :]
    head = container[: header.size]
    swapped = head + chunks[1] + chunks[0] + b"".join(chunks[2:]) + tail
    repeated = head + chunks[0] + chunks[0] + b"".join(chunks[2:]) + tail
    for forged in (swapped, repeated):
        with pytest.raises(AudioIntegrityError, match=INTEGRITY):
            decrypt(forged, KEY)
        with pytest.raises(AudioIntegrityError, match=INTEGRITY):
            decrypt_range(bytes_reader(forged), 0, 2 * CHUNK, KEY)


def test_appended_bytes_are_detected_on_a_whole_decrypt(container: bytes) -> None:
    with pytest.raises(AudioIntegrityError, match=INTEGRITY):
        decrypt(container + b"\x00", KEY)


def test_wrong_key_fails_the_integrity_check(container: bytes) -> None:
    with pytest.raises(AudioIntegrityError, match=INTEGRITY):
        decrypt(container, new_data_key())
    with pytest.raises(AudioIntegrityError, match=INTEGRITY):
        decrypt(encrypt(b"", KEY), new_data_key())  # even an empty recording


HEAD_ID_5 = b"CSAC\x01\x00\x05\x00\x00\x00\x04\x00" + bytes(20)  # key id of 5 bytes
HEAD_ID_1 = b"CSAC\x01\x00\x01\x00\x00\x00\x04\x00" + bytes(20)  # key id of 1 byte


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "container header truncated"),
        (b"XXXX" + bytes(40), "not an encrypted recording container"),
        (b"CSAC\x02" + bytes(40), "unsupported container version"),
        (b"CSAC\x01\x00\x00\x00" + bytes(4) + bytes(20), "container chunk size out of range"),
        (HEAD_ID_5 + b"ab", "container header truncated"),
        (HEAD_ID_1 + b"\xff", "container key id is not UTF-8"),
    ],
)  # fmt: skip
def test_malformed_headers(data: bytes, message: str) -> None:
    with pytest.raises(AudioParseError) as info:
        decrypt(data, KEY)
    assert str(info.value) == message


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(AudioKeyError, match=r"^key must be 32 bytes$"):
        encrypt(b"x", KEY[:16])
    with pytest.raises(AudioKeyError, match=r"^key must be 32 bytes$"):
        wrap_key(KEY, KEY[:31], "m1")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_container_parser_raises_only_audio_errors(data: bytes) -> None:
    for blob in (data, b"CSAC\x01\x00" + data):
        with contextlib.suppress(AudioError):
            decrypt(blob, KEY)
        with contextlib.suppress(AudioError):
            decrypt_range(bytes_reader(blob), 0, 100, KEY)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_wrapped_key_parser_raises_only_audio_errors(data: bytes) -> None:
    for blob in (data, b"CSWK\x01" + data):
        with contextlib.suppress(AudioError):
            unwrap_key(blob, {"m1": KEY})


MASTER_1, MASTER_2 = bytes(32), bytes([1]) * 32


def test_wrap_and_unwrap() -> None:
    data_key = new_data_key()
    wrapped = wrap_key(data_key, MASTER_1, "master-2026", data_key_id="rec-1")
    parsed = WrappedKey.parse(wrapped)
    assert bytes(parsed) == wrapped and parsed.master_key_id == "master-2026"
    assert data_key not in wrapped
    assert unwrap_key(wrapped, {"master-2026": MASTER_1}, data_key_id="rec-1") == data_key


def test_tampered_wrapped_key_is_detected() -> None:
    wrapped = wrap_key(KEY, MASTER_1, "m1", data_key_id="rec-1")
    for pos in range(len(b"CSWK\x01\x02m1"), len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[pos] ^= 0x80
        with pytest.raises(AudioIntegrityError) as info:
            unwrap_key(bytes(tampered), {"m1": MASTER_1}, data_key_id="rec-1")
        assert str(info.value) == "wrapped data key failed its integrity check"


def test_wrapped_key_is_bound_to_its_recording_and_master() -> None:
    wrapped = wrap_key(KEY, MASTER_1, "m1", data_key_id="rec-1")
    with pytest.raises(AudioIntegrityError, match=r"^wrapped data key failed its integrity"):
        unwrap_key(wrapped, {"m1": MASTER_1}, data_key_id="rec-2")
    with pytest.raises(AudioIntegrityError, match=r"^wrapped data key failed its integrity"):
        unwrap_key(wrapped, {"m1": MASTER_2}, data_key_id="rec-1")
    with pytest.raises(AudioKeyError, match=r"^master key not found$"):
        unwrap_key(wrapped, {"m2": MASTER_1}, data_key_id="rec-1")


def test_rotation_rewraps_without_touching_the_audio() -> None:
    data_key = new_data_key()
    sealed = encrypt(PLAIN, data_key, key_id="rec-9")
    old = wrap_key(data_key, MASTER_1, "m1", data_key_id="rec-9")
    new = rewrap_key(old, {"m1": MASTER_1}, MASTER_2, "m2", data_key_id="rec-9")
    assert WrappedKey.parse(new).master_key_id == "m2"
    # the old master key can be retired: only m2 is needed from now on
    recovered = unwrap_key(new, {"m2": MASTER_2}, data_key_id="rec-9")
    assert decrypt(sealed, recovered) == PLAIN
    with pytest.raises(AudioKeyError, match=r"^master key not found$"):
        unwrap_key(new, {"m1": MASTER_1}, data_key_id="rec-9")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"CS", "wrapped key truncated"),
        (b"XXXX\x01\x00" + bytes(76), "not a wrapped data key"),
        (b"CSWK\x01\x00" + bytes(59), "wrapped key has the wrong length"),
        (b"CSWK\x01\x00" + bytes(61), "wrapped key has the wrong length"),
        (b"CSWK\x01\x01\xff" + bytes(60), "wrapped key id is not UTF-8"),
    ],
)
def test_malformed_wrapped_keys(data: bytes, message: str) -> None:
    with pytest.raises(AudioParseError) as info:
        WrappedKey.parse(data)
    assert str(info.value) == message
