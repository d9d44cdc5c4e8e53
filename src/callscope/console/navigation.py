"""The console's main menu: one entry per section of the product, in a fixed order.

Entries name their URL by Django route name; an entry whose route is not installed (a
section another part of the product has not added yet) is simply not shown. ``manager_only``
entries appear only for the manager; the views themselves still authorize every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True, slots=True)
class NavItem:
    label: Any
    routes: tuple[str, ...]  # the first installed route is the link
    manager_only: bool = False
    #: other pages (route names, no arguments) under which the entry is also current
    also: tuple[str, ...] = ()


MENU: tuple[NavItem, ...] = (
    NavItem(_("Home"), ("console:home",)),
    NavItem(_("Dashboards"), ("console:dashboards", "console:dashboard")),
    NavItem(_("Calls"), ("console:search",)),
    NavItem(_("Evidence"), ("accounts:evidence_list",)),
    NavItem(_("Capture health"), ("console:health",)),
    NavItem(_("Directory"), ("console:directory",), manager_only=True),
    NavItem(
        _("Administration"),
        ("accounts:operators",),
        manager_only=True,
        also=("accounts:lockouts", "accounts:sessions", "accounts:policy"),
    ),
    NavItem(_("Audit trail"), ("accounts:audit",), manager_only=True),
)


@dataclass(frozen=True, slots=True)
class NavLink:
    label: Any
    url: str
    current: bool


def _first_url(routes: tuple[str, ...]) -> str | None:
    for route in routes:
        try:
            return reverse(route)
        except NoReverseMatch:
            continue
    return None


def menu_for(request: HttpRequest) -> list[NavLink]:
    """The menu links the user of ``request`` sees, the current section marked."""
    user = request.user
    is_manager = bool(getattr(user, "is_manager", False))
    links = []
    for item in MENU:
        if item.manager_only and not is_manager:
            continue
        url = _first_url(item.routes)
        if url is None:
            continue
        prefixes = [url, *filter(None, (_first_url((route,)) for route in item.also))]
        if url == "/":
            current = request.path == url
        else:
            current = any(request.path.startswith(prefix) for prefix in prefixes)
        links.append(NavLink(item.label, url, current))
    return links
