"""What the apps' admin pages share: the acting user, dialog actions, read-only inlines."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from unfold.admin import TabularInline  # type: ignore[import-untyped]


def acting_user(request: HttpRequest) -> User:
    """Who acts: the admin's views are behind its login, so a user."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def refusal(error: Exception) -> str:
    """A service's refusal as the message the admin shows."""
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def confirm(title: str, description: str, submit: str) -> dict[str, Any]:
    """The dialog of an unfold action that asks before it acts."""
    return {"title": title, "description": description, "form_submit_text": submit}


def to_page(request: HttpRequest, url_name: str, *args: Any) -> HttpResponse:
    """What a dialog action answers: the page to show next (the dialog posts with HTMX, which
    follows ``HX-Redirect``; a plain form post is redirected)."""
    url = reverse(url_name, args=args)
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return HttpResponseRedirect(url)


class ReadOnlyInline(TabularInline):
    """Rows shown with their parent, never added, changed or deleted there."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
