"""The one error shape of the REST API: ``{"error": {"code", "message", "details"}}``.

Used by DRF's exception handler, Django's 400/403/404/500 handlers and the CSRF failure view,
and with DEBUG on by ``DebugApiErrorMiddleware`` (Django then shows its technical pages instead
of calling the handlers). Browser pages outside the API keep Django's HTML error pages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core import signals
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.log import log_response
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .database import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, is_database_unavailable
from .request_context import current_request_id

logger = logging.getLogger(__name__)

JSON_PATH_PREFIXES = ("/api/", "/v1/", "/health", "/metrics", "/ws/")


class ServiceError(exceptions.APIException):
    """An error that carries its own code and status (a provider's failure told to our caller,
    say), rendered in the one shape by ``api_exception_handler``."""

    def __init__(self, code: str, message: str, status_code: int) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def validation_messages(error: DjangoValidationError) -> list[str]:
    """A model or form validation error as flat lines, ``field: message`` where a field is named
    (for an error about one item of a list the caller validates, e.g. a build's step)."""
    if hasattr(error, "error_dict"):
        return [f"{field}: {text}" for field, texts in error.message_dict.items() for text in texts]
    return list(error.messages)


def error_response(code: str, message: str, status_code: int, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status_code)


def _unavailable(path: str) -> tuple[dict[str, Any], dict[str, str]]:
    logger.warning("the database is unavailable: answered 503 to %s", path)
    body = error_body(
        "database_unavailable",
        UNAVAILABLE_MESSAGE,
        {"request_id": current_request_id(), "retry_after": RETRY_AFTER_SECONDS},
    )
    return body, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def database_unavailable(request: HttpRequest) -> JsonResponse:
    """503 with ``Retry-After``: the database is down or restarting, which a retry outlives."""
    body, headers = _unavailable(request.path)
    return JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Reshape every error DRF knows into the one shape; unknown ones become a logged 500.

    A Django ``ValidationError`` raised by a service (``full_clean``) is a 400 like DRF's own;
    a database that does not answer is a 503 with ``Retry-After``.
    """
    if is_database_unavailable(exc):
        request = context.get("request")
        body, headers = _unavailable(request.path if request else "")
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("validation_error", "Invalid input.", exc.detail)
    elif isinstance(exc, exceptions.APIException):
        details: dict[str, Any] | None = None
        if isinstance(exc, exceptions.Throttled):
            details = {"wait": getattr(exc, "wait", None)}
        elif isinstance(exc, exceptions.ParseError):  # a body that could not even be read
            details = {"request_id": current_request_id()}
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code, str(exc.detail), details)
    return response


def is_api_path(request: HttpRequest) -> bool:
    """Paths that answer JSON errors whoever asks, DEBUG or not."""
    return request.path.startswith(JSON_PATH_PREFIXES)


def wants_json(request: HttpRequest) -> bool:
    if is_api_path(request):
        return True
    return "text/html" not in request.headers.get("Accept", "")


def bad_request(request: HttpRequest, exception: Exception | None = None, **kwargs):
    if wants_json(request):
        return error_response("bad_request", "Bad request.", status.HTTP_400_BAD_REQUEST)
    return defaults.bad_request(request, exception or SuspiciousOperation())


def permission_denied(request: HttpRequest, exception: Exception | None = None, **kwargs):
    if wants_json(request):
        message = str(exception) if exception and str(exception) else "Permission denied."
        return error_response("permission_denied", message, status.HTTP_403_FORBIDDEN)
    return defaults.permission_denied(request, exception or DjangoPermissionDenied())


def page_not_found(request: HttpRequest, exception: Exception | None = None, **kwargs):
    if wants_json(request):
        return error_response(
            "not_found", f"No resource at {request.path}.", status.HTTP_404_NOT_FOUND
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, **kwargs):
    """Never show a traceback; the request id ties the answer to the logged exception."""
    if wants_json(request):
        return error_response(
            "server_error",
            "Internal server error. Quote the request id when reporting it.",
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            {"request_id": current_request_id()},
        )
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs):
    if wants_json(request):
        return error_response(
            "csrf_failed", f"CSRF verification failed: {reason}", status.HTTP_403_FORBIDDEN
        )
    return django_csrf_failure(request, reason)


def exception_response(request: HttpRequest, exc: Exception) -> HttpResponse:
    """What the handlers above answer for an exception a view raised, as Django without DEBUG.

    The exception is logged (with its traceback for a 500, which also sends
    ``got_request_exception``) since the response replaces Django's own handling of it.
    """
    if isinstance(exc, Http404):
        return page_not_found(request, exc)
    if is_database_unavailable(exc):
        return database_unavailable(request)
    if isinstance(exc, DjangoPermissionDenied):
        return permission_denied(request, exc)
    if isinstance(exc, BadRequest | SuspiciousOperation | MultiPartParserError):
        response = bad_request(request, exc)
    else:
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
    log_response(
        "%s: %s",
        response.reason_phrase,
        request.path,
        response=response,
        request=request,
        exception=exc,
    )
    return response
