"""Template filters of the accounts pages."""

from __future__ import annotations

from typing import Any

from django import template

from callscope.accounts.audittrail import ACTIONS

register = template.Library()


@register.filter
def action_label(action: str) -> Any:
    """The translated label of an audit action (the action name if unknown)."""
    return ACTIONS.get(action, action)
