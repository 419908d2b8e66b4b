"""DRF's side of the admission sequence (``admission.py``), for REST views that make LLM calls."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .admission import KeyLimits, admit_call
from .authentication import request_api_key
from .limits import RATE_LIMITED, Refusal
from .middleware import request_client


class RateLimitedError(exceptions.Throttled):
    """A 429 in the one error shape (code ``rate_limited``) whose ``wait`` DRF sends as
    ``Retry-After``."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(detail=refusal.message, code=RATE_LIMITED)
        self.wait = refusal.retry_after_seconds


class ApiKeyLimitThrottle(BaseThrottle):
    """Counts the request against its API key's RPM/TPM limits, or refuses it. Sessions and
    keys without limits pass (the per-IP limit is the middleware's)."""

    entry = "REST"

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request_api_key(request)
        if api_key is None or request.method in SAFE_METHODS:  # OPTIONS makes no LLM call
            return True
        admission = admit_call(
            KeyLimits.of(api_key), entry=self.entry, client=request_client(request)
        )
        if admission.refusal is not None:
            raise RateLimitedError(admission.refusal)
        return True
