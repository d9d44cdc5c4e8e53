"""Every URL of the URLconf, requested as each kind of user, answers the expected status.

The resolver is walked, so a page added anywhere must be added to EXPECTED below (the test
`test_every_url_has_expectations` fails otherwise). Pages are requested with GET; actions
that change state are POSTed (empty or minimal forms). A refused request must not write an
audit entry (nothing happened).
"""

from __future__ import annotations

from datetime import date

import pytest
from axes.models import AccessAttempt
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from callscope.accounts.actions import do_request_evidence
from callscope.accounts.models import Role, UserSession
from callscope.store.models import AuditEntry, DirectoryEntry, OrgUnit

from ._world import attach_audio, client_for, make_call, make_user

#: URLs that redirect an anonymous user somewhere other than the log-in page
PUBLIC_REDIRECTS = {"logout", "login_totp", "console:set_language"}

ROLES = ("anonymous", "operator", "listener", "manager", "installer", "untrained")

# name: (method, anonymous, operator, listener (audio right), manager, installer, untrained)
_MANAGER_PAGE = ("GET", 302, 403, 403, 200, 403, 403)
_MANAGER_ACTION = ("POST", 302, 403, 403, 302, 403, 403)
_STAFF_PAGE = ("GET", 302, 200, 200, 200, 403, 403)
EXPECTED: dict[str, tuple] = {
    "login": ("GET", 200, 200, 200, 200, 403, 403),
    "login_totp": ("GET", 302, 302, 302, 302, 403, 403),
    "logout": ("POST", 302, 302, 302, 302, 302, 403),
    "password_change": ("GET", 302, 200, 200, 200, 200, 403),
    "accounts:totp_setup": _STAFF_PAGE,
    "accounts:install_manager": ("GET", 302, 403, 403, 403, 200, 403),
    "accounts:operators": _MANAGER_PAGE,
    "accounts:operator_new": _MANAGER_PAGE,
    "accounts:operator": _MANAGER_PAGE,
    "accounts:operator_designation": _MANAGER_ACTION,
    "accounts:operator_training": _MANAGER_ACTION,
    "accounts:operator_rights": _MANAGER_ACTION,
    "accounts:operator_totp": _MANAGER_ACTION,
    "accounts:operator_totp_reset": _MANAGER_ACTION,
    "accounts:operator_active": _MANAGER_ACTION,
    "accounts:operator_password": ("POST", 302, 403, 403, 200, 403, 403),
    "accounts:operator_sessions_end": _MANAGER_ACTION,
    "accounts:lockouts": _MANAGER_PAGE,
    "accounts:lockout_lift": _MANAGER_ACTION,
    "accounts:sessions": _MANAGER_PAGE,
    "accounts:session_end": _MANAGER_ACTION,
    "accounts:policy": _MANAGER_PAGE,
    "accounts:audit": _MANAGER_PAGE,
    "accounts:audit_export": _MANAGER_PAGE,
    "accounts:evidence_list": _STAFF_PAGE,
    "accounts:evidence_new": _STAFF_PAGE,
    # the sample request is the operator's: other operators do not see it (404)
    "accounts:evidence": ("GET", 302, 200, 404, 200, 403, 403),
    "accounts:evidence_approve": _MANAGER_ACTION,
    "accounts:evidence_reject": _MANAGER_ACTION,
    "accounts:evidence_export": ("POST", 302, 302, 404, 302, 403, 403),
    "accounts:evidence_handover": _MANAGER_ACTION,
    "accounts:evidence_release": _MANAGER_ACTION,
    "console:home": _STAFF_PAGE,
    "console:healthz": ("GET", 200, 200, 200, 200, 403, 403),
    "console:set_language": ("POST", 302, 302, 302, 302, 403, 403),
    "console:search": _STAFF_PAGE,
    "console:export": _STAFF_PAGE,
    "console:call_detail": _STAFF_PAGE,
    # the audio right is needed to fetch audio at all
    "console:call_audio": ("GET", 302, 403, 200, 200, 403, 403),
    "console:health": _STAFF_PAGE,
    "console:dashboards": _STAFF_PAGE,
    "console:dashboard_units": _STAFF_PAGE,
    "console:dashboard_distributions": _STAFF_PAGE,
    "console:dashboard_matrix": _STAFF_PAGE,
    "console:dashboard_report": _STAFF_PAGE,
    "console:dashboard_export": _STAFF_PAGE,
    "console:directory": _MANAGER_PAGE,
    "console:directory_export": _MANAGER_PAGE,
    "console:directory_import": _MANAGER_PAGE,
    "console:directory_entry_new": _MANAGER_PAGE,
    "console:directory_entry": _MANAGER_PAGE,
    # an empty form is shown again with its errors
    "console:directory_entry_change": ("POST", 302, 403, 403, 200, 403, 403),
    "console:directory_entry_end": ("POST", 302, 403, 403, 200, 403, 403),
}


