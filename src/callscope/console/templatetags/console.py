"""Template tags of the console: the main menu, the capture warning banner, and phone numbers
shown masked or in full according to the user's right."""

from __future__ import annotations

from html import escape
from typing import Any

from django import forms, template
from django.forms.widgets import Input
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

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


@register.simple_tag
def control(field: forms.BoundField) -> SafeString:
    """A form field's input. Selects are written here in one pass: Django's widget templates
    render every option through its own template include, ~1 ms per ten options, which
    dominated the search page with a city's few hundred sections."""
    widget = field.field.widget
    invalid = (
        format_html(' aria-invalid="true" aria-describedby="{}_error"', field.auto_id)
        if field.errors
        else ""
    )
    if isinstance(widget, Input) and not isinstance(widget, forms.CheckboxInput):
        return _input(field, widget)
    if not isinstance(widget, forms.Select) or isinstance(widget, forms.SelectMultiple):
        return SafeString(field.as_widget())
    value = field.value()
    current = "" if value is None else str(value)
    choices = getattr(field.field, "choices", ())
    # stdlib escape in one join: Django's lazy-aware escaping costs ~10 us per call
    options = SafeString(
        "".join(
            f'<option value="{escape(str(key))}"'
            f"{' selected' if str(key) == current else ''}>{escape(str(label))}</option>"
            for key, label in choices
        )
    )
    return format_html(
        '<select name="{}" id="{}"{}>{}</select>', field.html_name, field.auto_id, invalid, options
    )


def _input(field: forms.BoundField, widget: Input) -> SafeString:
    # build_widget_attrs adds required, aria-invalid and aria-describedby as Django does
    attrs = field.build_widget_attrs(dict(widget.attrs))
    input_type = str(attrs.pop("type", widget.input_type))
    value = widget.format_value(field.value())
    extra = format_html_join("", ' {}="{}"', ((k, v) for k, v in attrs.items() if v is not True))
    flags = format_html_join("", " {}", ((k,) for k, v in attrs.items() if v is True))
    return format_html(
        '<input type="{}" name="{}" id="{}"{}{}{}>',
        input_type,
        field.html_name,
        field.auto_id,
        format_html(' value="{}"', value) if value not in (None, "") else "",
        extra,
        flags,
    )
