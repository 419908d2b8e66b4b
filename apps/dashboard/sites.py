"""The one site: the Django admin, themed by django-unfold, with the dashboard's pages in it.

``OrchestraAdminSite`` is ``admin.site`` (see ``admin_config.py``). Besides every ModelAdmin it
serves the pages apps register with ``apps.core.registry.register_pages`` at
``/admin/<slug>/``: each behind the admin's login, the page's permission (403 without it), CSRF
protection and ``never_cache``, and each given the admin's context (sidebar, theme, title) on
the ``TemplateResponse`` its view returns. Its index, ``/admin/``, is Home.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.module_loading import import_string
from unfold.sites import UnfoldAdminSite  # type: ignore[import-untyped]

from apps.core.registry import Page, pages

# First path segments the admin itself uses under /admin/.
RESERVED_SLUGS = {"login", "logout", "password_change", "autocomplete", "jsi18n", "r", "search"}


@cache
def _resolve(view: str) -> Callable[..., HttpResponse]:
    resolved: Callable[..., HttpResponse] = import_string(view)
    return resolved


def page_view_function(page: Page) -> Callable[..., HttpResponse]:
    return _resolve(page.view) if isinstance(page.view, str) else page.view


class OrchestraAdminSite(UnfoldAdminSite):
    index_title = "Home"
    index_template = "dashboard/home.html"

    def get_urls(self) -> list[Any]:
        return [*self.page_urls(), *super().get_urls()]

    def page_urls(self) -> list[URLPattern]:
        taken = RESERVED_SLUGS | {config.label for config in apps.get_app_configs()}
        urls = []
        for page in sorted(pages.values(), key=lambda page: page.slug):
            if page.slug in taken:
                raise ImproperlyConfigured(
                    f"dashboard page {page.slug!r}: /admin/{page.slug}/ is the admin's own"
                )
            view = self.admin_view(self.page_view(page))
            urls.append(path(f"{page.slug}/", view, name=f"page-{page.slug}"))
            for number, extra in enumerate(page.urls, 1):
                urls.append(path(f"{page.slug}/{extra}", view, name=f"page-{page.slug}-{number}"))
        return urls

    def page_view(self, page: Page) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if page.permission and not request.user.has_perm(page.permission):
                raise PermissionDenied(f"{page.title} needs the permission {page.permission}.")
            request.current_app = self.name
            response = page_view_function(page)(request, **kwargs)
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.context_data = {
                    **self.each_context(request),
                    "title": page.title,
                    "page": page,
                    **(response.context_data or {}),
                }
            return response

        view.__name__ = f"page_{page.slug.replace('-', '_')}"
        return view

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        from .views import home_context

        response: TemplateResponse = super().index(
            request, {**home_context(request), **(extra_context or {})}
        )
        return response
