"""Template filters of the accounts pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

from callscope.accounts.audittrail import ACTIONS

register = template.Library()


@register.filter
def action_label(action: str) -> Any:
    """The translated label of an audit action (the action name if unknown)."""
    return ACTIONS.get(action, action)


@register.filter
def as_json(value: Any) -> str:
    """An audit entry's detail as compact JSON (Japanese kept readable)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
