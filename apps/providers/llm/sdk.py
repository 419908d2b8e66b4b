"""The LLM core's own entry points, ``complete`` and ``stream``, talking to providers through the
``openai`` SDK (query API, WebSocket tasks, builds). They run in ``engine.execute`` like the
pass-through of ``relay.py``, and differ from it only in the attempt they hand it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ..models import CallStatus
from . import errors
from .bookkeeping import Execution
from .calls import Chunk, Completion, LlmRequest, usage_from
from .config import Deployment
from .engine import run_recorded
from .errors import ProviderError
from .streams import StreamRun, read_until_content
from .transport.transports import error_from_sdk, sdk_client
from .wire import Event, chat_event


def _url(deployment: Deployment) -> str:
    return deployment.provider.base_url + "/chat/completions"


def _sdk_arguments(request: LlmRequest, deployment: Deployment) -> dict[str, Any]:
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": deployment.model.name, "messages": request.messages, "extra_body": params}


async def complete(request: LlmRequest) -> Completion:
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution) -> ChatCompletion:
        try:
            response = await sdk_client(deployment.provider).chat.completions.create(
                **_sdk_arguments(request, deployment)
            )
        except Exception as exc:
            raise error_from_sdk(exc, _url(deployment)) from exc
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
    assert execution.deployment is not None
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


Upstream = AsyncStream[ChatCompletionChunk]


async def _read(upstream: Upstream, deployment: Deployment) -> list[Event]:
    """The next event as a dict (an empty list at the end); a silent provider times out."""
    try:
        async with asyncio.timeout(deployment.provider.timeout_seconds):
            return [(await anext(upstream)).to_dict()]
    except StopAsyncIteration:
        return []
    except TimeoutError as exc:
        raise ProviderError(errors.TIMEOUT, "the provider stopped sending") from exc
    except Exception as exc:
        raise error_from_sdk(exc, _url(deployment)) from exc


async def stream(request: LlmRequest) -> AsyncGenerator[Chunk, None]:
    """Content chunks as they come, then one closing chunk with finish reason and usage.

    Fallback happens only before the first chunk; closing the iterator (or cancelling its
    task) closes the upstream connection and records the call as cancelled.
    """
    execution = Execution(request, stream=True)

    async def attempt(deployment: Deployment, _: Execution) -> tuple[Upstream, list[Event]]:
        arguments = _sdk_arguments(request, deployment)
        if deployment.provider.stream_usage:
            arguments["stream_options"] = {"include_usage": True}
        try:
            upstream = await sdk_client(deployment.provider).chat.completions.create(
                stream=True, **arguments
            )
        except Exception as exc:
            raise error_from_sdk(exc, _url(deployment)) from exc
        try:
            opening = await read_until_content(lambda: _read(upstream, deployment), chat_event)
            return upstream, opening
        except BaseException:
            await upstream.close()
            raise

    upstream, events = await run_recorded(request, execution, attempt)
    deployment = execution.deployment
    assert deployment is not None
    provider, model = deployment.provider.name, deployment.model.name
    run = StreamRun(execution)
    status, error = CallStatus.CANCELLED, None
    try:
        while events:
            for event in events:
                text = run.add(chat_event(event))
                if text:
                    yield Chunk(content=text, provider=provider, model=model)
            events = await _read(upstream, deployment)
        run.check_complete()
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        raise
    finally:
        await upstream.close()
        await run.end(status, error)
    yield Chunk(
        finish_reason=run.finish_reason,
        usage=run.usage,
        provider=provider,
        model=model,
        call_id=request.call_id,
        cost=run.cost,
        latency_ms=run.latency_ms,
        time_to_first_token_ms=execution.time_to_first_token_ms,
    )


async def collect(request: LlmRequest) -> tuple[str, Chunk]:
    """Run a stream to its end: the whole text and the closing chunk (for tests and tasks)."""
    parts: list[str] = []
    last = Chunk()
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.content)
            last = chunk
    return "".join(parts), last
