"""The SIPREC listener on real sockets (127.0.0.1): UDP, TCP and TLS clients, RTP ports
bound and released, idle sessions ended with a BYE."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callscope.assembly.siprec import SiprecAssembler
from callscope.capture.siprec import SiprecSource
from callscope.capture.siprec_sockets import TlsFiles
from callscope.core import Datagram, Endpoint, Transport
from callscope.protocol.sip import SipMessage
from callscope.protocol.sipframing import SipFramer
from tests.assembly._wire import rtp
from tests.protocol.test_siprec_uas import multipart, request

LOCAL = "127.0.0.1"


def invite(call_id: str = "sock-1@127.0.0.1", transport: str = "UDP", port: int = 0) -> bytes:
    data = request(
        "INVITE", branch=f"z9hG4bK{call_id[:6]}", cseq=1, body=multipart(),
        ctype="multipart/mixed;boundary=b1", extra="Require: siprec\r\n", call_id=call_id,
    )  # fmt: skip
    return data.replace(
        b"SIP/2.0/UDP 192.0.2.1:5060", f"SIP/2.0/{transport} {LOCAL}:{port}".encode()
    )


def in_dialog(
    method: str, cseq: int, tag: str, port: int, call_id: str = "sock-1@127.0.0.1"
) -> bytes:
    data = request(method, branch=f"z9hG4bK{method}{cseq}", cseq=cseq, to_tag=tag, call_id=call_id)
    return data.replace(b"SIP/2.0/UDP 192.0.2.1:5060", f"SIP/2.0/UDP {LOCAL}:{port}".encode())


@pytest.fixture
def source() -> Iterator[SiprecSource]:
    found = SiprecSource(Endpoint(LOCAL, 0), rtp_ports=range(47000, 47100))
    yield found
    found.close()


def pump(source: SiprecSource, rounds: int = 5) -> list[Datagram]:
    seen: list[Datagram] = []
    for _ in range(rounds):
        seen.extend(source.read_batch(0.05))
    return seen


def answers(client: socket.socket) -> list[SipMessage]:
    client.settimeout(0.2)
    found = []
    while True:
        try:
            found.append(SipMessage.parse(client.recv(65_535)))
        except TimeoutError:
            return found


def test_udp_session_with_rtp_and_a_record(source: SiprecSource) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind((LOCAL, 0))
        port = client.getsockname()[1]
        client.sendto(invite(port=port), (LOCAL, source.address.port))
        seen = pump(source)
        trying, ok = answers(client)
        assert (trying.status_code, ok.status_code) == (100, 200)
        rtp_ports = [int(line.split()[1]) for line in ok.body.decode().splitlines()
                     if line.startswith("m=")]  # fmt: skip
        assert sorted(source.ports.sockets) == rtp_ports and source.sessions == 1
        tag = ok.to_tag or ""
        client.sendto(in_dialog("ACK", 1, tag, port), (LOCAL, source.address.port))
        for seq in range(10):
            for index, rtp_port in enumerate(rtp_ports):
                client.sendto(rtp(seq, seq * 160, 7 + index, pt=8), (LOCAL, rtp_port))
        seen += pump(source)
        client.sendto(in_dialog("BYE", 2, tag, port), (LOCAL, source.address.port))
        seen += pump(source)
        bye_ok = [m for m in answers(client) if m.cseq == (2, "BYE")]
        assert [m.status_code for m in bye_ok] == [200]
    assert source.ports.sockets == {} and source.sessions == 0
    assert all(d.source == "siprec" and d.transport is Transport.UDP for d in seen)
    sip = [d.payload for d in seen if d.payload[:1] != b"\x80"]
    firsts = [SipMessage.parse(m) for i, m in enumerate(sip) if m not in sip[:i]]  # no resends
    assert [m.method or m.status_code for m in firsts] == ["INVITE", 100, 200, "ACK", "BYE", 200]
    media = [d for d in seen if d.payload[:1] == b"\x80"]
    assert len(media) == 20 and {d.dst for d in media} == {Endpoint(LOCAL, p) for p in rtp_ports}
    counters = source.counters
    assert (counters.rtp, counters.sip_received) == (20, 3) and counters.sip_sent >= 3
    assert (counters.sessions_started, counters.sessions_ended) == (1, 1)
    # what the listener saw is what the assembler needs for the call record
    assembler = SiprecAssembler()
    for dgram in seen:
        assembler.receive(dgram)
    (ended,) = assembler.finish()
    record = ended.record  # type: ignore[union-attr]
    assert (record.caller.number, record.callee.number) == ("0312345678", "2001")
    assert {(s.direction, s.packets) for s in record.streams} == {
        ("caller_to_callee", 10), ("callee_to_caller", 10)
    }  # fmt: skip


def test_tcp_client_gets_its_answers_on_the_connection(source: SiprecSource) -> None:
    with socket.create_connection((LOCAL, source.address.port)) as client:
        port = client.getsockname()[1]
        client.sendall(invite(call_id="tcp-1@127.0.0.1", transport="TCP", port=port))
        pump(source)
        client.settimeout(1)
        framer = SipFramer()
        messages: list[bytes] = []
        while len(messages) < 2:
            messages.extend(framer.feed(client.recv(65_535)))
        trying, ok = (SipMessage.parse(m) for m in messages)
        assert (trying.status_code, ok.status_code) == (100, 200)
        assert ok.header("contact") == f"<sip:srs@{LOCAL}:{source.address.port};transport=tcp>"
    pump(source)  # the client hung up: the connection is dropped, the session stays
    assert source.counters.tcp_accepted == 1 and source.sessions == 1


def self_signed(folder: Path) -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "srs.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    return files


def test_tls_listener_on_the_next_port(tmp_path: Path) -> None:
    source = SiprecSource(
        Endpoint(LOCAL, 0), rtp_ports=range(47200, 47300), tls=self_signed(tmp_path)
    )
    try:
        assert source.tls_address == Endpoint(LOCAL, source.address.port + 1)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((LOCAL, source.address.port + 1))
        raw.setblocking(False)
        client = context.wrap_socket(raw, do_handshake_on_connect=False)
        for _ in range(50):
            source.read_batch(0.02)
            try:
                client.do_handshake()
                break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
        client.setblocking(True)
        client.sendall(invite(call_id="tls-1@127.0.0.1", transport="TLS"))
        seen = pump(source)
        client.settimeout(1)
        framer = SipFramer()
        messages: list[bytes] = []
        while len(messages) < 2:
            messages.extend(framer.feed(client.recv(65_535)))
        assert [SipMessage.parse(m).status_code for m in messages] == [100, 200]
        assert {d.transport for d in seen} == {Transport.TLS}
        client.close()
    finally:
        source.close()


def test_idle_session_is_ended_with_a_bye_and_close_ends_the_rest() -> None:
    now = [1_700_000_000 * 1_000_000_000]
    source = SiprecSource(
        Endpoint(LOCAL, 0), rtp_ports=range(47400, 47500), idle_timeout_s=60,
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind((LOCAL, 0))
            port = client.getsockname()[1]
            for call in ("idle-1@x", "idle-2@x"):
                client.sendto(invite(call_id=call, port=port), (LOCAL, source.address.port))
            pump(source)
            oks = [m for m in answers(client) if m.status_code == 200]
            for ok in oks:
                ack = in_dialog("ACK", 1, ok.to_tag or "", port, call_id=ok.call_id or "")
                client.sendto(ack, (LOCAL, source.address.port))
            pump(source)
            assert source.sessions == 2 and len(source.ports.sockets) == 4
            now[0] += 59 * 1_000_000_000
            first_ports = sorted(source.ports.sockets)[:2]
            client.sendto(rtp(1, 160, 9), (LOCAL, first_ports[0]))  # keeps one session alive
            assert len(pump(source)) == 1
            now[0] += 2 * 1_000_000_000
            seen = pump(source)
            byes = [m for m in answers(client) if m.method == "BYE"]
            assert len(byes) == 1 and source.sessions == 1
            assert source.counters.idle_ended == 1
            assert [SipMessage.parse(d.payload).method for d in seen] == ["BYE"]
        source.close()
        assert source.sessions == 0 and source.ports.sockets == {}
    finally:
        source.close()


def test_released_ports_can_be_bound_again(source: SiprecSource) -> None:
    ports = source.ports.allocate(3)
    assert ports is not None and ports[1:] == [ports[0] + 2, ports[0] + 4] and ports[0] % 2 == 0
    for port in ports:
        source.ports.release(port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCAL, ports[1]))


def test_ports_of_an_answer_run_together_around_busy_ones() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((LOCAL, 47602))  # another program holds one port of the range
        source = SiprecSource(Endpoint(LOCAL, 0), rtp_ports=range(47600, 47610))
        try:
            first = source.ports.allocate(2)
            second = source.ports.allocate(2)
            assert (first, second) == ([47604, 47606], None)  # no second run of two is free
            assert source.ports.allocate(1) == [47608]
            assert source.ports.allocate(1) == [47600]
            assert source.ports.allocate(1) is None and source.ports.failed_binds >= 1
        finally:
            source.close()