def url_patterns(patterns=None, namespace=None):
    """(route name, URLPattern) for every named pattern, namespaces included."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace
            full = f"{namespace}:{inner}" if namespace and inner else inner or namespace
            yield from url_patterns(entry.url_patterns, full)
        elif isinstance(entry, URLPattern) and entry.name:
            yield (f"{namespace}:{entry.name}" if namespace else entry.name), entry


def test_every_url_has_expectations():
    names = {name for name, _pattern in url_patterns()}
    missing = sorted(names - set(EXPECTED))
    assert not missing, f"add these URLs to the authorization matrix: {missing}"
    unnamed = [
        str(entry.pattern)
        for entry in get_resolver().url_patterns
        if isinstance(entry, URLPattern) and not entry.name
    ]
    assert not unnamed, f"every URL needs a name to be checked: {unnamed}"


class World:
    """One of everything the URLs take as arguments."""

    def __init__(self):
        self.manager = make_user("kanri", Role.MANAGER)
        self.operator = make_user("hojo")
        self.listener = make_user("kiku", can_listen=True)
        self.installer = make_user("setup", Role.INSTALLER)
        self.untrained = make_user("mikenshu", trained_on=None)
        victim = make_user("higai")
        self.session = UserSession.objects.create(
            user=victim, session_key="k" * 32, address="10.0.0.99"
        )
        self.attempt = AccessAttempt.objects.create(
            username="higai", ip_address="10.0.0.98", user_agent="", failures_since_start=9,
            get_data="", post_data="", http_accept="", path_info="/",
            attempt_time=timezone.now(),
        )  # fmt: skip
        self.call = make_call()
        section = OrgUnit.objects.create(
            code="S1", name="市民課", level=OrgUnit.Level.SECTION, valid_from=date(2024, 4, 1)
        )
        self.entry = DirectoryEntry.objects.create(
            number="41001", unit=section, valid_from=date(2024, 4, 1)
        )
        attach_audio(self.call)
        self.evidence = do_request_evidence(
            self.call, reason="威圧的な要求", case_reference="R8-1", acting_user=self.operator,
            address="10.0.0.1",
        )  # fmt: skip

    def kwargs(self, pattern: URLPattern) -> dict:
        samples = {
            "user_id": self.operator.pk,
            "call_id": self.call.pk,
            "evidence_id": self.evidence.pk,
            "attempt_id": self.attempt.pk,
            "session_id": self.session.pk,
            "entry_id": self.entry.pk,
            "fmt": "csv",
            "table": "summary",
        }
        names = pattern.pattern.converters.keys()
        unknown = set(names) - set(samples)
        assert not unknown, f"give a sample value for URL argument(s) {unknown}"
        return {name: samples[name] for name in names}

    def user(self, role: str):
        return None if role == "anonymous" else getattr(self, role)


CASES = [(name, role) for name in sorted(EXPECTED) for role in ROLES]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "role"), CASES)
def test_authorization(name, role):
    patterns = dict(url_patterns())
    if name not in patterns:
        pytest.fail(f"{name} is in the matrix but not in the URLconf: remove or rename it")
    world = World()
    method, *statuses = EXPECTED[name]
    expected = statuses[ROLES.index(role)]
    url = reverse(name, kwargs=world.kwargs(patterns[name]))
    client = client_for(world.user(role))
    before = AuditEntry.objects.count()
    response = client.post(url) if method == "POST" else client.get(url)
    status = response.status_code
    if expected == 200 and status == 206:
        status = 200  # a partial answer to a range request is an answer
    assert status == expected, f"{method} {url} as {role}: {status}, expected {expected}"
    if role == "anonymous" and expected == 302 and name not in PUBLIC_REDIRECTS:
        assert response["Location"].startswith(reverse("login"))
    if expected in (403, 404) or (role == "anonymous" and expected == 302):
        written = AuditEntry.objects.filter(sequence__gt=before)
        # refused requests change nothing; only the refusal of an ineligible user's session
        # (it is ended and logged out) is recorded
        assert set(written.values_list("action", flat=True)) <= {"session_ended"}, (
            f"{method} {url} as {role} was refused but wrote {list(written)}"
        )
