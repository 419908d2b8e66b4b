"""The one LLM core: every LLM call, from every entry point, goes through it.

``complete`` and ``stream`` talk to providers through the ``openai`` SDK (query API, WebSocket
tasks, builds); ``relay.py`` passes bytes through for the OpenAI-compatible API. Both run in
``engine.execute``, which routes, retries, falls back and records; they differ only in the
attempt they hand it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from . import errors
from .calls import Caller, Chunk, Completion, LlmRequest, Usage, new_call_id, usage_from
from .config import Deployment
from .engine import Execution, current_routing_config, routing_config, run_recorded
from .errors import ProviderError
from .models import CallStatus
from .transports import error_from_sdk, sdk_client

__all__ = [
    "Caller", "Chunk", "Completion", "LlmRequest", "Usage", "collect", "complete",
    "current_routing_config", "new_call_id", "routing_config", "stream",
]  # fmt: skip


# --- the SDK entry points: complete and stream ------------------------------------------------


def _sdk_arguments(request: LlmRequest, deployment: Deployment) -> dict[str, Any]:
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": deployment.model.name, "messages": request.messages, "extra_body": params}


async def complete(request: LlmRequest) -> Completion:
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution):
        try:
            response = await sdk_client(deployment.provider).chat.completions.create(
                **_sdk_arguments(request, deployment)
            )
        except Exception as exc:
            raise error_from_sdk(exc) from exc
        if not getattr(response, "choices", None):
            raise ProviderError(errors.MALFORMED_RESPONSE, "the provider answered without choices")
        return response

    response = await run_recorded(request, execution, attempt)
    choice = response.choices[0]
    content = choice.message.content or ""
    raw_usage = response.usage.model_dump() if response.usage else None
    usage = usage_from(raw_usage, request.messages, content)
    finish_reason = choice.finish_reason or ""
    cost, latency_ms = execution.finish(
        status=CallStatus.SUCCESS, usage=usage, finish_reason=finish_reason
    )
    return Completion(
        call_id=request.call_id,
        content=content,
        provider=execution.deployment.provider.name,
        model=execution.deployment.model.name,
        finish_reason=finish_reason,
        usage=usage,
        cost=cost,
        latency_ms=latency_ms,
    )


async def stream(request: LlmRequest) -> AsyncIterator[Chunk]:
    """Content chunks as they come, then one closing chunk with finish reason and usage.

    Fallback happens only before the first chunk; closing the iterator (or cancelling its
    task) closes the upstream connection and records the call as cancelled.
    """
    execution = Execution(request, stream=True)

    async def attempt(deployment: Deployment, _: Execution):
        arguments = _sdk_arguments(request, deployment)
        if deployment.provider.stream_usage:
            arguments["stream_options"] = {"include_usage": True}
        try:
            upstream = await sdk_client(deployment.provider).chat.completions.create(
                stream=True, **arguments
            )
        except Exception as exc:
            raise error_from_sdk(exc) from exc
        try:
            return upstream, await _read_until_content(upstream, deployment)
        except BaseException:
            await upstream.close()
            raise

    upstream, opening = await run_recorded(request, execution, attempt)
    deployment = execution.deployment
    parts: list[str] = []
    raw_usage = None
    finish_reason = ""
    pieces = 0
    status, error = CallStatus.CANCELLED, None
    try:
        event = opening.pop(0)
        while event is not None:
            raw_usage = event.usage.model_dump() if getattr(event, "usage", None) else raw_usage
            for choice in event.choices or ():
                text = choice.delta.content if choice.delta else None
                if text:
                    execution.mark_first_token()
                    parts.append(text)
                    pieces += 1
                    yield Chunk(content=text)
                finish_reason = choice.finish_reason or finish_reason
            event = opening.pop(0) if opening else await _next_event(upstream, deployment)
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        raise
    finally:
        await upstream.close()
        usage = usage_from(raw_usage, request.messages, "".join(parts), pieces)
        execution.finish(status=status, usage=usage, finish_reason=finish_reason, error=error)
    yield Chunk(
        finish_reason=finish_reason,
        usage=usage,
        provider=deployment.provider.name,
        model=deployment.model.name,
        call_id=request.call_id,
    )


def _event_has_content(event) -> bool:
    return any(
        (choice.delta and choice.delta.content) or choice.finish_reason
        for choice in event.choices or ()
    )


async def _read_until_content(upstream, deployment: Deployment) -> list:
    """Events up to the first with content or a finish (or the end, as ``None``): until then
    nothing has reached the caller, so a failing provider can still be failed over."""
    events: list = []
    while not events or (events[-1] is not None and not _event_has_content(events[-1])):
        events.append(await _next_event(upstream, deployment))
        if events[0] is None:
            raise ProviderError(errors.UNAVAILABLE, "the provider sent an empty stream")
    return events


async def _next_event(upstream, deployment: Deployment):
    """The next SDK stream event, or None at the end; a silent provider times out."""
    try:
        async with asyncio.timeout(deployment.provider.timeout_seconds):
            return await anext(upstream)
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        raise ProviderError(errors.TIMEOUT, "the provider stopped sending") from exc
    except Exception as exc:
        raise error_from_sdk(exc) from exc


async def collect(request: LlmRequest) -> tuple[str, Chunk]:
    """Run a stream to its end: the whole text and the closing chunk (for tests and tasks)."""
    parts: list[str] = []
    last = Chunk()
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.content)
            last = chunk
    return "".join(parts), last
