"""The worker side of WebSocket ``query`` and ``stream``: run the LLM core, relay to the socket.

The Celery task (``tasks.llm_ask``) runs ``relay_to_connection`` on the worker's long-lived event
loop. It opens a control channel of its own and announces it to the consumer in
``llm.started``; a ``cancel`` arriving there stops the work (closing the upstream request, so the
call is recorded as cancelled). While working it sends ``llm.heartbeat`` so the consumer can tell
a slow provider from a dead worker. Replies go to the consumer's channel as ``llm.token`` /
``llm.done`` (stream), ``llm.response`` (query) or ``llm.error``. The last of these says what the
call record says of it (provider, usage, cost, latency, time to first token) and the record's
id, so a client can link to it; an error names the record too, since failed and cancelled calls
are recorded as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from contextlib import aclosing
from decimal import Decimal
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from apps.providers.llm import (
    Caller,
    EntryPoint,
    LlmRequest,
    ProviderError,
    complete,
    llm_request_from,
    stream,
)


def cost_text(cost: Decimal | None) -> str | None:
    """A cost as the REST API gives it: a decimal string, exact to the record's 8 places."""
    return None if cost is None else f"{cost:.8f}"


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def heartbeat_seconds() -> float:
    return max(0.2, settings.WEBSOCKET_WORKER_SILENCE_SECONDS / 3)


def request_from(ask: dict[str, Any], *, caller: dict[str, Any], request_id: str) -> LlmRequest:
    """The consumer validated the payload already; the same builder makes the request here."""
    return llm_request_from(
        ask["payload"],
        caller=Caller(**caller),
        entry_point=EntryPoint.WEBSOCKET,
        request_id=request_id,
        allow_prompt=True,
    )


async def relay_to_connection(
    reply_channel: str, *, ask: dict[str, Any], caller: dict[str, Any], request_id: str
) -> None:
    """Answer one admitted ``query`` or ``stream`` (``ask``, as the consumer parsed it) to the
    connection's ``reply_channel``, until it ends or the consumer sends ``cancel`` to the
    control channel announced in ``llm.started``; a heartbeat runs meanwhile."""
    layer = get_channel_layer()
    ask_id = ask["id"]
    control = await layer.new_channel()
    await layer.send(reply_channel, {"type": "llm.started", "id": ask_id, "control": control})
    request = request_from(ask, caller=caller, request_id=request_id)
    work = asyncio.ensure_future(
        _answer(layer, reply_channel, ask_id=ask_id, streaming=ask["stream"], request=request)
    )
    cancel = asyncio.ensure_future(layer.receive(control))
    heartbeat = asyncio.ensure_future(_heartbeat(layer, reply_channel, ask_id=ask_id))
    try:
        await asyncio.wait((work, cancel), return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            await layer.send(
                reply_channel,
                {
                    "type": "llm.error",
                    "id": ask_id,
                    "code": "cancelled",
                    "message": "Cancelled.",
                    "call_id": str(request.call_id),
                },
            )
    finally:
        for task in (work, cancel, heartbeat):
            task.cancel()


async def _heartbeat(layer, reply_channel: str, *, ask_id) -> None:
    while True:
        await asyncio.sleep(heartbeat_seconds())
        await layer.send(reply_channel, {"type": "llm.heartbeat", "id": ask_id})


async def _answer(
    layer, reply_channel: str, *, ask_id, streaming: bool, request: LlmRequest
) -> None:
    """Run the call through the core and send its answer (``llm.response``) or its tokens and
    end (``llm.token``, ``llm.done``); a failure is sent as ``llm.error``, naming the record."""
    try:
        if streaming:
            await _stream(layer, reply_channel, ask_id=ask_id, request=request)
        else:
            completion = await complete(request)
            await layer.send(
                reply_channel,
                {
                    "type": "llm.response",
                    "id": ask_id,
                    "content": completion.content,
                    "provider": completion.provider,
                    "model": completion.model,
                    "finish_reason": completion.finish_reason,
                    "usage": completion.usage.as_dict(),
                    "cost": cost_text(completion.cost),
                    "latency_ms": ms(completion.latency_ms),
                    "call_id": str(completion.call_id),
                },
            )
    except ProviderError as error:
        failure = {
            "type": "llm.error",
            "id": ask_id,
            "code": error.code,
            "message": error.message,
            "call_id": str(request.call_id),
        }
        if error.status_for_client == 429:  # a spent budget, every deployment waiting
            failure["retry_after"] = max(1, math.ceil(error.retry_after or 1))
        await layer.send(reply_channel, failure)


async def _stream(layer, reply_channel: str, *, ask_id, request: LlmRequest) -> None:
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            if chunk.content:
                await layer.send(
                    reply_channel, {"type": "llm.token", "id": ask_id, "content": chunk.content}
                )
            elif chunk.usage is not None:
                await layer.send(
                    reply_channel,
                    {
                        "type": "llm.done",
                        "id": ask_id,
                        "finish_reason": chunk.finish_reason,
                        "usage": chunk.usage.as_dict(),
                        "provider": chunk.provider,
                        "model": chunk.model,
                        "cost": cost_text(chunk.cost),
                        "latency_ms": ms(chunk.latency_ms),
                        "time_to_first_token_ms": ms(chunk.time_to_first_token_ms),
                        "call_id": str(chunk.call_id),
                    },
                )
