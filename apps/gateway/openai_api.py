"""The OpenAI-compatible API (``/v1/…``), served at the ASGI level beside Django.

``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and ``/v1/responses``
go through the LLM core (routing, retries, fallback, breakers, one call record each);
``GET``/``DELETE /v1/responses/{id}`` reach the provider that keeps a stored response;
``GET /v1/models`` and ``/v1/models/{id}`` list the public models. An unmodified OpenAI SDK
pointed at ``<host>/v1`` with an API key of ours works against it.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with OpenAI's
own codes where they exist. Every 429 carries ``Retry-After``. When the gateway has already
retried and failed over, an error it answers carries ``x-should-retry: false`` (which the
official SDKs honour), so a client does not multiply the attempts; a 429 that says how long to
wait leaves the client free to wait and retry.

An answer to an LLM call names its call record (``x-orchestra-call-id``) and, once served,
the deployment (``x-orchestra-provider``, ``x-orchestra-model``: ``Deployment.answer_headers``,
encoded once per config snapshot); an unknown model's 404 names the models there are.

Every request is admitted as every entry point's are (``apps.accounts.admission``): the per-IP
limit before its key is looked up, then an LLM call against its key's limits, and its tokens
settled after the answer; a key with limits gets OpenAI's ``x-ratelimit-*`` headers on every
answer to an LLM call.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import orjson

from apps.accounts.admission import (
    ADMITTED,
    Refusal,
    admit_call,
    admit_client,
    counts_tokens,
    settle,
)
from apps.accounts.authentication import bearer_token
from apps.accounts.limits import scope_client, usage_tokens
from apps.accounts.principals import Principal, authenticate_bearer
from apps.core.database import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, is_database_unavailable
from apps.core.json import NulCharacterError, nul_path
from apps.core.request_context import request_id_from, request_id_var
from apps.providers.llm import (
    Caller,
    Endpoint,
    EntryPoint,
    InvalidRequestError,
    LlmRequest,
    ProviderError,
    current_routing_config,
    errors,
    llm_request_from,
    relay,
    relay_stream,
    stored_response,
)

from .http import (
    JSON_HEADERS,
    SSE_HEADERS,
    BodyTooLargeError,
    ClientGoneError,
    Headers,
    read_body,
    scope_headers,
    send_bytes,
    send_json,
    until_disconnect,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
# Our error codes that OpenAI has its own name for.
OPENAI_CODES = {
    "rate_limited": "rate_limit_exceeded",
    "context_too_long": "context_length_exceeded",
    "model_unavailable": "model_not_found",
}
LLM_PATHS = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/responses": Endpoint.RESPONSES,
}
NO_RETRY: Headers = [(b"x-should-retry", b"false")]
# Every request header /v1 reads, read in one pass over the scope's (``scope_headers``).
AUTHORIZATION = b"authorization"
REQUEST_ID = b"x-request-id"
PROVIDER, STRATEGY, EXPERIMENT = (
    b"x-orchestra-provider",
    b"x-orchestra-strategy",
    b"x-orchestra-experiment",
)
USER, TAGS = b"x-orchestra-user", b"x-orchestra-tags"
READ_HEADERS = frozenset({AUTHORIZATION, REQUEST_ID, PROVIDER, STRATEGY, EXPERIMENT, USER, TAGS})
RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
MODELS_NAMED = 10  # at most, in the message of an unknown model's 404


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        kind = (
            errors.INSUFFICIENT_QUOTA
            if self.code == errors.INSUFFICIENT_QUOTA
            else ERROR_TYPES.get(self.status, "api_error")
        )
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


def api_error_from(error: ProviderError) -> ApiError:
    """The answer to a failed call: OpenAI's code, ``Retry-After`` on a 429, and
    ``x-should-retry: false`` where the gateway's own retries and fallback are spent, or where a
    spent budget (``insufficient_quota``, OpenAI's own shape and code) makes a retry pointless
    until it resets."""
    status = error.status_for_client
    headers: Headers = []
    if status == 429:
        wait = max(1, math.ceil(error.retry_after or 1))
        headers.append((b"retry-after", str(wait).encode()))
        headers.append((b"retry-after-ms", str(int((error.retry_after or 1) * 1000)).encode()))
        if error.code == errors.INSUFFICIENT_QUOTA:
            headers += NO_RETRY
    if status >= 500:
        headers += NO_RETRY
    code = OPENAI_CODES.get(error.code, error.code)
    return ApiError(status, error.message, code, headers=headers)


async def unknown_model(message: str, endpoint: str | None = None) -> str:
    """An unknown model's message, with the models there are (a few) and how to list them."""
    config = await current_routing_config()
    names = [
        name
        for name in config.public_models()
        if endpoint is None or config.deployments_for(name, endpoint=endpoint)
    ]
    shown = ", ".join(names[:MODELS_NAMED]) or "none"
    more = f" and {len(names) - MODELS_NAMED} more" if len(names) > MODELS_NAMED else ""
    return f"{message}. Models here: {shown}{more} (GET /v1/models lists them)."


async def call_failed(error: ProviderError, endpoint: str) -> ApiError:
    """``api_error_from``, an unknown model's message naming the models there are."""
    failure = api_error_from(error)
    if error.code == errors.MODEL_NOT_FOUND:
        failure.message = await unknown_model(failure.message, endpoint)
    return failure


def rate_limited(refusal: Refusal) -> ApiError:
    """Our own refusal (the per-IP limit, a key's limits), as OpenAI answers one."""
    headers: Headers = [
        (b"retry-after", str(refusal.retry_after_seconds).encode()),
        (b"retry-after-ms", str(int(refusal.retry_after * 1000)).encode()),
    ]
    return ApiError(429, refusal.message, OPENAI_CODES[refusal.code], headers=headers)


async def handle(scope: dict[str, Any], receive: Any, send: Any) -> None:
    found = scope_headers(scope, READ_HEADERS)
    request_id = request_id_from(found.get(REQUEST_ID))
    request_id_var.set(request_id)
    headers: Headers = [(b"x-request-id", request_id.encode())]
    try:
        await _dispatch(scope, receive, send, request_id=request_id, headers=headers, found=found)
    except ApiError as error:
        await send_json(send, error.status, error.body(), [*headers, *error.headers])
    except ClientGoneError:
        pass
    except Exception as error:
        if is_database_unavailable(error):
            logger.warning("the database is unavailable: answered 503 to %s", scope["path"])
            retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            unavailable = ApiError(503, UNAVAILABLE_MESSAGE, "database_unavailable", headers=retry)
            await send_json(send, 503, unavailable.body(), [*headers, *unavailable.headers])
            return
        logger.exception("unhandled error in %s", scope["path"])
        failure = ApiError(500, f"Internal error (request id {request_id}).", "server_error")
        await send_json(send, 500, failure.body(), [*headers, *NO_RETRY])


async def _dispatch(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    *,
    request_id: str,
    headers: Headers,
    found: dict[bytes, str],
) -> None:
    """Route a request to its endpoint, admitting it on the way (``apps.accounts.admission``):
    every request against the per-IP limit, an LLM call against its key's limits too.
    ``headers`` collects what every answer carries, an error's included; ``found`` holds the
    request's headers that /v1 reads (``READ_HEADERS``)."""
    path, method = scope["path"].rstrip("/"), scope["method"]
    endpoint = LLM_PATHS.get(path)
    client = scope_client(scope)
    if endpoint is not None:
        _allow(method, "POST")
        principal = await _authenticate(found, client, operate=True)
        admission = admit_call(principal, entry="/v1", client=client)
        if admission is not ADMITTED:  # the key has limits: say where it stands
            headers.extend((name.encode(), value.encode()) for name, value in admission.headers())
            if admission.refusal is not None:
                raise rate_limited(admission.refusal)
        await _llm_call(
            found,
            receive,
            send,
            principal=principal,
            request_id=request_id,
            endpoint=endpoint,
            headers=headers,
        )
    elif path.startswith("/v1/responses/"):
        _allow(method, "GET", "DELETE")
        await _authenticate(found, client, operate=method == "DELETE")
        await _stored_response(
            send, method=method, response_id=path.removeprefix("/v1/responses/"), headers=headers
        )
    elif path == "/v1/models" or path.startswith("/v1/models/"):
        _allow(method, "GET")
        await _authenticate(found, client, operate=False)
        await _models(send, model_id=path.removeprefix("/v1/models").strip("/"), headers=headers)
    else:
        raise ApiError(404, f"Unknown endpoint {scope['path']}.", "unknown_url")


def _allow(method: str, *expected: str) -> None:
    if method not in expected:
        allowed = " or ".join(expected)
        raise ApiError(405, f"Method {method} not allowed; use {allowed}.", "method_not_allowed")


async def _authenticate(found: dict[bytes, str], client: str, *, operate: bool) -> Principal:
    """The caller, once the per-IP limit lets the request from ``client`` through (before the
    key is looked up, so a flood of made-up keys costs no lookups)."""
    refusal = admit_client(client, entry="/v1")
    if refusal is not None:
        raise rate_limited(refusal)
    token = bearer_token(found.get(AUTHORIZATION))
    if not token:
        raise ApiError(
            401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key"
        )
    principal = await authenticate_bearer(token)
    if principal is None:
        raise ApiError(401, "Invalid, revoked or expired API key.", "invalid_api_key")
    if not (principal.can_operate if operate else principal.can_view):
        raise ApiError(403, "This key's role may not do this.", "permission_denied")
    return principal


def validate_call(
    payload: Any,
    found: dict[bytes, str],
    *,
    principal: Principal,
    request_id: str,
    endpoint: str,
) -> LlmRequest:
    """The request the core runs; the caller's body itself goes upstream (``relay``)."""
    request = llm_request_from(
        payload,
        caller=Caller.of(principal),
        entry_point=EntryPoint.OPENAI,
        request_id=request_id,
        endpoint=endpoint,
        require_model=True,
        provider=found.get(PROVIDER) or "",
        strategy=found.get(STRATEGY) or "",
        experiment=found.get(EXPERIMENT),
        user=found.get(USER),
        tags=found.get(TAGS),
        body_tags=False,
        from_json=True,
    )
    if "stream" in payload:
        stream = payload["stream"]
        if not isinstance(stream, bool):
            raise InvalidRequestError("'stream' must be a boolean.", "stream")
        if stream and endpoint == Endpoint.EMBEDDINGS:
            raise InvalidRequestError("Embeddings do not stream.", "stream")
    if "stream_options" in payload and not isinstance(payload["stream_options"] or {}, dict):
        raise InvalidRequestError("'stream_options' must be an object.", "stream_options")
    return request


def _refuse_nul(payload: Any) -> None:
    """NUL is refused in every entry point's JSON (``apps.core.json``), so /v1 takes what the
    others take; only a body holding the escape is walked."""
    path = nul_path(payload)
    if path is not None:
        error = NulCharacterError(path)
        raise InvalidRequestError(str(error), path)


async def _llm_call(
    found: dict[bytes, str],
    receive: Any,
    send: Any,
    *,
    principal: Principal,
    request_id: str,
    endpoint: str,
    headers: Headers,
) -> None:
    """One admitted LLM call of ``endpoint``: read and validate the body, relay it through the
    core (streamed when it asks to be), answer, and settle the call's tokens with its key.

    The caller's body goes upstream as it came (``relay``); it is parsed only to validate it and
    to build the ``LlmRequest`` the core routes and records by. Reading the answer, or the
    stream, races the client's disconnect (``until_disconnect``), so a client that leaves
    cancels the upstream call. Tokens are counted only when ``settle`` wants them, and a stream's
    only once it started (one that failed before its first event spent none). ``headers``
    already holds the request id and the key's quotas; the call id and, once served, the
    deployment are added here."""
    try:
        body = await read_body(receive, MAX_BODY_BYTES)
    except BodyTooLargeError:
        raise ApiError(413, f"The body exceeds {MAX_BODY_BYTES} bytes.", "body_too_large") from None
    try:
        payload = orjson.loads(body)
        if b"\\u0000" in body:
            _refuse_nul(payload)
        request = validate_call(
            payload, found, principal=principal, request_id=request_id, endpoint=endpoint
        )
    except orjson.JSONDecodeError:
        raise ApiError(400, "The body is not valid JSON.", "invalid_json") from None
    except InvalidRequestError as error:
        code = "model_required" if error.param == "model" else "invalid_value"
        raise ApiError(400, error.message, code, error.param) from None
    headers.append((b"x-orchestra-call-id", str(request.call_id).encode()))
    tokens = StreamTokens(request) if counts_tokens(principal) else None
    if payload.get("stream"):
        try:
            await until_disconnect(
                _stream(send, request, payload=payload, headers=headers, tokens=tokens), receive
            )
        finally:
            if tokens is not None and tokens.started:
                settle(principal, tokens=tokens.total)
        return
    try:
        answer, deployment = await until_disconnect(relay(request, payload), receive)
    except ProviderError as error:
        raise await call_failed(error, endpoint) from error
    if tokens is not None:
        settle(principal, tokens=answer_tokens(answer))
    await send_bytes(send, 200, answer, [*JSON_HEADERS, *headers, *deployment.answer_headers])


def answer_tokens(answer: bytes) -> int:
    """The tokens of an answer, from its usage (for a key's TPM limit)."""
    try:
        body = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return 0
    return usage_tokens(body.get("usage")) if isinstance(body, dict) else 0


class StreamTokens:
    """A stream's tokens, for its key's TPM limit: the usage it carries (when the caller asked
    for it with ``stream_options.include_usage``, and on the Responses API), else estimated as
    the core does: the prompt at 4 characters a token and a token per event."""

    def __init__(self, request: LlmRequest) -> None:
        self.request = request
        self.started = False
        self.events = 0
        self.usage = 0

    def see(self, chunk: bytes) -> None:
        self.started = True
        self.events += chunk.count(b"data:")
        if b'"usage"' not in chunk:
            return
        for line in chunk.splitlines():
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    data = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    inner = data.get("response")
                    usage = data.get("usage") or (
                        inner.get("usage") if isinstance(inner, dict) else None
                    )
                    self.usage = usage_tokens(usage) or self.usage

    @property
    def total(self) -> int:
        if self.usage:
            return self.usage
        prompt = sum(
            len(str(m.get("content") or "")) for m in self.request.messages if isinstance(m, dict)
        )
        return prompt // 4 + self.events


async def _stream(
    send: Any,
    request: LlmRequest,
    *,
    payload: dict[str, Any],
    headers: Headers,
    tokens: StreamTokens | None = None,
) -> None:
    """Relay a stream as server-sent events. The status goes out with the first event: until
    then the core may still fail over, and a stream that fails before it is answered as an
    error in OpenAI's shape, with its own status. ``tokens`` sees every event sent."""
    chunks = relay_stream(request, payload, lambda served: headers.extend(served.answer_headers))
    try:
        try:
            first = await anext(chunks)
        except ProviderError as error:
            api_error = await call_failed(error, request.endpoint)
            await send_json(
                send, api_error.status, api_error.body(), [*headers, *api_error.headers]
            )
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]}
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        if tokens is not None:
            tokens.see(first)
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if tokens is not None:
                tokens.see(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await chunks.aclose()


async def _stored_response(send: Any, *, method: str, response_id: str, headers: Headers) -> None:
    """A response the upstream keeps, fetched or deleted at the provider that made it."""
    if not RESPONSE_ID.match(response_id):
        raise ApiError(404, f"No response '{response_id[:100]}'.", "not_found", "response_id")
    try:
        reply = await stored_response(method, response_id)
    except ProviderError as error:
        raise api_error_from(error) from error
    if reply is None:
        message = (
            f"No response '{response_id}' is stored: it was not made here, was not stored, or "
            "was served by a provider without the Responses API (translated ones are not kept)."
        )
        raise ApiError(404, message, "not_found", "response_id")
    await send_bytes(send, reply.status, reply.body, [*JSON_HEADERS, *headers])


async def _models(send: Any, *, model_id: str, headers: Headers) -> None:
    """``GET /v1/models`` (every public model) or ``/v1/models/{id}`` (one)."""
    config = await current_routing_config()
    listed = [
        {
            "id": name,
            "object": "model",
            "created": deployments[0].model.created,
            "owned_by": deployments[0].model.owned_by,
            "mode": deployments[0].model.mode,
        }
        for name, deployments in sorted(config.deployments.items())
    ]
    if not model_id:
        await send_json(send, 200, {"object": "list", "data": listed}, headers)
        return
    found = next((m for m in listed if m["id"] == model_id), None)
    if found is None:
        message = await unknown_model(f"The model '{model_id[:200]}' does not exist")
        raise ApiError(404, message, "model_not_found", "model")
    await send_json(send, 200, found, headers)
