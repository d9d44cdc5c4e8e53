"""The accounts layer's errors: one base, fixed messages (the variable data in attributes)."""

from __future__ import annotations

from typing import ClassVar

from django.utils.translation import gettext_noop

from callscope.core import CallscopeError


class AccountsError(CallscopeError):
    """An account or evidence action that the rules refuse."""


class ActionRefused(AccountsError):
    """The acting user may not do this, or the object is not in a state that allows it.

    ``code`` names the rule for views and tests; the message is fixed per code.
    """

    MESSAGES: ClassVar[dict[str, str]] = {
        "not_manager": gettext_noop("only the manager may do this"),
        "not_operator": gettext_noop("this applies to operators only"),
        "own_request": gettext_noop("nobody may approve or reject their own request"),
        "self": gettext_noop("the manager may not do this to their own account"),
        "state": gettext_noop("the request is not in a state that allows this"),
        "no_audio": gettext_noop("the recording has no audio any more"),
        "hold_released": gettext_noop("the legal hold was already released"),
        "not_requester": gettext_noop("only the manager or the requesting user may export"),
        "manager_exists": gettext_noop("an active manager already exists"),
        "not_installer": gettext_noop("only the installation superuser may do this"),
        "not_eligible": gettext_noop("the user is not designated and trained"),
        "missing_field": gettext_noop("a required field is empty"),
    }

    def __init__(self, code: str) -> None:
        # Fixed English message; views show its translation (`gettext(str(error))`).
        super().__init__(self.MESSAGES[code])
        self.code = code
