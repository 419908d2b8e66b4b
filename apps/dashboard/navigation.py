"""The sidebar, built for each request from what the apps registered.

Unfold calls ``sidebar(request)`` (``UNFOLD["SIDEBAR"]["navigation"]``) on every admin page. It
merges the ``navigation`` registry (links, usually to ModelAdmin pages) with the ``pages``
registry (the dashboard's own pages), keeps the entries whose permission the user has and whose
URL exists, and groups them by section: entries by their ``order``, sections by the smallest
``order`` among their entries. Badges are computed here (unfold resolves them only from dotted
paths); one that fails is left out, never the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from apps.core.registry import navigation, pages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    title: str
    url_name: str
    section: str
    icon: str
    permission: str
    order: int
    badge: Callable[[Any], str | None] | None


def entries() -> list[Entry]:
    """Every registered sidebar entry, in order."""
    found = [
        Entry(i.title, i.url_name, i.section, i.icon, i.permission, i.order, i.badge)
        for i in navigation.values()
    ]
    found += [
        Entry(p.title, p.url_name, p.section, p.icon, p.permission, p.order, p.badge)
        for p in pages.values()
        if p.in_sidebar
    ]
    return sorted(found, key=lambda entry: (entry.order, entry.title))


def is_active(request_path: str, link: str) -> bool:
    index = reverse("admin:index")
    return request_path == link if link == index else request_path.startswith(link)


def _badge(entry: Entry, request: HttpRequest) -> str | None:
    if entry.badge is None:
        return None
    try:
        value = entry.badge(request)
    except Exception:
        logger.warning("the sidebar badge of %s failed", entry.url_name, exc_info=True)
        return None
    return str(value) if value not in (None, "", 0, "0") else None


def visible_entries(request: HttpRequest) -> list[tuple[Entry, str]]:
    """The entries this user may use, with their links."""
    user = request.user
    visible = []
    for entry in entries():
        if entry.permission and not user.has_perm(entry.permission):
            continue
        try:
            link = reverse(entry.url_name)
        except NoReverseMatch:  # a ModelAdmin not registered (here, or not any more)
            continue
        visible.append((entry, link))
    return visible


def sidebar(request: HttpRequest) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    first_order: dict[str, int] = {}
    for entry, link in visible_entries(request):
        item: dict[str, Any] = {
            "title": entry.title,
            "icon": entry.icon or "chevron_right",
            "link": link,
            "active": is_active(request.path, link),
        }
        badge = _badge(entry, request)
        if badge is not None:
            item["badge"] = badge
        groups.setdefault(entry.section, []).append(item)
        first_order.setdefault(entry.section, entry.order)
    ordered = sorted(groups, key=lambda section: (first_order[section], section))
    return [
        {"title": section, "separator": index > 0, "collapsible": False, "items": groups[section]}
        for index, section in enumerate(ordered)
    ]
