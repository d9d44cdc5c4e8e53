"""Turn the MiaRec SIPp templates in testdata/siprec/miarec into the bytes SIPp would send.

SIPp replaces its ``[keyword]`` fields, sends CRLF line ends and fills ``[len]`` with the
body's byte length; this does the same with fixed documentation addresses.
"""

from __future__ import annotations

import re
from pathlib import Path

_VALUES = {
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
    "media_port": "6000",
}
_KEYWORD = re.compile(r"\[(\w+)(?:\+(\d+))?\]")


def _value(match: re.Match[str]) -> str:
    name, offset = match.group(1), match.group(2)
    if name in ("auto_media_port", "media_port"):
        return str(6000 + int(offset or 0))
    if name == "len":
        return match.group(0)
    return _VALUES[name]


def sipp_message(template: Path) -> bytes:
    """The message a SIPp ``<send>`` with this template puts on the wire."""
    text = template.read_text(encoding="utf-8").strip("\n")
    text = _KEYWORD.sub(_value, text).replace("\r\n", "\n").replace("\n", "\r\n")
    head, sep, body = text.partition("\r\n\r\n")
    data = (head + sep + body).encode("utf-8")
    length = len(body.encode("utf-8"))
    return data.replace(b"[len]", str(length).encode("ascii"), 1)


def miarec_templates(testdata: Path) -> list[Path]:
    return sorted((testdata / "siprec" / "miarec").glob("*.sipp-template.txt"))
