"""The one place views ask who may do what (STYLE habit 8).

Every console and accounts view authorizes through these helpers::

    user = require_role(request, Role.MANAGER)
    call, can_listen = get_call_for_user(request, call_id)
    recording = get_recording_for_listening(request, call_id)   # playback and nothing else
    number = show_number(request.user, call.caller_number)

They raise `PermissionDenied` (403) or `Http404`; anonymous users are sent to the log-in page
by ``@login_required`` before these run. `audit` writes an audit row with the request's user
and client address (`audit_all`: several entries of one page in one transaction).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils import timezone

from callscope.accounts.models import Role, User
from callscope.store import audit as audit_chain
from callscope.store.masking import mask_number
from callscope.store.models import AuditEntry, Call, Recording

#: session key of the recordings a user is listening to (recording id -> last request time)
_LISTENING_KEY = "callscope_listening"
#: range requests of one recording within this many seconds belong to one listening
LISTENING_GAP_SECONDS = 30 * 60


def client_address(request: HttpRequest) -> str:
    """The client's IP address (the first X-Forwarded-For hop behind a trusted proxy); the
    one definition, used by the audit trail and the console's network allow-list."""
    if settings.CALLSCOPE_TRUSTED_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return str(forwarded).split(",")[0].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def audit(
    request: HttpRequest, action: str, *, target: str = "", detail: dict[str, Any] | None = None
) -> AuditEntry:
    """Append an audit entry for this request's user and client address."""
    return audit_all(request, [audit_chain.Event(action, target, detail)])[0]


def audit_all(
    request: HttpRequest, events: Iterable[audit_chain.Event | None], *, views: bool = False
) -> list[AuditEntry]:
    """Append the entries of one request together (one transaction); None items are skipped.
    ``views``: they record pages looked at (`callscope.store.audit.record_many`)."""
    wanted = [event for event in events if event is not None]
    if not wanted:
        return []
    user = request.user if request.user.is_authenticated else None
    return audit_chain.record_many(wanted, actor=user, address=client_address(request), views=views)


def require_role(request: HttpRequest, *roles: str) -> User:
    """The request's user if eligible and in one of ``roles`` (all eligible roles if none)."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied
    if not user.is_eligible:
        raise PermissionDenied
    if roles and user.role not in roles:
        raise PermissionDenied
    return user


def require_manager(request: HttpRequest) -> User:
    return require_role(request, Role.MANAGER)


def require_staff(request: HttpRequest) -> User:
    """A manager or a designated, trained operator."""
    return require_role(request, Role.MANAGER, Role.OPERATOR)


def has_audio(recording: Recording | None) -> bool:
    """True when the recording still has decryptable audio (not deleted by retention)."""
    return (
        recording is not None
        and recording.deleted_at is None
        and recording.status != Recording.Status.DELETED
        and bool(recording.storage_key)
        and recording.wrapped_key is not None
    )


def get_call_for_user(request: HttpRequest, call_id: int) -> tuple[Call, bool]:
    """The call if the user may see it, and whether they may listen to its recording now.

    ``can_listen`` is True only with the audio right (managers have it) and audio still
    present. Views showing a call audit ``call_view`` themselves.
    """
    user = require_staff(request)
    call = Call.objects.select_related("recording").filter(pk=call_id).first()
    if call is None:
        raise Http404
    recording = getattr(call, "recording", None)
    return call, user.may_listen and has_audio(recording)


def get_recording_for_listening(request: HttpRequest, call_id: int) -> Recording:
    """The recording to stream: only with the audio right; 404 when there is no audio."""
    call, can_listen = get_call_for_user(request, call_id)
    user = require_staff(request)
    if not user.may_listen:
        raise PermissionDenied
    if not can_listen:
        raise Http404
    return call.recording


def note_playback(request: HttpRequest, recording: Recording) -> bool:
    """Audit ``playback`` once per listening, not per byte range; True when an entry was written.

    A listening is the run of requests for one recording in one session with no gap longer
    than `LISTENING_GAP_SECONDS`.
    """
    now = int(timezone.now().timestamp())
    listening = dict(request.session.get(_LISTENING_KEY, {}))
    key = str(recording.pk)
    last = listening.get(key)
    listening[key] = now
    request.session[_LISTENING_KEY] = listening
    if last is not None and now - int(last) < LISTENING_GAP_SECONDS:
        return False
    audit(
        request,
        "playback",
        target=f"call:{recording.call_id}",
        detail={"recording": recording.pk},
    )
    return True


def show_number(user: Any, number: str) -> str:
    """The number as this user may see it: full with the number right, else masked."""
    if getattr(user, "may_see_numbers", False):
        return number
    return mask_number(number)


def record_numbers_shown(request: HttpRequest, targets: Iterable[str]) -> AuditEntry | None:
    """Audit that a page showed full numbers (one entry per page); no-op for masked users."""
    event = numbers_shown(request, targets)
    return None if event is None else audit_all(request, [event])[0]


def numbers_shown(request: HttpRequest, targets: Iterable[str]) -> audit_chain.Event | None:
    """The audit entry of a page that showed full numbers (None for masked users, or when
    the page showed none): for `audit_all` with the page's other entries."""
    if not getattr(request.user, "may_see_numbers", False):
        return None
    shown = sorted(set(targets))
    if not shown:
        return None
    return audit_chain.Event("number_view", target=shown[0], detail={"targets": shown})
