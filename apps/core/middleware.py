from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from .database import is_database_unavailable
from .errors import database_unavailable, exception_response, is_api_path, page_not_found
from .request_context import REQUEST_ID_HEADER, request_id_from, request_id_var


class RequestIdMiddleware:
    """Take ``X-Request-ID`` from the caller or make one, log under it, and return it.

    The id is deliberately not reset when the response leaves this middleware: Django logs
    4xx/5xx responses after the whole middleware chain, and those lines must carry it too.
    Under ASGI every request runs in its own context, so nothing leaks between requests.
    Async-capable so an ASGI request never hops to a thread just for this middleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._async_call(request)
        request_id = self._bind(request)
        return self._tag(request_id, self.get_response(request))

    async def _async_call(self, request: HttpRequest) -> HttpResponse:
        request_id = self._bind(request)
        return self._tag(request_id, await self.get_response(request))

    @staticmethod
    def _bind(request: HttpRequest) -> str:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request_id_var.set(request_id)
        return request_id

    @staticmethod
    def _tag(request_id: str, response: HttpResponse) -> HttpResponse:
        response[REQUEST_ID_HEADER] = request_id
        return response


class ResponseMiddleware:
    """A middleware that changes each response, sync or async without a hop to a thread (as
    Django's ``MiddlewareMixin`` would make for ``process_response``): subclasses write
    ``finish``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.is_async:
            return self.__acall__(request)  # type: ignore[return-value]  # awaited by Django
        return self.finish(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self.finish(request, await self.get_response(request))

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class DebugApiErrorMiddleware(ResponseMiddleware):
    """Keep the API's JSON errors when DEBUG is on.

    With DEBUG, Django answers an unknown URL and an exception with its technical pages (a
    traceback, the settings), not with ``handler404``/``handler500``. Under the API paths this
    answers what those handlers would: a JSON 404 for a URL that resolves to nothing, and the
    JSON error (a 500 with the request id) for an exception raised by a view. Without DEBUG the
    handlers already do that, so the middleware is not used at all.
    """

    def __init__(self, get_response) -> None:
        if not settings.DEBUG:
            raise MiddlewareNotUsed
        super().__init__(get_response)

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code == 404 and request.resolver_match is None and is_api_path(request):
            return page_not_found(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return exception_response(request, exception) if is_api_path(request) else None


class DatabaseUnavailableMiddleware(ResponseMiddleware):
    """Under the API paths, a view that fails because the database does not answer (down,
    restarting) answers 503 with ``Retry-After``, not a 500: the caller may retry. DRF views
    get the same from the exception handler; this covers the async views beside them."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_api_path(request) and is_database_unavailable(exception):
            return database_unavailable(request)
        return None


class ContentSecurityPolicyMiddleware(ResponseMiddleware):
    """``Content-Security-Policy`` on every answer from Django, built from ``SECURE_CSP``.

    Django 6.0 has this built in, with the same setting name and shape (a directive mapped to
    its sources); until the project moves to it, these few lines do the same for a fixed
    policy, so the upgrade swaps this class for ``django.middleware.csp`` and keeps the
    setting. A view that set its own policy keeps it. Nonces are not needed: no page of the
    site runs an inline script (the API docs load their start-up script from a URL).
    """

    def __init__(self, get_response) -> None:
        self.header = csp_header(settings.SECURE_CSP)
        if not self.header:
            raise MiddlewareNotUsed
        super().__init__(get_response)

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers.setdefault("Content-Security-Policy", self.header)
        return response


def csp_header(policy: dict[str, list[str]]) -> str:
    """``{"script-src": ["'self'"]}`` as the header's text; a directive without sources (such
    as ``upgrade-insecure-requests``) stands alone."""
    return "; ".join(" ".join([name, *sources]) for name, sources in policy.items())
