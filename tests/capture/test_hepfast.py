"""The compiled `hep_fields` gives what the Python one gives, for any input."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscope.capture import hepdecode, hepwalk
from callscope.core.compiled import compiled_module
from callscope.protocol.hep import HepChunk, HepChunkType, HepPacket, HepProtoType
from tests.capture.test_hepdecode import (
    AT,
    EXTRA,
    FIELDS,
    INVITE,
    A,
    _mutations,
    hep,
    hep_datagrams,
)

_hepfast = compiled_module("callscope.capture._hepfast")
pytestmark = pytest.mark.skipif(_hepfast is None, reason="the compiled twin is not built")


def assert_twins(data: bytes) -> None:
    compiled = _hepfast.hep_fields(data)
    walked, by_layout = hepwalk.hep_fields(data), hepwalk.hep_fields(data)
    assert compiled == walked == by_layout


def test_the_decoder_uses_the_twin() -> None:
    assert hepdecode.hep_fields is _hepfast.hep_fields


def test_reference_captures(testdata: Path) -> None:
    names = ("hep.pcap", "hep3_compressed.pcap.pcapng", "kamailio_5calls_hep_only.pcap")
    for name in names:
        for data in hep_datagrams(testdata / "hep" / name):
            assert_twins(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HEP3",
        b"HEP3\x00\x06",
        b"HEP3\x00\x07\x00",
        b"HEP3\x00\x0c\x00\x00\x00\x0b\x00\x05",  # a chunk shorter than its header
        b"HEP3\x00\x0c\x00\x00\x00\x0b\x00\x09",  # a chunk past the end
        hep(compress=True),
        hep(b"", proto_type=HepProtoType.RTCP_JSON),
        hep(auth_key="\u9375\x00"),
        hep(auth_key="key\x00"),
        bytes(HepPacket(chunks=tuple(c for c in HepPacket.parse(hep()).chunks if c.type != 9))),
        bytes(HepPacket(chunks=tuple(c for c in HepPacket.parse(hep()).chunks if c.type != 10))),
        bytes(HepPacket(chunks=tuple(c for c in HepPacket.parse(hep()).chunks if c.type != 7))),
        bytes(HepPacket(version=2, src=A, dst=A, at=AT, payload=INVITE, ip_family=2, ip_proto=17)),
    ],
)
def test_edge_cases(data: bytes) -> None:
    assert_twins(data)


def test_addresses_of_both_families_or_one_side_defer() -> None:
    chunks = list(HepPacket.parse(hep()).chunks)
    v6 = HepChunk(0, HepChunkType.IPV6_SRC, bytes(16))
    one_side = [c for c in chunks if c.type != HepChunkType.IPV4_DST]
    for variant in ([*chunks, v6], one_side):
        data = bytes(HepPacket(chunks=tuple(variant)))
        assert _hepfast.hep_fields(data) is None
        assert_twins(data)


def test_a_repeated_chunk_counts_its_last_value() -> None:
    chunks = list(HepPacket.parse(hep(capture_id=1)).chunks)
    chunks.insert(0, HepChunk(0, HepChunkType.CAPTURE_ID, struct.pack("!I", 9)))
    chunks.append(HepChunk(0, HepChunkType.CAPTURE_ID, struct.pack("!I", 7)))
    data = bytes(HepPacket(chunks=tuple(chunks)))
    fields = _hepfast.hep_fields(data)
    assert fields is not None and fields[5] == 7
    assert_twins(data)


@given(FIELDS, EXTRA, st.binary(max_size=60))
def test_built_packets(fields: dict[str, object], extra: list[HepChunk], payload: bytes) -> None:
    built = HepPacket.build(payload=INVITE + payload, src=A, dst=A, at=AT, **fields)  # type: ignore[arg-type]
    assert_twins(bytes(HepPacket(chunks=built.chunks + tuple(extra))))


@given(FIELDS, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6))
def test_damaged_packets(fields: dict[str, object], cuts: list[tuple[int, int]]) -> None:
    assert_twins(_mutations(hep(**fields), cuts))  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_twins(data)
    assert_twins(b"HEP3" + struct.pack("!H", len(data) + 6) + data)
