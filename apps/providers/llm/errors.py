"""The small set of errors every provider failure is mapped to, and what each one allows.

| code               | retried on the same provider | failed over | counts against the circuit |
| ------------------ | ---------------------------- | ----------- | -------------------------- |
| timeout            | yes                          | yes         | yes                        |
| unavailable        | yes                          | yes         | yes                        |
| malformed_response | yes                          | yes         | yes                        |
| rate_limited       | yes, after a short Retry-After | yes       | no                         |
| model_unavailable  | no                           | yes         | no                         |
| unsupported        | no                           | yes         | no                         |
| auth               | no                           | yes         | yes                        |
| bad_request        | no                           | no          | no                         |
| context_too_long   | no                           | no          | no                         |

A bad request is the caller's mistake: another provider would refuse it too, so it goes
straight back to the caller; so is a request we could not even encode (``bad_request``, raised
before anything was sent). A provider that does not know the model (404) or asks to wait longer
than the router would (429 with a long Retry-After) is failed over at once and its deployment
cools down, out of rotation in every process, for ``MODEL_UNAVAILABLE_COOLDOWN_SECONDS`` or the
Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
MALFORMED_RESPONSE = "malformed_response"
RATE_LIMITED = "rate_limited"
MODEL_UNAVAILABLE = "model_unavailable"
UNSUPPORTED = "unsupported"  # the deployment cannot serve this request (a translation refuses it)
AUTH = "auth"
BAD_REQUEST = "bad_request"
CONTEXT_TOO_LONG = "context_too_long"
# Raised by the core itself, never by a provider:
NO_PROVIDER = "no_provider"
MODEL_NOT_FOUND = "model_not_found"
CANCELLED = "cancelled"
INTERNAL = "internal_error"
INSUFFICIENT_QUOTA = "insufficient_quota"  # a budget of the caller's is spent (before routing)

MODEL_UNAVAILABLE_COOLDOWN_SECONDS = 60.0

_RETRYABLE = {TIMEOUT, UNAVAILABLE, MALFORMED_RESPONSE, RATE_LIMITED}
_CLIENT_ERRORS = {BAD_REQUEST, CONTEXT_TOO_LONG, MODEL_NOT_FOUND}
_CIRCUIT_ERRORS = {TIMEOUT, UNAVAILABLE, MALFORMED_RESPONSE, AUTH}

# What an HTTP client of ours is told for each code.
HTTP_STATUS = {
    TIMEOUT: 504,
    UNAVAILABLE: 502,
    MALFORMED_RESPONSE: 502,
    RATE_LIMITED: 429,
    MODEL_UNAVAILABLE: 404,
    UNSUPPORTED: 400,
    AUTH: 502,
    BAD_REQUEST: 400,
    CONTEXT_TOO_LONG: 400,
    NO_PROVIDER: 503,
    MODEL_NOT_FOUND: 404,
    CANCELLED: 499,
    INTERNAL: 500,
    INSUFFICIENT_QUOTA: 429,
}

_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window")


@dataclass
class ProviderError(Exception):
    code: str
    message: str
    http_status: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.code in _RETRYABLE

    @property
    def client_error(self) -> bool:
        return self.code in _CLIENT_ERRORS

    @property
    def counts_against_circuit(self) -> bool:
        return self.code in _CIRCUIT_ERRORS

    @property
    def status_for_client(self) -> int:
        return HTTP_STATUS.get(self.code, 502)


def error_from_status(status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
    """Map an upstream HTTP error response to our error, keeping the upstream message."""
    message = _upstream_message(body) or f"upstream answered HTTP {status}"
    lowered = message.lower()
    if status == 429:
        return ProviderError(RATE_LIMITED, message, status, _seconds(retry_after))
    if status in (401, 403):
        return ProviderError(AUTH, "the provider refused our credentials", status)
    if status in (408, 504):
        return ProviderError(TIMEOUT, message, status)
    if status == 404:
        return ProviderError(MODEL_UNAVAILABLE, message, status)
    if status in (400, 413, 422):
        code = CONTEXT_TOO_LONG if any(m in lowered for m in _CONTEXT_MARKERS) else BAD_REQUEST
        return ProviderError(code, message, status)
    return ProviderError(UNAVAILABLE, message, status)


def _upstream_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("message") or "")
        return f"{message} ({code})" if code and str(code) not in message else message
    if isinstance(error, str):
        return error
    return ""


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
