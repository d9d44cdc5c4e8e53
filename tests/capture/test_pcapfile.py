"""Capture file readers: every shared capture, synthetic pcap/pcapng variants, truncation."""

from __future__ import annotations

import gzip
import io
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscope.capture.errors import CaptureParseError, CaptureTruncatedError
from callscope.capture.pcapfile import open_capture
from callscope.capture.records import MESSAGES
from tests.capture import wire

# Records per file, verified with tshark 4.0.17: `capinfos -c -M FILE` (the same numbers as
# `tshark -r FILE -q -z io,stat,0`). Paths are relative to ../shared/testdata.
RECORDS = {
    "pcap/Asterisk_ZFONE_XLITE.pcap": 1042,
    "pcap/DTMFsipinfo.pcap": 32,
    "pcap/SIP_CALL_RTP_G711": 4269,
    "pcap/SIP_DTMF2.cap": 1360,
    "pcap/b2bua-asterisk.pcapng": 416,
    "pcap/c07-sip-r2.cap": 39,  # Microsoft NetMon 2.x
    "pcap/codec-negotiation.pcap": 614,
    "pcap/h263-over-rtp.pcap": 49,
    "pcap/invite-opus-bye.pcap": 311,
    "pcap/metasploit-sip-invite-spoof.pcap": 3,
    "pcap/register-invite-reinvite-bye.pcap": 230,
    "pcap/rtp-protocol.pcap": 259,
    "pcap/sip-488-codec-reject.pcapng": 13,
    "pcap/sip-auth-failure.pcapng": 8,
    "pcap/sip-over-tcp.pcap": 84,
    "pcap/sip-proxy.pcap": 11,
    "pcap/sip-register.pcap": 2,
    "pcap/sip-routing-error.pcapng": 58,
    "pcap/sip-rtp-g711.pcap": 852,
    "pcap/sip-rtp-g722.pcap": 433,
    "pcap/sip-rtp-g729a.pcap": 433,
    "pcap/sip-rtp-opus-hybrid.pcap": 7,
    "pcap/sip-sdp-example.pcap": 7,
    "pcap/sipp-branch-scenario.pcapng": 8989,
    "pcap/rtp-only/09a_2833_dtmf.pcap": 2167,
    "pcap/rtp-only/10a_g722.pcap": 972,
    "pcap/rtp-only/11a_g721.pcap": 9715,
    "pcap/rtp-only/12a_g729.pcap": 1073,
    "pcap/rtp-only/g722_108s.pcap": 5413,
    **{f"pcap/rtp-only/sipp_dtmf_2833_{d}.pcap": 10 for d in [*"0123456789", "pound", "star"]},
    "pcap/rtp-only/sipp_g711a.pcap": 236,
    "pcap/rtp-only/speech_8k_ulaw.pcap": 835,
    "generated/baresip_call_pcmu_8s.pcap": 814,
    "generated/sipp_20calls_g711a_dtmf.pcap": 9960,
    "hep/hep.pcap": 8,
    "hep/hep3_compressed.pcap.pcapng": 21,
    "hep/kamailio_5calls_hep_only.pcap": 65,  # a pcapng file despite its name
    "hep/kamailio_5calls_sip_and_hep.pcap": 130,
}

# first and last record: (epoch ns, captured length), from
# `tshark -r FILE -T fields -e frame.time_epoch -e frame.cap_len`
EDGES = {
    "pcap/sipp-branch-scenario.pcapng": ((1479419555303348707, 330), (1479419688603277042, 340)),
    "pcap/c07-sip-r2.cap": ((1121614760502000000, 92), (1121614772454000000, 740)),
    "hep/hep3_compressed.pcap.pcapng": ((1502941090317366997, 803), (1502941090723781897, 807)),
    "pcap/rtp-only/speech_8k_ulaw.pcap": ((0, 216), (16680000000, 216)),
}


def capture_files(root: Path) -> list[Path]:
    skip = {".md", ".json", ".txt", ".wav", ".jsonl"}
    folders = ["pcap", "pcap/rtp-only", "generated", "hep"]
    return sorted(
        path
        for folder in folders
        for path in (root / folder).iterdir()
        if path.is_file() and path.suffix not in skip
    )


