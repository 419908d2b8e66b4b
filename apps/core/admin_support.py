"""What the apps' admin pages share: the acting user, dialog actions, read-only inlines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline  # type: ignore[import-untyped]

# The operator role's permission (``apps.accounts.permissions.OPERATE``; the core imports no app).
OPERATE = "accounts.operate_platform"


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


class ReadOnlyAdminMixin:
    """Rows the platform writes and people only read: never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, TabularInline):
    """Rows shown with their parent, never added, changed or deleted there."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


class OperatedAdmin(ModelAdmin):
    """Actions that start, stop or change work need the operator role, as in the API; the
    model permissions only say who sees what. ``refused`` are the errors a service refuses
    with, shown as messages."""

    refused: tuple[type[Exception], ...] = (ValidationError,)

    def has_operate_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(OPERATE)

    def found(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id}.")
        return obj

    def each(
        self, request: HttpRequest, objects: Iterable[Any], act: Callable[[Any], Any], done: str
    ) -> list[Any]:
        """``act`` on each object, saying for each what came of it; what it made of those it
        did not refuse."""
        results = []
        for obj in objects:
            try:
                result = act(obj)
            except self.refused as error:
                self.message_user(request, f"{obj}: {refusal(error)}", messages.ERROR)
            else:
                results.append(result)
                shown = self.shown(result if result is not None else obj)
                self.message_user(request, format_html("{} {}", shown, done), messages.SUCCESS)
        return results

    def shown(self, obj: Any) -> str:
        """How an action's message names what it acted on."""
        return str(obj)
