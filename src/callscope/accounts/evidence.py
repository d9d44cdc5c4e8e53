"""The evidence package: the one way a recording leaves callscope (不当要求行為の証拠).

A zip file holding

- ``audio.ogg``: the decrypted recording (stereo Opus in Ogg, caller left, callee right),
- ``call.json``: the call record (the `call-record` contract, full numbers included),
- ``request.json``: the case: reference, reason, who requested, who approved and when,
  who exported and when,
- ``SHA256SUMS``: the SHA-256 of each file above, in the format ``sha256sum -c`` checks,
- ``README.txt``: how to check the package.

The SHA-256 of the zip itself is stored on the request and in the audit trail, and copied
into the hand-over record, so the recipient's copy can be matched to the export.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from callscope.accounts.models import EvidenceRequest, User
from callscope.store.models import Call, Recording
from callscope.store.recordings import OpenRecording

MANIFEST_NAME = "SHA256SUMS"
README = """\
callscope evidence package / 通話録音 証拠パッケージ

audio.ogg     recording (Ogg Opus, left: caller, right: callee) / 録音（左: 発信者、右: 着信者）
call.json     call record / 通話記録
request.json  case, request, approval and export / 案件・申請・承認・書き出しの記録
SHA256SUMS    SHA-256 of the files above / 上記ファイルの SHA-256

Check / 確認方法:  sha256sum -c SHA256SUMS
"""


@dataclass(frozen=True, slots=True)
class EvidencePackage:
    name: str
    data: bytes
    sha256: str
    manifest: dict[str, str]


def read_plaintext(recording: Recording) -> bytes:
    """Decrypt a whole recording (`store.recordings`: every chunk authenticated)."""
    return OpenRecording(recording).read()


def call_record(call: Call) -> dict[str, Any]:
    """The call as in `callscope import --json` (the stored record), with its database id."""
    record = dict(call.record) if call.record else {}
    record.setdefault("call_id", call.call_id)
    record.setdefault("started_at", call.started_at.astimezone(dt.UTC).isoformat())
    record.setdefault("caller", {"number": call.caller_number, "uri": call.caller_uri})
    record.setdefault("callee", {"number": call.callee_number, "uri": call.callee_uri})
    record.setdefault("result", call.result)
    record["callscope_id"] = call.pk
    return record


def _user(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"username": user.username, "name": user.display_name, "role": user.role}


def request_record(request: EvidenceRequest, exported_by: User, at: dt.datetime) -> dict[str, Any]:
    hold = request.hold
    return {
        "evidence_request": request.pk,
        "case_reference": request.case_reference,
        "reason": request.reason,
        "requested_by": _user(request.requested_by),
        "requested_at": request.requested_at.astimezone(dt.UTC).isoformat(),
        "approved_by": _user(request.decided_by),
        "approved_at": request.decided_at.astimezone(dt.UTC).isoformat()
        if request.decided_at
        else None,
        "legal_hold": hold.pk if hold else None,
        "exported_by": _user(exported_by),
        "exported_at": at.astimezone(dt.UTC).isoformat(),
    }


def _json(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def build_package(
    request: EvidenceRequest, call: Call, *, audio: bytes, exported_by: User
) -> EvidencePackage:
    """The zip (in memory: a recording is ~0.1 MB per minute) and its manifest."""
    at = timezone.now()
    files = {
        "audio.ogg": audio,
        "call.json": _json(call_record(call)),
        "request.json": _json(request_record(request, exported_by, at)),
    }
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    sums = "".join(f"{digest}  {name}\n" for name, digest in manifest.items()).encode()
    stamp = timezone.localtime(at).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in [*files.items(), (MANIFEST_NAME, sums), ("README.txt", README.encode())]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            # Opus is already compressed; the text files deflate well.
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".ogg") else zipfile.ZIP_DEFLATED
            )
            archive.writestr(info, data)
    data = buffer.getvalue()
    name = f"evidence-{request.pk}-{timezone.localtime(call.started_at):%Y%m%d-%H%M%S}.zip"
    return EvidencePackage(name, data, hashlib.sha256(data).hexdigest(), manifest)
