"""A cancel stops the work whatever its timing: before a worker has picked the task up (real
daphne and Celery worker), and when the work's task swallows its cancellation (the worker's relay,
``llm_relay``, run in-process on the worker's event loop, ``run_sync``). Real channel layer,
Redis and fake upstreams throughout."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict
from typing import Any

import pytest
from channels.layers import get_channel_layer

from apps.accounts.models import Role
from apps.core.runtime import run_sync
from apps.providers.models import CallStatus
from apps.realtime.llm_relay import relay_to_connection
from apps.realtime.protocol import parse_llm_ask
from tests.realtime.test_llm_over_websocket import HELLO, connect, issue_key, until
from tests.support.processes import AsgiServer, CeleryWorker

pytestmark = pytest.mark.django_db(transaction=True)

ENDS = {"llm.done", "llm.response", "llm.error"}


async def relay_until_the_end(ask: dict[str, Any]) -> tuple[list[dict], dict]:
    """What the relay sends to a connection's channel: (everything before its end, its end)."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    relay = asyncio.ensure_future(
        relay_to_connection(
            reply_channel, task_id=str(uuid.uuid4()), ask=ask, caller={}, request_id="timing"
        )
    )
    seen: list[dict] = []
    while (message := await layer.receive(reply_channel))["type"] not in ENDS:
        seen.append(message)
    await relay
    return seen, message


@pytest.fixture
def idle_queue(server_env):
    """A daphne whose LLM work waits in a queue no worker serves until the test starts one
    (its work may wait a minute: a worker takes seconds to start)."""
    env = {**server_env, "WEBSOCKET_TASK_QUEUE": "later", "WEBSOCKET_WORKER_SILENCE_SECONDS": "60"}
    server = AsgiServer(env, name="daphne-later").start()
    workers: list[CeleryWorker] = []

    def start_worker() -> None:  # one at a time: the queue's tasks run in their order
        workers.append(CeleryWorker(env, name="celery-later", queues="later", concurrency=1))
        workers[-1].start()

    yield server, start_worker
    server.stop()
    for worker in workers:
        worker.stop()


async def test_a_cancel_before_any_worker_started_the_stream_stops_it(
    two_providers, idle_queue, upstream_a
):
    """Cancelled before a worker picked it up, a stream is answered ``cancelled`` at once (not
    after the workers' silence), and the worker that picks it up later drops it: no request
    reaches the provider."""
    server, start_worker = idle_queue
    key = await issue_key(role=Role.OPERATOR)
    async with connect(server, key) as ws:
        for ask_id in ("early", "after"):
            await ws.send(
                json.dumps({"type": "stream", "id": ask_id, "messages": HELLO, "model": "chat"})
            )
        await ws.send(json.dumps({"type": "cancel", "id": "early"}))
        _, ended = await until(ws, {"error", "done"}, "early")
        assert ended["code"] == "cancelled", ended
        await asyncio.to_thread(start_worker)
        _, after = await until(ws, {"error", "done"}, "after", timeout=30)
    assert after["type"] == "done", after
    assert upstream_a.stats()["requests"] == 1, "the cancelled stream never reached the provider"


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
