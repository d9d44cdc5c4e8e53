"""Server-side sessions with a sliding idle expiry that is written at most once a minute.

Django slides a session's expiry by saving it on every request (SESSION_SAVE_EVERY_REQUEST):
one UPDATE per page view, which on SQLite also takes the database's write lock for every
request of every user. Here the session's row is rewritten only when its stored expiry has
fallen more than `SLIDE_STEP` behind where a save now would put it (or when the session
changed, as always). The idle lock therefore comes between ``SESSION_COOKIE_AGE -
SLIDE_STEP`` and ``SESSION_COOKIE_AGE`` after the last request: never later than the
configured idle timeout, at most a minute earlier. For very short timeouts the step shrinks
to a tenth of the timeout.

``SESSION_ENGINE = "callscope.accounts.session_store"`` selects the store; the middleware
`SlidingSessionMiddleware` takes the place of Django's ``SessionMiddleware``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.sessions.backends import db
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

#: the largest amount by which a session's stored expiry may lag behind the last request
SLIDE_STEP = dt.timedelta(seconds=60)


class SessionStore(db.SessionStore):
    """Django's database session store that remembers the expiry its row had when loaded."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        #: the row's ``expire_date`` as loaded (None: not loaded, or no such row)
        self.stored_expiry: dt.datetime | None = None

    def _get_session_from_db(self) -> Any:
        row = super()._get_session_from_db()  # type: ignore[misc]  # not in django-stubs
        self.stored_expiry = row.expire_date if row is not None else None
        return row

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        row = super().create_model_instance(data)  # the row `save` writes
        self.stored_expiry = row.expire_date
        return row

    def slide_due(self, now: dt.datetime | None = None) -> bool:
        """True when the stored expiry lags more than the slide step behind ``now``."""
        if self.stored_expiry is None:
            return False
        age = dt.timedelta(seconds=self.get_expiry_age())
        step = min(SLIDE_STEP, age / 10)
        return self.stored_expiry < (now or timezone.now()) + age - step


class SlidingSessionMiddleware(SessionMiddleware):
    """Django's session middleware, saving an unchanged session only when its expiry is due
    to slide (see the module docstring)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and not session.modified and session.slide_due():
            session.modified = True
        return super().process_response(request, response)