def test_every_shared_capture_is_known(testdata: Path) -> None:
    found = {str(path.relative_to(testdata)) for path in capture_files(testdata)}
    assert found == set(RECORDS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_reads_every_record_of_shared_captures(testdata: Path, name: str) -> None:
    with open_capture(testdata / name) as capture:
        records = list(capture)
    assert len(records) == RECORDS[name]
    assert capture.records == RECORDS[name]
    assert all(len(data) <= orig for _at, _lt, data, orig in records)
    if name in EDGES:
        first, last = EDGES[name]
        assert (records[0][0], len(records[0][2])) == first
        assert (records[-1][0], len(records[-1][2])) == last


def test_link_types_of_shared_captures(testdata: Path) -> None:
    def linktypes(name: str) -> set[int]:
        return {linktype for _at, linktype, _d, _o in open_capture(testdata / name)}

    assert linktypes("pcap/h263-over-rtp.pcap") == {0}  # BSD loopback
    assert linktypes("pcap/rtp-only/speech_8k_ulaw.pcap") == {113}  # Linux cooked
    assert linktypes("hep/hep3_compressed.pcap.pcapng") == {113}
    assert linktypes("pcap/c07-sip-r2.cap") == {1}


# -- classic pcap variants -----------------------------------------------------------------

FRAMES = [(1_700_000_000_123_456_789, b"first frame"), (1_700_000_001_000_000_001, b"x" * 70)]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(big: bool, nano: bool) -> None:
    data = wire.pcap(FRAMES, linktype=113, big=big, nano=nano, network_extra=0x14000000)
    records = list(open_capture(io.BytesIO(data)))
    expected_at = [at if nano else at // 1000 * 1000 for at, _ in FRAMES]
    assert [r[0] for r in records] == expected_at
    assert [(r[1], r[2], r[3]) for r in records] == [(113, d, len(d)) for _, d in FRAMES]


def test_pcap_kuznetzov_variant() -> None:
    # magic 0xa1b2cd34: 8 more bytes (ifindex, protocol, pkt_type, pad) per record header
    out = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    for at, data in FRAMES:
        sec, ns = divmod(at, 1_000_000_000)
        out += struct.pack("<IIII", sec, ns // 1000, len(data), len(data)) + bytes(8) + data
    assert [r[2] for r in open_capture(io.BytesIO(out))] == [d for _, d in FRAMES]


def test_pcap_record_length_limit() -> None:
    data = wire.pcap(FRAMES)[:24] + struct.pack("<IIII", 0, 0, 300_000, 300_000)
    with pytest.raises(CaptureParseError) as err:
        list(open_capture(io.BytesIO(data)))
    assert str(err.value) == "record length exceeds limit"


def test_pcap_bad_version() -> None:
    data = bytearray(wire.pcap(FRAMES))
    data[4] = 9
    with pytest.raises(CaptureParseError) as err:
        list(open_capture(io.BytesIO(bytes(data))))
    assert str(err.value) == "capture file version not supported"


# -- pcapng ---------------------------------------------------------------------------------


def two_sections() -> tuple[bytes, list[tuple[int, int, bytes, int]]]:
    """Section 1 little-endian, two interfaces (ns resolution + offset, 2^-10 s); section 2
    big-endian with its own interface; EPB, SPB, obsolete PB and unknown blocks between."""
    le, be = "<", ">"
    a, b, c, d = b"alpha", b"bravo-frame", b"charlie", b"delta!"
    out = wire.shb(le)
    out += wire.idb(le, 1, tsresol=9, tsoffset=100)
    out += wire.idb(le, 101, tsresol=0x80 | 10)
    out += wire.block(le, 0x0BAD, b"custom block body")  # custom block: skipped
    out += wire.epb(le, 0, 1_000_000_123, a)
    out += wire.block(le, 4, b"\0" * 4)  # name resolution block: skipped
    out += wire.epb(le, 1, 3 * 1024 + 512, b)  # 3.5 s at 2^-10 s
    out += wire.block(le, 5, struct.pack("<III", 0, 0, 0))  # interface statistics: skipped
    out += wire.shb(be)
    out += wire.idb(be, 113)  # default resolution: microseconds
    out += wire.obsolete_pb(be, 0, 2_000_000, c)
    out += wire.spb(be, d)
    expected = [
        (100 * 10**9 + 1_000_000_123, 1, a, len(a)),
        (3_500_000_000, 101, b, len(b)),
        (2_000_000_000, 113, c, len(c)),
        (2_000_000_000, 113, d, len(d)),  # SPB: no timestamp, keeps the previous one
    ]
    return out, expected


def test_pcapng_sections_interfaces_and_block_types() -> None:
    data, expected = two_sections()
    assert list(open_capture(io.BytesIO(data))) == expected


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:8] + b"\x01\x02\x03\x04" + d[12:], "pcapng byte-order magic invalid"),
        (lambda d: d[:12] + b"\x02\x00" + d[14:], "capture file version not supported"),
        (lambda d: d[:-4] + b"\x99\x00\x00\x00", "pcapng block trailer does not match its length"),
        (lambda d: d[:4] + b"\x0d\x00\x00\x00" + d[8:], "pcapng block length invalid"),
    ],
)
def test_pcapng_damaged_blocks(mutate: object, message: str) -> None:
    data = wire.shb("<") + wire.idb("<", 1) + wire.epb("<", 0, 5, b"frame")
    with pytest.raises(CaptureParseError) as err:
        list(open_capture(io.BytesIO(mutate(data))))  # type: ignore[operator]
    assert str(err.value) == message


