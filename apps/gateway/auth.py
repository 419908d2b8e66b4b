"""Authentication for the async Django views of the streaming API (DRF has no async views).

An ``Authorization: Bearer`` key, or a session; session-authenticated writes must pass Django's
CSRF check, as they would through DRF. Failures answer in the one REST error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.authentication import bearer_token
from apps.accounts.principals import Principal, authenticate_bearer, principal_for
from apps.core.errors import error_response

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
View = Callable[..., Awaitable[HttpResponse]]


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


async def _principal(request: HttpRequest) -> tuple[Principal | None, HttpResponse | None]:
    header = request.headers.get("Authorization")
    if header:
        token = bearer_token(header)
        principal = await authenticate_bearer(token) if token else None
        if principal is None:
            return None, error_response(
                "authentication_failed", "Invalid, revoked or expired API key.", 401
            )
        return principal, None
    user = await request.auser()
    if not user.is_authenticated:
        return None, error_response(
            "not_authenticated", "Authentication credentials were not provided.", 401
        )
    if request.method not in SAFE_METHODS:
        check = _CsrfCheck(lambda r: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            return None, error_response("permission_denied", f"CSRF Failed: {reason}", 403)
    return await database_sync_to_async(principal_for)(user), None


def api_view(method: str, *, operate: bool) -> Callable[[View], View]:
    """An async view answering ``method`` to an authenticated caller; ``operate`` asks for the
    operator role, else the viewer role is enough."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method != method:
                return error_response(
                    "method_not_allowed", f"Method {request.method} not allowed.", 405
                )
            principal, refusal = await _principal(request)
            if refusal is not None:
                return refusal
            if not (principal.can_operate if operate else principal.can_view):
                return error_response("permission_denied", "Your role may not do this.", 403)
            return await view(request, principal, *args, **kwargs)

        return wrapped

    return decorate
