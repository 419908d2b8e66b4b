"""GitHub's REST API through githubkit, and its failures told in the platform's error shape.

githubkit (sync and async clients, typed request methods for every REST endpoint, rate limits
raised as their own exceptions with the wait they ask for) is used with its raw JSON: the
platform publishes the few fields it names, so a GitHub Enterprise server a version behind (or a
new field) never breaks a parse.

Rate limits: a secondary limit asking for a short wait (``GITHUB_RETRY_MAX_WAIT``) is waited out
once, as GitHub asks; a primary limit, or a longer wait, is answered at once as a 429 whose
``Retry-After`` is GitHub's reset time, so no web request sleeps for an hour.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from githubkit import GitHub
from githubkit.exception import (
    GitHubException,
    PrimaryRateLimitExceeded,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.response import Response
from githubkit.typing import RetryOption
from rest_framework import status

from apps.core.errors import ServiceError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GitHubError(ServiceError):
    """A GitHub failure as the platform answers it; ``retry_after`` (seconds) for rate limits.

    A token GitHub refuses is a 401 too (``github_unauthorized``: the code tells it from the
    caller's own credentials), as the platform this one follows answered it."""

    def __init__(
        self, code: str, message: str, status_code: int, retry_after: int | None = None
    ) -> None:
        super().__init__(code, message, status_code)
        self.wait = retry_after  # DRF's exception handler sends it as Retry-After


@dataclass(frozen=True)
class Connection:
    """What a call needs: the token (decrypted, never logged) and the API root."""

    token: str
    api_url: str


def _retry(exc: GitHubException, retry_count: int) -> RetryOption:
    if (
        retry_count == 0
        and isinstance(exc, RateLimitExceeded)
        and not isinstance(exc, PrimaryRateLimitExceeded)
        and exc.retry_after.total_seconds() <= settings.GITHUB_RETRY_MAX_WAIT
    ):
        return RetryOption(True, exc.retry_after)
    return RetryOption(False)


def client(connection: Connection) -> GitHub:
    return GitHub(
        connection.token,
        base_url=connection.api_url.rstrip("/") + "/",
        timeout=settings.GITHUB_TIMEOUT,
        auto_retry=_retry,
        http_cache=False,
        user_agent="ai-orchestra",
    )


def _github_message(response: Response[Any, Any]) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        told = [
            item.get("message") or f"{item.get('field', '?')} {item.get('code', 'invalid')}"
            if isinstance(item, dict)
            else str(item)
            for item in errors
        ]
        message = f"{message}: {'; '.join(str(text) for text in told)}"
    return message or response.reason_phrase


def _seconds(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds()))


def github_error(exc: GitHubException) -> GitHubError:
    """GitHub's failure in the platform's terms (the token is in none of them)."""
    if isinstance(exc, RateLimitExceeded):
        wait = _seconds(exc.retry_after)
        return GitHubError(
            "github_rate_limited",
            f"GitHub's rate limit is spent; retry in {wait} s. {_github_message(exc.response)}",
            status.HTTP_429_TOO_MANY_REQUESTS,
            retry_after=wait,
        )
    if isinstance(exc, RequestFailed):
        code = exc.response.status_code
        message = _github_message(exc.response)
        if code == 401:
            return GitHubError(
                "github_unauthorized",
                f"GitHub refused the token (401: {message}); set a valid token in the GitHub "
                "settings.",
                status.HTTP_401_UNAUTHORIZED,
            )
        if code == 403:
            return GitHubError(
                "github_forbidden",
                f"GitHub refused the call (403: {message}); the token may lack a scope.",
                status.HTTP_403_FORBIDDEN,
            )
        if code == 404:
            return GitHubError(
                "github_not_found",
                f"GitHub has no such resource, or the token cannot see it (404: {message}).",
                status.HTTP_404_NOT_FOUND,
            )
        if code == 422:
            return GitHubError(
                "github_validation_failed",
                f"GitHub refused the input (422: {message}).",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return GitHubError(
            "github_error",
            f"GitHub answered {code}: {message}",
            status.HTTP_502_BAD_GATEWAY,
        )
    if isinstance(exc, RequestTimeout):
        return GitHubError(
            "github_timeout",
            f"GitHub did not answer within {settings.GITHUB_TIMEOUT:g} s.",
            status.HTTP_504_GATEWAY_TIMEOUT,
        )
    if isinstance(exc, RequestError):
        return GitHubError(
            "github_unreachable",
            f"GitHub could not be reached: {type(exc.exc).__name__}: {exc.exc}",
            status.HTTP_502_BAD_GATEWAY,
        )
    return GitHubError("github_error", f"GitHub call failed: {exc}", status.HTTP_502_BAD_GATEWAY)


def call(connection: Connection, request: Callable[[GitHub], Response[Any, Any]]) -> Response:
    """Run one request; any GitHub failure raises ``GitHubError``."""
    try:
        with client(connection) as github:
            return request(github)
    except GitHubException as exc:
        error = github_error(exc)
        logger.info("GitHub call failed: %s", error.detail)
        raise error from None
