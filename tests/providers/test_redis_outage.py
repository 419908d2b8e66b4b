"""Losing Redis does not stop the traffic: a real daphne on a Redis of its own, which the test
kills (SIGKILL) and starts again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from apps.providers.llm.recording.records import records_key
from apps.providers.models import EntryPoint, LlmCall, Provider
from tests.support.processes import AsgiServer, PrivateRedis
from tests.support.providers import routing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HELLO = [{"role": "user", "content": "say hello please"}]


@pytest.fixture
def outage(server_env) -> Iterator[tuple[PrivateRedis, AsgiServer]]:
    private = PrivateRedis()
    server = AsgiServer({**server_env, "REDIS_URL": private.url}, name="daphne-outage").start()
    yield private, server
    server.stop()
    private.close()


def post(server: AsgiServer, key: str, path: str, payload: dict, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{server.url}{path}", json=payload, headers=headers, timeout=30, **kwargs)


def calls_stored(entry_point: str, count: int, timeout: float = 10.0) -> list[LlmCall]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(LlmCall.objects.filter(entry_point=entry_point))
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} {entry_point} records")


def test_without_redis_every_http_entry_point_still_serves_and_records(
    two_providers, outage, operator_key, upstream_a
):
    private, server = outage
    routing(breaker_failure_threshold=1)
    chat = {"model": "chat", "messages": HELLO}
    assert post(server, operator_key, "/v1/chat/completions", chat).status_code == 200

    private.kill()

    answer = post(server, operator_key, "/v1/chat/completions", chat)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    streamed = post(server, operator_key, "/v1/chat/completions", {**chat, "stream": True})
    assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    listed = httpx.get(
        f"{server.url}/v1/models", headers={"Authorization": f"Bearer {operator_key}"}
    )
    assert listed.status_code == 200 and "chat" in {m["id"] for m in listed.json()["data"]}
    queried = post(server, operator_key, "/api/v1/query", {"prompt": "hi", "model": "chat"})
    assert queried.status_code == 200 and queried.json()["provider"] == "a"
    sse = post(server, operator_key, "/api/streaming/chat", chat)
    assert sse.status_code == 200 and "event: done" in sse.text
    active = httpx.get(
        f"{server.url}/api/streaming/active", headers={"Authorization": f"Bearer {operator_key}"}
    )
    assert active.status_code == 200 and active.json()["complete"] is False

    health = httpx.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    assert body["capabilities"] == {
        "routing_state": "local",
        "call_records": "direct",
        "websocket_relay": "down",
    }

    print({name: check["latency_ms"] for name, check in body["checks"].items()})
    # Records written straight to the database by the web process (the first one, shipped to
    # Redis before it died, waits there for a worker).
    calls_stored(EntryPoint.OPENAI, 2)
    calls_stored(EntryPoint.QUERY, 1)
    calls_stored(EntryPoint.SSE, 1)


def test_without_redis_each_process_keeps_its_own_circuit_breakers(
    two_providers, outage, operator_key, upstream_a, upstream_b
):
    private, server = outage
    routing(breaker_failure_threshold=1)
    Provider.objects.filter(name="a").update(max_retries=0)
    private.kill()
    upstream_a.configure(status=500)
    for _ in range(3):
        chat = {"model": "chat", "messages": HELLO}
        answer = post(server, operator_key, "/v1/chat/completions", chat)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(
            "application/json"
        )
    assert upstream_a.stats()["requests"] == 1  # the local circuit opened after one failure
    assert upstream_b.stats()["requests"] == 3


def test_when_redis_is_back_routing_and_records_are_shared_again(
    two_providers, outage, operator_key
):
    private, server = outage
    private.kill()
    chat = {"model": "chat", "messages": HELLO}
    assert post(server, operator_key, "/v1/chat/completions", chat).status_code == 200
    private.restart()
    client = redis.Redis.from_url(private.url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert post(server, operator_key, "/v1/chat/completions", chat).status_code == 200
        if client.llen(records_key()):
            break
        time.sleep(0.5)
    assert client.llen(records_key()) >= 1, "records are not queued in Redis again"
    body = httpx.get(f"{server.url}/health", timeout=30).json()
    assert body["capabilities"]["routing_state"] == "shared"
    assert body["capabilities"]["call_records"] == "queued"
    batches = [json.loads(blob.partition(b"\n")[2]) for blob in client.lrange(records_key(), 0, -1)]
    assert all(record[0]["status"] == "success" for batch in batches for record in batch)