def test_pcapng_unknown_interface() -> None:
    data = wire.shb("<") + wire.idb("<", 1) + wire.epb("<", 1, 5, b"frame")
    with pytest.raises(CaptureParseError) as err:
        list(open_capture(io.BytesIO(data)))
    assert str(err.value) == "pcapng packet refers to an unknown interface"


def test_pcapng_captured_length_beyond_block() -> None:
    data = bytearray(wire.shb("<") + wire.idb("<", 1) + wire.epb("<", 0, 5, b"frame..."))
    struct.pack_into("<I", data, len(data) - 40 + 20, 500)  # captured length of the EPB
    with pytest.raises(CaptureParseError) as err:
        list(open_capture(io.BytesIO(bytes(data))))
    assert str(err.value) == "pcapng packet data exceeds its block"


# -- garbage, empty, compressed, NetMon ------------------------------------------------------


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    with pytest.raises(CaptureParseError) as err:
        open_capture(garbage)
    assert str(err.value) == "capture file format not recognised"
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureParseError) as err:
        open_capture(empty)
    assert str(err.value) == "capture file is empty"


def test_gzip_compressed_capture(testdata: Path) -> None:
    raw = (testdata / "pcap/sip-over-tcp.pcap").read_bytes()
    packed = gzip.compress(raw)
    assert list(open_capture(io.BytesIO(packed))) == list(open_capture(io.BytesIO(raw)))
    capture = open_capture(io.BytesIO(packed[: len(packed) // 2]))
    got: list[tuple[int, int, bytes, int]] = []
    with pytest.raises(CaptureTruncatedError) as err:
        got.extend(capture)
    assert str(err.value) == "capture file ends inside a record"
    assert 0 < len(got) < 84
    assert got == list(open_capture(io.BytesIO(raw)))[: len(got)]


def test_netmon_cut_before_frame_table(testdata: Path) -> None:
    raw = (testdata / "pcap/c07-sip-r2.cap").read_bytes()
    capture = open_capture(io.BytesIO(raw[: len(raw) // 2]))
    with pytest.raises(CaptureTruncatedError) as err:
        list(capture)
    assert str(err.value) == "netmon frame table outside the file"


def test_messages_are_fixed_text() -> None:
    assert all("{" not in text and text == text.strip() for text in MESSAGES.values())


# -- truncation of real files ----------------------------------------------------------------


def packet_ends(data: bytes) -> list[int]:
    """Offsets where each packet record ends, walking the file independently of the reader."""
    if data[:4] == b"\n\r\r\n":
        ends, pos, order = [], 0, "<"
        while pos < len(data):
            if data[pos : pos + 4] == b"\n\r\r\n":
                order = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, size = struct.unpack_from(order + "II", data, pos)
            pos += size
            if btype in (2, 3, 6):
                ends.append(pos)
        return ends
    ends, pos = [], 24
    while pos < len(data):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        ends.append(pos)
    return ends


@pytest.mark.parametrize(
    "name",
    ["pcap/sip-over-tcp.pcap", "pcap/b2bua-asterisk.pcapng", "hep/hep3_compressed.pcap.pcapng"],
)
def test_cut_files_yield_every_complete_record_then_one_error(testdata: Path, name: str) -> None:
    raw = (testdata / name).read_bytes()
    full = list(open_capture(io.BytesIO(raw)))
    ends = packet_ends(raw)
    assert len(ends) == len(full)
    rng = random.Random(20261128)
    cuts = [rng.randrange(1, len(raw)) for _ in range(60)] + list(ends[:5]) + [len(raw) - 1]
    for cut in cuts:
        got: list[object] = []
        errors = []
        try:
            capture = open_capture(io.BytesIO(raw[:cut]))
            for record in capture:
                got.append(record)
        except CaptureParseError as exc:
            errors.append(exc)
        complete = sum(1 for end in ends if end <= cut)
        assert got == full[:complete], cut
        assert len(errors) <= 1
        if cut not in ends:
            assert len(errors) == 1 and isinstance(errors[0], CaptureTruncatedError), cut
            assert str(errors[0]) == "capture file ends inside a record"


# -- fuzz -----------------------------------------------------------------------------------


def read_all(data: bytes) -> None:
    try:
        for _record in open_capture(io.BytesIO(data)):
            pass
    except CaptureParseError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes_raise_only_parse_errors(data: bytes) -> None:
    read_all(data)


HEADERS = [
    wire.pcap([]),
    wire.pcap([], big=True, nano=True),
    wire.shb("<") + wire.idb("<", 1),
    wire.shb(">") + wire.idb(">", 1, tsresol=0x80 | 20, tsoffset=-5),
]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(HEADERS), st.binary(max_size=4096))
def test_fuzz_records_after_a_valid_header(header: bytes, body: bytes) -> None:
    read_all(header + body)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_pcapng(data: st.DataObject) -> None:
    raw, _expected = two_sections()
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    read_all(bytes(buf))
