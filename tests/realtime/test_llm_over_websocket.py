"""Queries and streams over ``/ws/``: real daphne (granian too for the core of the protocol),
Celery worker, Redis and fake upstreams."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from decimal import Decimal

import pytest
import websockets
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from apps.providers.models import CallStatus, EntryPoint
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer, CeleryWorker

pytestmark = pytest.mark.django_db(transaction=True)

issue_key = database_sync_to_async(api_key_issue)
HELLO = [{"role": "user", "content": "hello there"}]


def connect(server: AsgiServer, key: str):
    return websockets.connect(server.ws_url, additional_headers={"Authorization": f"Bearer {key}"})


async def receive(ws, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws, kinds: set[str], ask_id=None, timeout: float = 15) -> tuple[list[dict], dict]:
    """Messages up to the first of ``kinds`` (for ``ask_id`` if given): (before, that one)."""
    seen: list[dict] = []
    while True:
        message = await receive(ws, timeout)
        if message["type"] in kinds and (ask_id is None or message.get("id") == ask_id):
            return seen, message
        seen.append(message)


async def test_query_gets_one_response(two_providers, ws_server, celery_worker, recorded_calls):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(ws_server, key) as ws:
        await ws.send(json.dumps({"type": "query", "id": "q1", "messages": HELLO, "model": "chat"}))
        _, response = await until(ws, {"response", "error"})
    assert response["type"] == "response" and response["id"] == "q1"
    assert response["content"].startswith("Hello from a")
    assert response["provider"] == "a" and response["usage"]["completion_tokens"] == 8
    assert response["latency_ms"] > 0
    (call,) = await database_sync_to_async(recorded_calls)(1)
    assert str(call.id) == response["call_id"] and call.entry_point == EntryPoint.WEBSOCKET
    assert Decimal(response["cost"]) == call.cost > 0


async def test_stream_sends_tokens_then_done(
    two_providers, ws_server, celery_worker, recorded_calls
):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(ws_server, key) as ws:
        await ws.send(json.dumps({"type": "stream", "id": "s1", "prompt": "hi", "model": "chat"}))
        tokens, done = await until(ws, {"done", "error"})
    assert done["type"] == "done" and done["finish_reason"] == "stop"
    assert [t["type"] for t in tokens] == ["token"] * 8 and {t["id"] for t in tokens} == {"s1"}
    assert "".join(t["content"] for t in tokens).startswith("Hello from a")
    assert done["usage"]["completion_tokens"] == 8
    # The end says what the call record says.
    (call,) = await database_sync_to_async(recorded_calls)(1)
    assert done["call_id"] == str(call.id) and done["provider"] == call.provider_name == "a"
    assert Decimal(done["cost"]) == call.cost > 0
    assert done["latency_ms"] == pytest.approx(call.latency_ms, abs=0.1)
    assert done["time_to_first_token_ms"] == pytest.approx(call.time_to_first_token_ms, abs=0.1)
    assert 0 < done["time_to_first_token_ms"] <= done["latency_ms"]


async def test_two_concurrent_streams_on_one_connection(
    two_providers, asgi_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=20, tokens=12)
    key = await issue_key(role=Role.OPERATOR)
    texts: dict[str, list[str]] = defaultdict(list)
    finished: set[str] = set()
    async with connect(asgi_server, key) as ws:
        for ask_id in ("left", "right"):
            await ws.send(
                json.dumps({"type": "stream", "id": ask_id, "messages": HELLO, "model": "chat"})
            )
        order = []
        while len(finished) < 2:
            message = await receive(ws)
            assert message["type"] in {"token", "done"}, message
            order.append(message["id"])
            if message["type"] == "token":
                texts[message["id"]].append(message["content"])
            else:
                finished.add(message["id"])
    assert texts["left"] == texts["right"] and len(texts["left"]) == 12
    first_done = min(order.index("left", 11), order.index("right", 11))
    assert {"left", "right"} <= set(order[:first_done]), "the streams interleave"


async def test_cancel_mid_stream_closes_the_upstream(
    two_providers, ws_server, celery_worker, upstream_a, recorded_calls
):
    upstream_a.configure(chunk_delay_ms=100, tokens=600)  # a minute: cancel wins under any load
    key = await issue_key(role=Role.OPERATOR)
    async with connect(ws_server, key) as ws:
        await ws.send(
            json.dumps({"type": "stream", "id": "s1", "messages": HELLO, "model": "chat"})
        )
        await until(ws, {"token"})
        await ws.send(json.dumps({"type": "cancel", "id": "s1"}))
        _, ended = await until(ws, {"error", "done"}, "s1")
        assert ended["type"] == "error" and ended["code"] == "cancelled"
        await ws.send(json.dumps({"type": "ping", "id": "after"}))
        _, pong = await until(ws, {"pong"})
    await asyncio.to_thread(upstream_a.wait_for, lambda s: s["client_disconnects"] == 1)
    (call,) = await database_sync_to_async(recorded_calls)(1)
    assert call.status == CallStatus.CANCELLED and ended["call_id"] == str(call.id)


async def test_disconnecting_mid_stream_cancels_the_work(
    two_providers, ws_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=100, tokens=600)  # a minute: cancel wins under any load
    key = await issue_key(role=Role.OPERATOR)
    async with connect(ws_server, key) as ws:
        await ws.send(
            json.dumps({"type": "stream", "id": "s1", "messages": HELLO, "model": "chat"})
        )
        await until(ws, {"token"})
    await asyncio.to_thread(upstream_a.wait_for, lambda s: s["client_disconnects"] == 1)


async def test_provider_errors_reach_the_socket(
    two_providers, asgi_server, celery_worker, recorded_calls
):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        await ws.send(json.dumps({"type": "query", "id": 1, "messages": HELLO, "model": "nope"}))
        _, error = await until(ws, {"error"})
    call_id = error.pop("call_id")
    assert error == {
        "type": "error",
        "id": 1,
        "code": "model_not_found",
        "message": "no enabled deployment serves model 'nope'",
    }
    (call,) = await database_sync_to_async(recorded_calls)(1)  # failed calls are recorded too
    assert str(call.id) == call_id and call.status == CallStatus.ERROR


async def test_viewer_may_subscribe_but_not_query(two_providers, asgi_server):
    key = await issue_key(role=Role.VIEWER)
    async with connect(asgi_server, key) as ws:
        await ws.send(json.dumps({"type": "query", "id": "q", "messages": HELLO, "model": "chat"}))
        assert (await receive(ws))["code"] == "forbidden"
        await ws.send(json.dumps({"type": "subscribe", "channel": "alerts"}))
        assert await receive(ws) == {"type": "subscribed", "channel": "alerts"}


MALFORMED = [
    ("not json at all", "invalid_json"),
    ('"a string"', "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"id": "x"}', "unknown_type"),
    ('{"type": "query", "messages": []}', "invalid_request"),
    ('{"type": "query", "id": "q", "messages": "hi"}', "invalid_request"),
    (
        '{"type": "query", "id": "q", "messages": [{"role": "user", "content": 5}]}',
        "invalid_request",
    ),
    ('{"type": "stream", "id": "s", "prompt": "x", "temperature": "hot"}', "invalid_request"),
    ('{"type": "stream", "id": "s", "prompt": "x", "max_tokens": 0}', "invalid_request"),
    ('{"type": "stream", "id": true, "prompt": "x"}', "invalid_request"),
    ('{"type": "cancel", "id": "never-started"}', "unknown_id"),
    ('{"type": "subscribe", "channel": "secrets"}', "unknown_channel"),
    ('{"type": "subscribe", "channel": 7}', "unknown_channel"),
    ('{"type": "auth", "token": "x"}', "invalid_message"),
    ('{"type": "ping", "padding": "' + "x" * 70_000 + '"}', "message_too_large"),
]


async def test_each_kind_of_malformed_message_gets_an_error(asgi_server):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        for raw, code in MALFORMED:
            await ws.send(raw)
            reply = await receive(ws)
            assert (reply["type"], reply["code"]) == ("error", code), raw[:60]
        await ws.send(json.dumps({"type": "ping", "id": "still-here"}))
        assert await receive(ws) == {"type": "pong", "id": "still-here"}


async def test_binary_garbage_gets_an_error(asgi_server):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        await ws.send(b"\xff\xfe\x00garbage")
        assert (await receive(ws))["code"] == "invalid_json"


async def test_limits_on_concurrent_work_and_message_rate(
    two_providers, asgi_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=200, tokens=20)
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        for i in range(5):
            await ws.send(
                json.dumps({"type": "stream", "id": f"s{i}", "messages": HELLO, "model": "chat"})
            )
        _, refused = await until(ws, {"error"}, "s4")
        assert refused["code"] == "too_many_requests"
        for i in range(4):
            await ws.send(json.dumps({"type": "cancel", "id": f"s{i}"}))
        codes = set()
        for _ in range(40):
            await ws.send(json.dumps({"type": "ping"}))
        while "rate_limited" not in codes:
            message = await receive(ws)
            codes.add(message.get("code"))


async def test_duplicate_id_is_refused(two_providers, asgi_server, celery_worker, upstream_a):
    upstream_a.configure(chunk_delay_ms=100, tokens=20)
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        await ws.send(
            json.dumps({"type": "stream", "id": "same", "messages": HELLO, "model": "chat"})
        )
        await ws.send(
            json.dumps({"type": "stream", "id": "same", "messages": HELLO, "model": "chat"})
        )
        _, refused = await until(ws, {"error"}, "same")
        assert refused["code"] == "duplicate_id"


@pytest.fixture
def doomed(server_env):
    """A daphne sending its LLM work to a queue served by one worker the test will kill."""
    env = {**server_env, "WEBSOCKET_TASK_QUEUE": "doomed"}
    worker = CeleryWorker(env, name="celery-doomed", queues="doomed").start()
    server = AsgiServer(env, name="daphne-doomed").start()
    yield server, worker
    server.stop()
    worker.kill()


async def test_a_worker_dying_mid_stream_ends_in_an_error(two_providers, doomed, upstream_a):
    server, worker = doomed
    upstream_a.configure(chunk_delay_ms=100, tokens=100)
    key = await issue_key(role=Role.OPERATOR)
    async with connect(server, key) as ws:
        await ws.send(
            json.dumps({"type": "stream", "id": "s1", "messages": HELLO, "model": "chat"})
        )
        await until(ws, {"token"})
        worker.kill()
        _, error = await until(ws, {"error", "done"}, "s1", timeout=20)
        assert error["type"] == "error" and error["code"] == "worker_timeout"
        await ws.send(json.dumps({"type": "ping", "id": "alive"}))
        await until(ws, {"pong"})


async def test_no_worker_at_all_ends_in_an_error(two_providers, server_env):
    env = {**server_env, "WEBSOCKET_TASK_QUEUE": "nobody-listens"}
    server = AsgiServer(env, name="daphne-no-worker").start()
    try:
        key = await issue_key(role=Role.OPERATOR)
        async with connect(server, key) as ws:
            await ws.send(
                json.dumps({"type": "query", "id": "q", "messages": HELLO, "model": "chat"})
            )
            _, error = await until(ws, {"error", "response"}, "q", timeout=20)
        assert error["code"] == "worker_timeout"
    finally:
        server.stop()
