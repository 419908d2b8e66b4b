"""A cancel stops the work whatever its timing: the worker's relay (``llm_relay``) run in-process
on the worker's event loop (``run_sync``), with the real channel layer, Redis and fake upstream."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import pytest
from channels.layers import get_channel_layer

from apps.core.runtime import run_sync
from apps.providers.models import CallStatus
from apps.realtime.llm_relay import relay_to_connection
from apps.realtime.protocol import parse_llm_ask

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello there"}]
ENDS = {"llm.done", "llm.response", "llm.error"}


async def relay_until_the_end(ask: dict[str, Any]) -> tuple[list[dict], dict]:
    """What the relay sends to a connection's channel: (everything before its end, its end)."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    relay = asyncio.ensure_future(
        relay_to_connection(reply_channel, ask=ask, caller={}, request_id="cancel-timing")
    )
    seen: list[dict] = []
    while (message := await layer.receive(reply_channel))["type"] not in ENDS:
        seen.append(message)
    await relay
    return seen, message


def test_a_cancellation_the_work_swallows_still_stops_the_stream(
    two_providers, upstream_a, recorded_calls, monkeypatch
):
    """The cancel lands just as a token's write to Redis completes. Python 3.11's
    ``asyncio.wait_for``, which redis-py's writes go through, then returns the write's result
    instead of raising the cancellation, and the stream went on to its end. The channel
    layer's send below does the same, deterministically: the user's cancel is sent while the
    first token is being relayed, and the cancellation of the work is swallowed."""
    upstream_a.configure(chunk_delay_ms=50, tokens=200)  # 10 s, had it gone on
    layer = get_channel_layer()
    send = layer.send
    control: list[str] = []
    swallowed: list[dict] = []

    async def send_swallowing_a_cancellation(channel: str, message: dict[str, Any]) -> None:
        await send(channel, message)
        if message["type"] == "llm.started":
            control.append(message["control"])
        if message["type"] == "llm.token" and not swallowed:
            await send(control[0], {"type": "cancel"})  # the consumer's, on Stop
            try:
                await asyncio.Event().wait()  # until the relay cancels the work
            except asyncio.CancelledError:
                swallowed.append(message)  # as wait_for does when its operation has finished

    monkeypatch.setattr(layer, "send", send_swallowing_a_cancellation)
    ask = asdict(parse_llm_ask({"type": "stream", "id": "s1", "messages": HELLO, "model": "chat"}))

    seen, ended = run_sync(relay_until_the_end(ask), timeout=30)

    assert len(swallowed) == 1, "the work's cancellation was swallowed"
    assert ended["type"] == "llm.error" and ended["code"] == "cancelled", ended
    assert [m for m in seen if m["type"] == "llm.token"] == swallowed, "nothing after the cancel"
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1)
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED and ended["call_id"] == str(call.id)
