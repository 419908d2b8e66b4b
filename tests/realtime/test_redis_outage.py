"""``/ws/`` while Redis (the channel layer and the Celery broker) is gone, and after it is back.

A private Redis on a unix socket serves a daphne and a Celery worker of this module's own (the
database stays the test database); the test SIGKILLs it, checks that connected clients are told
``unavailable`` instead of being dropped with 1011, that new ones still get in, then restarts
it on the same socket and checks that the same connection answers queries again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import websockets
from celery import Celery
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer, CeleryWorker, PrivateRedis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HELLO = [{"role": "user", "content": "hello there"}]
issue_key = database_sync_to_async(api_key_issue)


@pytest.fixture
def outage(server_env) -> Iterator[tuple[PrivateRedis, AsgiServer]]:
    redis = PrivateRedis()
    env = {**server_env, "REDIS_URL": f"unix://{redis.path}"}
    server = worker = None
    try:
        server = AsgiServer(env, name="daphne-outage").start()
        worker = CeleryWorker(env, name="celery-outage", concurrency=2)
        # Not the current app: this process's tasks would be sent to this broker after it.
        broker = Celery(broker=f"redis+socket://{redis.path}", set_as_current=False)
        hostname = worker.hostname
        worker.start(lambda: bool(broker.control.ping(destination=[hostname], timeout=0.5)))
        yield redis, server
    finally:
        for process in (worker, server):
            if process:
                process.stop()
        redis.close()


async def receive(ws, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def answer(ws, message: dict, kinds: set[str], timeout: float = 10) -> dict:
    """Send ``message``; the first reply of one of ``kinds`` (for its id, when it has one)."""
    await ws.send(json.dumps(message))
    while True:
        reply = await receive(ws, timeout)
        if reply["type"] in kinds and reply.get("id") == message.get("id"):
            return reply


def query(ask_id: str, kind: str = "query") -> dict:
    return {"type": kind, "id": ask_id, "messages": HELLO, "model": "chat"}


async def test_without_redis_clients_are_told_and_with_it_back_the_same_connection_works(
    two_providers, outage
):
    redis, server = outage
    key = await issue_key(role=Role.OPERATOR)
    async with websockets.connect(server.ws_url, additional_headers=bearer(key)) as ws:
        assert (await answer(ws, query("up"), {"response", "error"}))["type"] == "response"

        await asyncio.to_thread(redis.kill)
        reply = await answer(ws, query("down"), {"response", "error"})
        assert reply["code"] == "unavailable", reply
        assert reply["message"].startswith("live queries are unavailable: ")
        streamed = await answer(ws, query("down-stream", "stream"), {"token", "done", "error"})
        assert streamed["code"] == "unavailable"
        subscribe = {"type": "subscribe", "channel": "alerts"}
        refused = await answer(ws, subscribe, {"subscribed", "error"})
        assert refused["type"] == "error" and refused["code"] == "unavailable"
        assert await answer(ws, {"type": "ping", "id": 1}, {"pong"}) == {"type": "pong", "id": 1}
        await asyncio.sleep(6)  # past the channel layer's blocking pop and the back-off
        assert (await answer(ws, query("still-down"), {"response", "error"}))["code"] == (
            "unavailable"
        )

        newcomer = await issue_key(role=Role.VIEWER)  # authentication needs only the database
        async with websockets.connect(server.ws_url, additional_headers=bearer(newcomer)) as late:
            assert (await answer(late, {"type": "ping", "id": 2}, {"pong"}))["id"] == 2
        async with websockets.connect(server.ws_url) as late:
            await late.send(json.dumps({"type": "auth", "token": newcomer}))
            assert (await receive(late))["type"] == "authenticated"

        await asyncio.to_thread(redis.restart)
        deadline, attempt = time.monotonic() + 60, 0
        while True:  # the worker reconnects to the broker on its own schedule
            attempt += 1
            reply = await answer(ws, query(f"back-{attempt}"), {"response", "error"}, timeout=15)
            if reply["type"] == "response":
                break
            assert reply["code"] in {"unavailable", "worker_timeout"}, reply
            assert time.monotonic() < deadline, "queries did not come back"
            await asyncio.sleep(1)
        assert reply["content"].startswith("Hello from a")
        assert (await answer(ws, subscribe, {"subscribed", "error"}))["type"] == "subscribed"
    assert "Exception inside application" not in server.output()
