"""The worker side of WebSocket ``query`` and ``stream``: run the LLM core, relay to the socket.

The Celery task (``tasks.llm_ask``) runs ``relay_to_connection`` on the worker's long-lived event
loop. It opens a control channel of its own and announces it to the consumer in ``llm.started``,
sent while the call begins (not before it: a quick answer would wait for it) and before anything
else reaches the connection; a ``cancel`` arriving there stops the work (closing the upstream
request, so the call is recorded as cancelled). Cancelling the work's task is not enough on its
own: Python 3.11's ``asyncio.wait_for``, around redis-py's every write to Redis, swallows a
cancellation that lands as the command completes, and the stream then ran to its end under load.
So nothing more is relayed once the cancel has come: each send to the connection checks it before
and after (``_sender``), and a stream stops at its next token however the cancellation fared.
While working it sends ``llm.heartbeat`` so the consumer can tell a slow provider from a dead
worker. Replies go to the consumer's channel as ``llm.token`` / ``llm.done`` (stream),
``llm.response`` (query) or ``llm.error``. The last of these says what the call record says of it
(provider, usage, cost, latency, time to first token) and the record's id, so a client can link
to it; an error names the record too, since failed and cancelled calls are recorded as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from decimal import Decimal
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from apps.core.redis import async_redis, key, text
from apps.providers.llm import (
    Caller,
    EntryPoint,
    LlmRequest,
    ProviderError,
    complete,
    llm_request_from,
    stream,
)

Send = Callable[[dict[str, Any]], Awaitable[None]]


CANCELLED = "cancelled"


def claim_key(task_id: str) -> str:
    return key("ws", "llm", task_id)


def claim_seconds() -> int:
    """A claim outlives the task's wait in the queue (it expires after the silence) and the
    consumer's reading of ``llm.started``, with room to spare."""
    return int(2 * settings.WEBSOCKET_WORKER_SILENCE_SECONDS) + 60


async def claim_work(task_id: str, control: str) -> bool:
    """The worker's side of the claim on a task: its control channel, unless a cancel claimed
    the task first (then False, and the task is dropped). One ``SET NX`` each side, so a cancel
    is never lost between the task's hand-over and the consumer's reading of ``llm.started``."""
    return bool(await async_redis().set(claim_key(task_id), control, nx=True, ex=claim_seconds()))


async def claim_cancel(task_id: str) -> str | None:
    """The consumer's side: the control channel of the worker that started the task, or None
    when it had not (the worker that picks it up will drop it)."""
    client = async_redis()
    if await client.set(claim_key(task_id), CANCELLED, nx=True, ex=claim_seconds()):
        return None
    control = await client.get(claim_key(task_id))
    return None if control is None or text(control) == CANCELLED else text(control)


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
    reply_channel: str,
    *,
    task_id: str,
    ask: dict[str, Any],
    caller: dict[str, Any],
    request_id: str,
) -> None:
    """Answer one admitted ``query`` or ``stream`` (``ask``, as the consumer parsed it) to the
    connection's ``reply_channel``, until it ends or the consumer sends ``cancel`` to the
    control channel announced in ``llm.started``; a heartbeat runs meanwhile. A task cancelled
    before it started (``claim_cancel``) is dropped: the consumer has answered already."""
    layer = get_channel_layer()
    ask_id = ask["id"]
    control = await layer.new_channel()
    if not await claim_work(task_id, control):
        return
    started = asyncio.ensure_future(
        layer.send(reply_channel, {"type": "llm.started", "id": ask_id, "control": control})
    )
    request = request_from(ask, caller=caller, request_id=request_id)
    cancel = asyncio.ensure_future(layer.receive(control))
    send = _sender(layer, reply_channel, cancel, started)
    work = asyncio.ensure_future(
        _answer(send, ask_id=ask_id, streaming=ask["stream"], request=request)
    )
    heartbeat = asyncio.ensure_future(_heartbeat(layer, reply_channel, ask_id=ask_id))
    try:
        await asyncio.wait((work, cancel), return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            await asyncio.wait((started,))  # llm.started comes first, whatever else comes
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
        for task in (work, cancel, heartbeat, started):
            task.cancel()


def _sender(layer, reply_channel: str, cancel: asyncio.Future, started: asyncio.Future) -> Send:
    """The work's sends to the connection, after ``llm.started`` (sent while the call begins),
    which stop it (``CancelledError``) once ``cancel`` is done, checked before and after each
    send: the work's task may have swallowed its cancellation (the module's docstring says
    where), but it always comes back here."""

    async def send(message: dict[str, Any]) -> None:
        if not started.done():
            await started
        if cancel.done():
            raise asyncio.CancelledError
        await layer.send(reply_channel, message)
        if cancel.done():
            raise asyncio.CancelledError

    return send


async def _heartbeat(layer, reply_channel: str, *, ask_id) -> None:
    while True:
        await asyncio.sleep(heartbeat_seconds())
        await layer.send(reply_channel, {"type": "llm.heartbeat", "id": ask_id})


async def _answer(send: Send, *, ask_id, streaming: bool, request: LlmRequest) -> None:
    """Run the call through the core and send its answer (``llm.response``) or its tokens and
    end (``llm.token``, ``llm.done``); a failure is sent as ``llm.error``, naming the record.
    A query whose cancellation was swallowed runs to its end, but its answer is not sent."""
    try:
        if streaming:
            await _stream(send, ask_id=ask_id, request=request)
        else:
            completion = await complete(request)
            await send(
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
        await send(failure)


async def _stream(send: Send, *, ask_id, request: LlmRequest) -> None:
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            if chunk.content:
                await send({"type": "llm.token", "id": ask_id, "content": chunk.content})
            elif chunk.usage is not None:
                await send(
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
