"""The per-call spool: round trip, flush policy, crash tolerance, and a fuzzed reader."""

from __future__ import annotations

import contextlib
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.audio.errors import AudioError, AudioParseError, AudioRangeError
from callscope.audio.packets import Direction, MediaPacket
from callscope.audio.spool import (
    MAX_PAYLOAD,
    FlushPolicy,
    SpoolHeader,
    SpoolWriter,
    done_path,
    encode_record,
    read_spool,
    read_spool_file,
)
from callscope.audio.timeline import CallAudio, render_call

from .test_oracle import Call

START = 1_795_906_132_617_886_000


def packets(count: int, ssrc: int = 7) -> list[MediaPacket]:
    at = [START + i * 20_000_000 for i in range(count)]
    return [
        MediaPacket(at[i], ssrc, i & 0xFFFF, i * 160, 0, i == 0, bytes([i % 256]) * 160)
        for i in range(count)
    ]


def write_call(path: Path, count: int = 10, policy: FlushPolicy | None = None) -> Path:
    writer = SpoolWriter.create(path, "call-1@example", START, policy)
    for i, pkt in enumerate(packets(count)):
        writer.append(Direction(i % 2), pkt)
    return writer.finish()


def test_round_trip_through_a_finished_spool(tmp_path: Path) -> None:
    spool = tmp_path / "call.spool"
    final = write_call(spool, 25)
    assert final == done_path(spool) == tmp_path / "call.spool.done"
    assert final.exists() and not spool.exists()
    contents = read_spool_file(final)
    assert contents.header == SpoolHeader("call-1@example", START)
    assert not contents.torn and len(contents.records) == 25
    assert [r.packet for r in contents.records] == packets(25)
    assert contents.packets(Direction.CALLER_TO_CALLEE) == packets(25)[0::2]
    assert contents.packets(Direction.CALLEE_TO_CALLER) == packets(25)[1::2]


def test_header_has_an_exact_inverse() -> None:
    header = SpoolHeader("通話-42", -5)
    assert SpoolHeader.parse(bytes(header)) == header


def test_record_layout() -> None:
    pkt = MediaPacket(START, 0xDEADBEEF, 65535, 0xFFFFFFFF, 101, True, b"\x01\x02")
    record = encode_record(Direction.CALLEE_TO_CALLER, pkt)
    body = record[6:]
    assert record[:2] == len(body).to_bytes(2, "big")
    assert record[2:6] == zlib.crc32(body).to_bytes(4, "big")
    assert body[:3] == b"\x01\x01\x65" and body.endswith(b"\x01\x02")


def test_flush_policy_decides_what_a_crash_can_lose(tmp_path: Path) -> None:
    path = tmp_path / "live.spool"
    writer = SpoolWriter.create(path, "c", START, FlushPolicy(every_records=4))
    for pkt in packets(7):
        writer.append(Direction.CALLER_TO_CALLEE, pkt)
    # a crash now (the process dies, nothing more written) keeps the first flush of 4
    assert len(read_spool_file(path).records) == 4
    writer.append(Direction.CALLER_TO_CALLEE, packets(8)[7])
    assert len(read_spool_file(path).records) == 8
    writer.close()
    assert path.exists() and not done_path(path).exists()  # unfinished stays unfinished


def test_fsync_policy_writes_through(tmp_path: Path) -> None:
    final = write_call(tmp_path / "s", 5, FlushPolicy(every_records=1, fsync_on_flush=True))
    assert len(read_spool_file(final).records) == 5


def test_spool_is_created_exclusively(tmp_path: Path) -> None:
    path = tmp_path / "dup.spool"
    SpoolWriter.create(path, "c", START).close()
    with pytest.raises(FileExistsError):
        SpoolWriter.create(path, "c", START)


def test_context_manager_closes_without_finishing(tmp_path: Path) -> None:
    path = tmp_path / "ctx.spool"
    with SpoolWriter.create(path, "c", START) as writer:
        writer.append(0, packets(1)[0])
    assert len(read_spool_file(path).records) == 1 and not done_path(path).exists()
    with pytest.raises(AudioRangeError, match=r"^spool writer is closed$"):
        writer.finish()


def test_oversized_payload_is_refused(tmp_path: Path) -> None:
    big = packets(1)[0]._replace(payload=bytes(MAX_PAYLOAD + 1))
    with pytest.raises(AudioRangeError, match=r"^payload too large for the spool$"):
        encode_record(0, big)
    assert len(encode_record(0, big._replace(payload=bytes(MAX_PAYLOAD)))) == 6 + 0xFFFF


