"""Authentication for the async Django views of the streaming API (DRF has no async views).

An ``Authorization: Bearer`` key, or a session; session-authenticated writes must pass Django's
CSRF check, as they would through DRF. Views that make LLM calls are admitted against the key's
limits (``apps.accounts.admission``; the per-IP limit is the middleware's). Failures answer in
the one REST error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.admission import admit_call
from apps.accounts.authentication import bearer_token
from apps.accounts.middleware import refusal_response, request_client
from apps.accounts.principals import Principal, authenticate_bearer, principal_for
from apps.core.errors import error_response

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
View = Callable[..., Coroutine[Any, Any, HttpResponse]]


def _nothing(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


async def _principal(request: HttpRequest) -> Principal | HttpResponse:
    """The caller, or the response refusing it."""
    header = request.headers.get("Authorization")
    if header:
        token = bearer_token(header)
        principal = await authenticate_bearer(token) if token else None
        if principal is None:
            return error_response(
                "authentication_failed", "Invalid, revoked or expired API key.", 401
            )
        return principal
    user = await request.auser()
    if not isinstance(user, User):
        return error_response(
            "not_authenticated", "Authentication credentials were not provided.", 401
        )
    if request.method not in SAFE_METHODS:
        check = _CsrfCheck(_nothing)
        check.process_request(request)
        reason = check.process_view(request, _nothing, (), {})
        if reason:
            return error_response("permission_denied", f"CSRF Failed: {reason}", 403)
    return await database_sync_to_async(principal_for)(user)


def api_view(method: str, *, operate: bool, llm_call: bool = False) -> Callable[[View], View]:
    """An async view answering ``method`` to an authenticated caller; ``operate`` asks for the
    operator role, else the viewer role is enough. ``llm_call``: the request counts against its
    API key's rate limits, and is refused (429) over them."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                return error_response(
                    "method_not_allowed", f"Method {request.method} not allowed.", 405
                )
            principal = await _principal(request)
            if isinstance(principal, HttpResponse):
                return principal
            if not (principal.can_operate if operate else principal.can_view):
                return error_response("permission_denied", "Your role may not do this.", 403)
            if llm_call:
                admission = admit_call(principal, entry="SSE", client=request_client(request))
                if admission.refusal is not None:
                    return refusal_response(admission.refusal)
            return await view(request, principal, *args, **kwargs)

        return wrapped

    return decorate
