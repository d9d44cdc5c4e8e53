"""Template tags of the console: the main menu, the capture warning banner, and phone numbers
shown masked or in full according to the user's right."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from callscope.accounts.access import show_number
from callscope.console import health
from callscope.console.navigation import menu_for
from callscope.store.numbering import format_number

register = template.Library()


@register.inclusion_tag("console/_nav.html", takes_context=True)
def main_menu(context: template.Context) -> dict[str, Any]:
    return {"links": menu_for(context["request"])}


@register.inclusion_tag("console/_banner.html", takes_context=True)
def capture_warnings(context: template.Context) -> dict[str, Any]:
    """The warning banner: capture dropping packets, a silent source, a nearly full disk."""
    user = context["request"].user
    return {"warnings": health.warnings(timezone.now()) if user.is_authenticated else []}


def shown_number(user: Any, number: str) -> str:
    """A phone number as ``user`` may see it: in full (hyphenated) or masked
    (`callscope.accounts.access.show_number` decides)."""
    if not number:
        return ""
    shown = show_number(user, number)
    return format_number(number) if shown == number else shown


@register.simple_tag(takes_context=True)
def phone(context: template.Context, number: str) -> str:
    """``{% phone call.caller_number %}``: full for users with the number right, else masked."""
    return shown_number(context.get("user"), number or "")


@register.filter
def seconds(value: float | None) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour); empty for unknown."""
    if value is None:
        return ""
    total = round(value)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