def test_every_torn_tail_is_tolerated_and_reported(tmp_path: Path) -> None:
    data = write_call(tmp_path / "t", 3).read_bytes()
    last = len(encode_record(0, packets(3)[2]))
    for cut in range(1, last):
        contents = read_spool(data[:-cut])
        assert len(contents.records) == 2
        assert contents.torn and contents.torn_bytes == last - cut


def test_garbage_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    data = bytearray(write_call(tmp_path / "g", 3).read_bytes())
    data[-5] ^= 0xFF  # the crc of the last record no longer matches
    contents = read_spool(bytes(data))
    assert len(contents.records) == 2 and contents.torn


def test_zero_filled_tail_after_power_loss_is_a_torn_tail(tmp_path: Path) -> None:
    data = write_call(tmp_path / "z", 3).read_bytes() + bytes(4096)
    contents = read_spool(data)
    assert len(contents.records) == 3 and contents.torn_bytes == 4096


def test_damage_before_more_records_is_an_error(tmp_path: Path) -> None:
    data = bytearray(write_call(tmp_path / "d", 3).read_bytes())
    header_size = len(bytes(SpoolHeader("call-1@example", START)))
    data[header_size + 10] ^= 0xFF  # inside the first record's body
    with pytest.raises(AudioParseError, match=r"^spool record damaged$"):
        read_spool(bytes(data))


def test_a_valid_record_with_impossible_fields_is_malformed() -> None:
    header = bytes(SpoolHeader("c", START))
    body = b"\x07" + bytes(20)  # direction 7
    record = len(body).to_bytes(2, "big") + zlib.crc32(body).to_bytes(4, "big") + body
    with pytest.raises(AudioParseError, match=r"^spool record malformed$"):
        read_spool(header + record)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"CSS", "spool header truncated"),
        (b"XXXX" + bytes(12), "not a spool file"),
        (b"CSSP\x02" + bytes(11), "unsupported spool version"),
        (b"CSSP\x01\x00\x00\x09" + bytes(8) + b"abc", "spool header truncated"),
        (b"CSSP\x01\x00\x00\x01" + bytes(8) + b"\xff", "spool call ref is not UTF-8"),
    ],
)
def test_malformed_headers(data: bytes, message: str) -> None:
    with pytest.raises(AudioParseError) as info:
        read_spool(data)
    assert str(info.value) == message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_reader_raises_only_audio_errors(data: bytes) -> None:
    for blob in (data, bytes(SpoolHeader("c", START)) + data):
        with contextlib.suppress(AudioError):
            read_spool(blob)


VALID = b"".join(
    [bytes(SpoolHeader("c", START)), *(encode_record(i % 2, p) for i, p in enumerate(packets(4)))]
)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255), st.integers(0, len(VALID)))
def test_fuzz_mutated_spool_raises_only_audio_errors(pos: int, flip: int, cut: int) -> None:
    data = bytearray(VALID)
    data[pos] ^= flip
    with contextlib.suppress(AudioError):
        contents = read_spool(bytes(data[:cut]))
        assert len(contents.records) <= 4


def test_spooled_call_renders_like_the_capture(testdata: Path, tmp_path: Path) -> None:
    call = Call(testdata)
    writer = SpoolWriter.create(tmp_path / "baresip.spool", "40c45bfc8738458a", call.t_invite)
    merged = [(p, Direction.CALLER_TO_CALLEE) for p in call.caller_to_callee] + [
        (p, Direction.CALLEE_TO_CALLER) for p in call.callee_to_caller
    ]
    for pkt, direction in sorted(merged, key=lambda m: m[0].arrival_ns):
        writer.append(direction, pkt)
    contents = read_spool_file(writer.finish())
    direct = render_call(call.caller_to_callee, call.callee_to_caller, {}, call.t_invite)
    spooled = render_call(
        contents.packets(Direction.CALLER_TO_CALLEE),
        contents.packets(Direction.CALLEE_TO_CALLER),
        {},
        contents.header.started_ns,
    )
    assert isinstance(direct, CallAudio) and isinstance(spooled, CallAudio)
    assert np.array_equal(direct.caller, spooled.caller)
    assert np.array_equal(direct.callee, spooled.callee)
