"""The per-IP rate limit of the REST and SSE APIs (``/api/``), ahead of authentication.

It runs before any authentication, so a flood of requests with made-up keys is refused before
each costs a database lookup: step 1 of the admission sequence (``admission.py``), which
``/v1`` and the WebSocket run themselves.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from apps.core.errors import error_response

from .admission import admit_client
from .limits import UNKNOWN_CLIENT, Refusal, client_address

LIMITED_PREFIX = "/api/"


def refusal_response(refusal: Refusal) -> HttpResponse:
    """A 429 in the REST API's error shape, with ``Retry-After``."""
    response = error_response(
        refusal.code, refusal.message, 429, {"retry_after": refusal.retry_after_seconds}
    )
    response["Retry-After"] = str(refusal.retry_after_seconds)
    return response


def request_client(request: HttpRequest) -> str:
    """The client's address (``limits.client_address``) of a Django request."""
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def login_client(request: HttpRequest) -> str | None:
    """``request_client`` for the login lockout (django-axes' ``AXES_CLIENT_IP_CALLABLE``),
    which stores an address: None when there is none."""
    client = request_client(request)
    return None if client == UNKNOWN_CLIENT else client


class ClientIpLimitMiddleware:
    """Async-capable, so an ASGI request never hops to a thread for it; it does no I/O."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self._refused(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self._refused(request) or await self.get_response(request)

    @staticmethod
    def _refused(request: HttpRequest) -> HttpResponse | None:
        if not request.path.startswith(LIMITED_PREFIX):
            return None
        entry = "SSE" if request.path.startswith("/api/streaming/") else "REST"
        refusal = admit_client(request_client(request), entry=entry)
        return refusal_response(refusal) if refusal else None
