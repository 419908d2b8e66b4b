"""The SSE streaming API: ``/api/streaming/...`` (start, token, done and error events)."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from contextlib import aclosing

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from apps.accounts.admission import counts_tokens, settle
from apps.accounts.principals import Principal
from apps.core.errors import error_response
from apps.core.json import JsonError, loads
from apps.core.request_context import current_request_id
from apps.providers.llm import (
    Caller,
    Chunk,
    EntryPoint,
    InvalidRequestError,
    LlmRequest,
    ProviderError,
    header_value,
    llm_request_from,
)

from . import streaming
from .auth import api_view
from .streaming import _prepend

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class UnreadableBodyError(Exception):
    """The body is not JSON at all: a ``parse_error``, as from the REST API."""


def _llm_request(request: HttpRequest, principal: Principal, *, from_prompt: bool) -> LlmRequest:
    """The streaming API's body: ``messages`` (chat) or ``prompt`` (generate), with the names
    earlier versions' clients send accepted as aliases: ``backend`` for ``provider``,
    ``maxTokens`` for ``max_tokens``."""
    try:
        payload = loads(request.body or b"null")
    except RequestDataTooBig as exc:
        raise InvalidRequestError("The body is too large.") from exc
    except JsonError as exc:
        raise UnreadableBodyError(f"JSON parse error - {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    if "maxTokens" in payload:
        payload.setdefault("max_tokens", payload.pop("maxTokens"))
    if "backend" in payload:
        payload.setdefault("provider", payload.pop("backend"))
    if from_prompt:
        payload.pop("messages", None)
    return llm_request_from(
        payload,
        caller=Caller.of(principal),
        entry_point=EntryPoint.SSE,
        request_id=current_request_id(),
        allow_prompt=from_prompt,
        user=request.headers.get("X-Orchestra-User"),
        tags=request.headers.get("X-Orchestra-Tags"),
    )


async def _stream(request: HttpRequest, principal: Principal, *, from_prompt: bool):
    try:
        llm_request = _llm_request(request, principal, from_prompt=from_prompt)
    except InvalidRequestError as error:
        return error_response("validation_error", error.message, 400, {"param": error.param})
    except UnreadableBodyError as error:
        return error_response("parse_error", str(error), 400)
    try:
        stream_id, chunks = await streaming.stream_open(llm_request, principal.user_id)
    except ProviderError as error:
        refused = error_response(error.code, error.message, error.status_for_client)
        if error.status_for_client == 429:
            refused["Retry-After"] = str(max(1, math.ceil(error.retry_after or 1)))
        return refused
    first = await anext(chunks)  # already received: it names who serves the stream
    chunks = _prepend(first, chunks)
    if counts_tokens(principal):
        chunks = _tokens_counted(chunks, principal)
    events = streaming.stream_events(stream_id, llm_request.model, chunks)
    response = StreamingHttpResponse(events, content_type="text/event-stream", headers=SSE_HEADERS)
    response["X-Stream-ID"] = stream_id
    response["X-Orchestra-Provider"] = header_value(first.provider)
    response["X-Orchestra-Model"] = header_value(first.model)
    response["X-Orchestra-Call-Id"] = str(llm_request.call_id)
    return response


async def _tokens_counted(
    chunks: AsyncGenerator[Chunk, None], principal: Principal
) -> AsyncGenerator[Chunk, None]:
    """The stream, its tokens settled (``apps.accounts.admission``) when it ends."""
    async with aclosing(chunks):
        async for chunk in chunks:
            if chunk.usage is not None:
                settle(principal, tokens=chunk.usage.total_tokens)
            yield chunk


@api_view("POST", operate=True, llm_call=True)
async def chat(request: HttpRequest, principal: Principal) -> HttpResponse:
    return await _stream(request, principal, from_prompt=False)


@api_view("POST", operate=True, llm_call=True)
async def generate(request: HttpRequest, principal: Principal) -> HttpResponse:
    return await _stream(request, principal, from_prompt=True)


@api_view("GET", operate=False)
async def active(request: HttpRequest, principal: Principal) -> HttpResponse:
    """Every web process's streams; ``complete`` is false when only this process's are known
    (Redis does not answer)."""
    streams, complete = await streaming.streams_active()
    return JsonResponse(
        {"success": True, "streams": streams, "count": len(streams), "complete": complete}
    )


@api_view("GET", operate=False)
async def statistics(request: HttpRequest, principal: Principal) -> HttpResponse:
    try:
        figures = await streaming.streams_statistics()
    except streaming.RegistryUnavailableError as error:
        return error_response("unavailable", f"Statistics are unavailable: {error}.", 503)
    return JsonResponse({"success": True, "statistics": figures})


@api_view("DELETE", operate=False)
async def cancel(request: HttpRequest, principal: Principal, stream_id: str) -> HttpResponse:
    """The stream's owner, or any operator, may cancel it, whichever process runs it."""
    entry = await streaming.stream_get(stream_id)
    if entry is None:
        return error_response("not_found", f"No running stream {stream_id}.", 404)
    if entry["user"] != principal.user_id and not principal.can_operate:
        return error_response("permission_denied", "Only its owner or an operator.", 403)
    try:
        await streaming.stream_cancel(stream_id)
    except streaming.RegistryUnavailableError as error:
        return error_response("unavailable", f"The stream was not cancelled: {error}.", 503)
    return JsonResponse({"success": True, "streamId": stream_id, "cancelled": True}, status=202)
