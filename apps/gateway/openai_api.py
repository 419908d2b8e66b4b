"""``/v1/chat/completions`` and ``/v1/models``: the OpenAI wire format, served at the ASGI level.

An unmodified OpenAI SDK pointed at ``<host>/v1`` with an API key of ours works against it.
Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from apps.accounts.authentication import bearer_token
from apps.accounts.principals import Principal, authenticate_bearer
from apps.core.request_context import request_id_from, request_id_var
from apps.providers.core import Caller, LlmRequest, current_routing_config
from apps.providers.errors import ProviderError
from apps.providers.models import EntryPoint
from apps.providers.relay import relay, relay_stream
from apps.providers.validation import (
    InvalidRequestError,
    check_params,
    messages_from,
    name_from,
    strategy_from,
)

from .http import (
    JSON_HEADERS,
    SSE_HEADERS,
    BodyTooLargeError,
    ClientGoneError,
    header,
    read_body,
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


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> dict[str, Any]:
        kind = ERROR_TYPES.get(self.status, "api_error")
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


def api_error_from(error: ProviderError) -> ApiError:
    return ApiError(error.status_for_client, error.message, error.code)


async def handle(scope: dict, receive, send) -> None:
    request_id = request_id_from(header(scope, b"x-request-id"))
    request_id_var.set(request_id)
    headers = [(b"x-request-id", request_id.encode())]
    try:
        await _dispatch(scope, receive, send, request_id, headers)
    except ApiError as error:
        await send_json(send, error.status, error.body(), headers)
    except ClientGoneError:
        pass
    except Exception:
        logger.exception("unhandled error in %s", scope["path"])
        error = ApiError(500, f"Internal error (request id {request_id}).", "server_error")
        await send_json(send, 500, error.body(), headers)


async def _dispatch(scope, receive, send, request_id: str, headers) -> None:
    path, method = scope["path"].rstrip("/"), scope["method"]
    if path == "/v1/chat/completions":
        _allow(method, "POST")
        principal = await _authenticate(scope, operate=True)
        await _chat_completions(scope, receive, send, principal, request_id, headers)
    elif path == "/v1/models" or path.startswith("/v1/models/"):
        _allow(method, "GET")
        await _authenticate(scope, operate=False)
        await _models(send, path.removeprefix("/v1/models").strip("/"), headers)
    else:
        raise ApiError(404, f"Unknown endpoint {scope['path']}.", "unknown_url")


def _allow(method: str, expected: str) -> None:
    if method != expected:
        raise ApiError(405, f"Method {method} not allowed; use {expected}.", "method_not_allowed")


async def _authenticate(scope: dict, *, operate: bool) -> Principal:
    token = bearer_token(header(scope, b"authorization"))
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


def _strategy(scope: dict) -> str:
    """A per-request routing strategy: ``X-Orchestra-Strategy`` (OpenAI's body has no room)."""
    return strategy_from(header(scope, b"x-orchestra-strategy"), "X-Orchestra-Strategy")


def validate_chat(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    name_from(payload, "model")
    messages_from(payload.get("messages"))
    check_params(payload)
    if not isinstance(payload.get("stream", False), bool):
        raise InvalidRequestError("'stream' must be a boolean.", "stream")
    if not isinstance(payload.get("stream_options") or {}, dict):
        raise InvalidRequestError("'stream_options' must be an object.", "stream_options")
    return payload


async def _chat_completions(scope, receive, send, principal: Principal, request_id: str, headers):
    try:
        body = await read_body(receive, MAX_BODY_BYTES)
    except BodyTooLargeError:
        raise ApiError(413, f"The body exceeds {MAX_BODY_BYTES} bytes.", "body_too_large") from None
    try:
        payload = validate_chat(orjson.loads(body))
        strategy = _strategy(scope)
    except orjson.JSONDecodeError:
        raise ApiError(400, "The body is not valid JSON.", "invalid_json") from None
    except InvalidRequestError as error:
        raise ApiError(400, error.message, "invalid_value", error.param) from None
    request = LlmRequest(
        messages=payload["messages"],
        model=payload.get("model") or "",
        provider=header(scope, b"x-orchestra-provider") or "",
        strategy=strategy,
        caller=Caller(user_id=principal.user_id, api_key_id=principal.api_key_id),
        entry_point=EntryPoint.OPENAI,
        request_id=request_id,
    )
    if payload.get("stream"):
        await until_disconnect(_stream(send, request, payload, headers), receive)
        return
    try:
        answer = await until_disconnect(relay(request, payload), receive)
    except ProviderError as error:
        raise api_error_from(error) from error
    await send_bytes(send, 200, answer, [*JSON_HEADERS, *headers])


async def _stream(send, request: LlmRequest, payload: dict, headers) -> None:
    chunks = relay_stream(request, payload)
    try:
        try:
            first = await anext(chunks)
        except ProviderError as error:
            api_error = api_error_from(error)
            await send_json(send, api_error.status, api_error.body(), headers)
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]}
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await chunks.aclose()


async def _models(send, model_id: str, headers) -> None:
    config = await current_routing_config()
    listed = [
        {"id": name, "object": "model", "created": 0, "owned_by": deployments[0].provider.name}
        for name, deployments in sorted(config.deployments.items())
    ]
    if not model_id:
        await send_json(send, 200, {"object": "list", "data": listed}, headers)
        return
    found = next((m for m in listed if m["id"] == model_id), None)
    if found is None:
        raise ApiError(404, f"The model '{model_id}' does not exist.", "model_not_found", "model")
    await send_json(send, 200, found, headers)
