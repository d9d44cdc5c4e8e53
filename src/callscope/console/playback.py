"""Playback of a recording through HTTP range requests (RFC 9110 14), decrypting only the
container chunks that cover the requested bytes (`callscope.store.recordings.OpenRecording`,
the one place that unwraps data keys).

Only users with the audio right get the recording (`get_recording_for_listening`): others
get 403, and 404 when the call has no audio; their call page shows no player and no URL.

One audit entry per listening, not per range request: a browser fetches a recording in
many ranges (start, end for the duration, each seek); `note_playback` writes the entry for
the first request of a run and remembers it in the session.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from callscope.accounts.access import get_recording_for_listening, note_playback
from callscope.audio.errors import AudioError
from callscope.store.audiostore import AudioStoreError
from callscope.store.models import Recording
from callscope.store.recordings import OpenRecording

#: an open-ended range (``bytes=0-``, what media elements send) is answered with at most
#: this much; the browser asks for the rest as it plays
MAX_RANGE_BYTES = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
LISTENABLE = (Recording.Status.RECORDED, Recording.Status.PARTIAL)

log = logging.getLogger(__name__)


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the representation does not have (416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str, size: int, *, cap: int = MAX_RANGE_BYTES) -> ByteRange | None:
    """The single byte range ``header`` asks for, or None to send the whole representation.

    ``bytes=a-b``, ``bytes=a-`` (capped at ``cap`` bytes) and ``bytes=-n`` (the last n).
    Several ranges, other units or malformed values are ignored (RFC 9110 14.2: a server
    may ignore Range); a start at or after the end raises `RangeNotSatisfiable`.
    """
    match = _RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        start = max(0, size - suffix)
        return ByteRange(start, size - 1)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last == "":
        end = min(end, start + cap - 1)
    if end < start:
        return None
    return ByteRange(start, end)


@login_required
@require_GET
def call_audio(request: HttpRequest, call_id: int) -> HttpResponse:
    """The call's recording as Ogg/Opus with range support (audio right only)."""
    recording = get_recording_for_listening(request, call_id)
    if recording.status not in LISTENABLE or recording.state != Recording.State.DONE:
        raise Http404
    try:
        opened = OpenRecording(recording)
        size = opened.length
        wanted = parse_range(request.headers.get("Range", ""), size)
        part = wanted or ByteRange(0, size - 1)
        body = opened.read(part.start, part.end + 1)
    except RangeNotSatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    except (AudioError, AudioStoreError) as exc:
        log.error("recording %s unreadable: %s", recording.pk, exc)
        raise Http404 from exc
    note_playback(request, recording)
    response = HttpResponse(body, content_type="audio/ogg", status=206 if wanted else 200)
    if wanted:
        response["Content-Range"] = f"bytes {part.start}-{part.end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = "inline"
    return response
