"""SIPREC samples from testdata/siprec as the bytes a recording server receives.

The MiaRec templates are SIPp ``<send>`` bodies: SIPp strips each line's leading
whitespace, replaces ``[keyword]`` fields, injects ``[fieldN file="x.csv"]`` values from
CSV files and fills ``[len]`` with the body's byte length; a few templates were extracted
together with the 3PCC ``<sendCmd>`` before them, so the message starts after the last
``<![CDATA[``. This does what SIPp would do, with fixed documentation addresses.
"""

from __future__ import annotations

import re
from pathlib import Path

from callscope.protocol.multipart import parse_multipart

VALUES = {
    "local_ip": "192.0.2.1",
    "remote_ip": "192.0.2.2",
    "local_port": "5060",
    "remote_port": "5080",
    "transport": "UDP",
    "call_id": "1-4242@192.0.2.1",
    "branch": "z9hG4bK-4242-1-0",
    "pid": "4242",
    "call_number": "1",
    "peer_tag_param": ";tag=4242SIPpTag011",
    "cseq": "1",
    "service": "service",
}
# CSV injection values (the suite's tenant-users.csv and callee.csv are not in testdata)
FIELDS = {
    ("tenant-users.csv", "0"): "7602922410",
    ("tenant-users.csv", "1"): "User 2410",
    ("tenant-users.csv", "2"): "MiaRec Inc.",
    ("tenant-users.csv", "3"): "mammoth",
    ("callee.csv", "0"): "7602922411",
}
_FIELD = re.compile(r'\[field(\d+) file="([^"]+)"\]')
_KEYWORD = re.compile(r"\[(\w+)(?:\+(\d+))?\]")


def _keyword(match: re.Match[str]) -> str:
    name, offset = match.group(1), match.group(2)
    if name in ("auto_media_port", "media_port"):
        return str(6000 + int(offset or 0))
    if name == "len":
        return match.group(0)
    return VALUES[name]


def sipp_send(text: str) -> bytes:
    """The bytes SIPp puts on the wire for a ``<send>`` body."""
    if "<![CDATA[" in text:
        text = text.rsplit("<![CDATA[", 1)[1]
    text = text.split("]]>", 1)[0].strip("\n")
    text = "\n".join(line.lstrip() for line in text.split("\n"))
    text = _FIELD.sub(lambda m: FIELDS[(m.group(2), m.group(1))], text)
    text = _KEYWORD.sub(_keyword, text).replace("\r\n", "\n").replace("\n", "\r\n")
    head, sep, body = text.partition("\r\n\r\n")
    data = (head + sep + body).encode("utf-8")
    return data.replace(b"[len]", str(len(body.encode("utf-8"))).encode("ascii"), 1)


def miarec_messages(testdata: Path) -> list[tuple[str, bytes]]:
    """Every MiaRec template as ``(file name, message bytes)``."""
    folder = testdata / "siprec" / "miarec"
    return [
        (path.name, sipp_send(path.read_text(encoding="utf-8")))
        for path in sorted(folder.glob("*.sipp-template.txt"))
    ]


def drachtio_parts(testdata: Path, name: str) -> dict[str, bytes]:
    """The parts of a drachtio multipart body by MIME type (boundary from the body)."""
    body = (testdata / "siprec" / "drachtio" / name).read_bytes()
    return {part.mime: part.body for part in parse_multipart(body, None)}


def as_invite(body: bytes, boundary: str | None = None, *, headers: str = "") -> bytes:
    """A SIPREC INVITE around a multipart ``body`` (for bodies logged without headers)."""
    if boundary is None:
        boundary = body.lstrip().split(b"\n", 1)[0].strip()[2:].decode("utf-8")
    head = (
        "INVITE sip:srs@192.0.2.2:5080 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-body\r\n"
        "From: <sip:src@192.0.2.1>;tag=src1\r\n"
        "To: <sip:srs@192.0.2.2>\r\n"
        "Call-ID: body-1@192.0.2.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:src@192.0.2.1:5060>;+sip.src\r\n"
        "Require: siprec\r\n"
        f"{headers}"
        f"Content-Type: multipart/mixed;boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("utf-8") + body
