"""The SSE streaming API of seed 002: ``/api/streaming/...``."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from apps.accounts.principals import Principal
from apps.core.errors import error_response
from apps.core.request_context import current_request_id
from apps.providers.core import Caller, LlmRequest
from apps.providers.errors import ProviderError
from apps.providers.models import EntryPoint
from apps.providers.validation import (
    InvalidRequestError,
    check_params,
    messages_from,
    name_from,
    prompt_messages,
)

from . import streaming
from .auth import api_view

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _payload(request: HttpRequest) -> dict:
    try:
        payload = json.loads(request.body or b"null")
    except RequestDataTooBig as exc:
        raise InvalidRequestError("The body is too large.") from exc
    except ValueError as exc:
        raise InvalidRequestError("The body is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    if "maxTokens" in payload:
        payload.setdefault("max_tokens", payload.pop("maxTokens"))
    return payload


def _llm_request(payload: dict, principal: Principal, *, from_prompt: bool) -> LlmRequest:
    messages = (
        prompt_messages(payload.get("prompt"))
        if from_prompt
        else messages_from(payload.get("messages"))
    )
    check_params(payload)
    provider = name_from(payload, "backend") or name_from(payload, "provider")
    return LlmRequest(
        messages=messages,
        model=name_from(payload, "model"),
        provider=provider,
        params={k: payload[k] for k in ("temperature", "max_tokens", "top_p") if k in payload},
        caller=Caller(user_id=principal.user_id, api_key_id=principal.api_key_id),
        entry_point=EntryPoint.SSE,
        request_id=current_request_id(),
    )


async def _stream(request: HttpRequest, principal: Principal, *, from_prompt: bool):
    try:
        llm_request = _llm_request(_payload(request), principal, from_prompt=from_prompt)
    except InvalidRequestError as error:
        return error_response("validation_error", error.message, 400, {"param": error.param})
    try:
        stream_id, chunks = await streaming.stream_open(llm_request, principal.user_id)
    except ProviderError as error:
        return error_response(error.code, error.message, error.status_for_client)
    events = streaming.stream_events(stream_id, llm_request.model, chunks)
    response = StreamingHttpResponse(events, content_type="text/event-stream", headers=SSE_HEADERS)
    response["X-Stream-ID"] = stream_id
    return response


@api_view("POST", operate=True)
async def chat(request: HttpRequest, principal: Principal) -> HttpResponse:
    return await _stream(request, principal, from_prompt=False)


@api_view("POST", operate=True)
async def generate(request: HttpRequest, principal: Principal) -> HttpResponse:
    return await _stream(request, principal, from_prompt=True)


@api_view("GET", operate=False)
async def active(request: HttpRequest, principal: Principal) -> HttpResponse:
    streams = await streaming.streams_active()
    return JsonResponse({"success": True, "streams": streams, "count": len(streams)})


@api_view("GET", operate=False)
async def statistics(request: HttpRequest, principal: Principal) -> HttpResponse:
    return JsonResponse({"success": True, "statistics": await streaming.streams_statistics()})


@api_view("DELETE", operate=False)
async def cancel(request: HttpRequest, principal: Principal, stream_id: str) -> HttpResponse:
    """The stream's owner, or any operator, may cancel it, whichever process runs it."""
    entry = await streaming.stream_get(stream_id)
    if entry is None:
        return error_response("not_found", f"No running stream {stream_id}.", 404)
    if entry["user"] != principal.user_id and not principal.can_operate:
        return error_response("permission_denied", "Only its owner or an operator.", 403)
    await streaming.stream_cancel(stream_id)
    return JsonResponse({"success": True, "streamId": stream_id, "cancelled": True}, status=202)
