"""Failures that used to hurt more than one deployment: streams cut in the middle, a deployment
that does not know the model, a 429 asking to wait long."""

from __future__ import annotations

import time
from contextlib import aclosing

import httpx
import pytest

from apps.core.runtime import run_sync
from apps.providers.llm import Caller, LlmRequest, stream
from apps.providers.models import Provider
from apps.providers.selectors import circuit_breaker_list
from tests.support.processes import AsgiServer
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]


def chat(server: AsgiServer, key: str, **payload) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO, **payload},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def failures(provider: str) -> int:
    return next(view.failures for view in circuit_breaker_list() if view.provider == provider)


def test_streams_cut_mid_answer_count_against_the_circuit(
    two_providers, asgi_server, operator_key, upstream_a
):
    routing(breaker_failure_threshold=1000, breaker_min_requests=100_000)
    upstream_a.configure(drop_after_chunks=3)
    for _ in range(5):
        response = chat(asgi_server, operator_key, stream=True)
        assert response.status_code == 200 and '"code":"unavailable"' in response.text
    assert failures("a") == 5


def test_sdk_streams_cut_mid_answer_count_too(two_providers, upstream_a):
    routing(breaker_failure_threshold=1000, breaker_min_requests=100_000)
    upstream_a.configure(drop_after_chunks=3)

    async def one() -> None:
        request = LlmRequest(messages=HELLO, model="chat", caller=Caller())
        async with aclosing(stream(request)) as chunks:
            async for _ in chunks:
                pass

    for _ in range(3):
        with pytest.raises(Exception, match="provider"):
            run_sync(one())
    assert failures("a") == 3


def test_a_deployment_that_does_not_know_the_model_is_failed_over_and_rested(
    two_providers, asgi_server, server_env, operator_key, upstream_a, upstream_b
):
    upstream_a.configure(status=404, error_code="model_not_found", error_message="no such model")
    for _ in range(3):
        response = chat(asgi_server, operator_key)
        assert response.status_code == 200 and response.json()["choices"]
    assert upstream_a.stats()["requests"] == 1 and upstream_b.stats()["requests"] == 3
    other = AsgiServer(server_env, name="daphne-other").start()  # the rest is shared
    try:
        assert chat(other, operator_key).status_code == 200
    finally:
        other.stop()
    assert upstream_a.stats()["requests"] == 1
    assert failures("a") == 0  # the provider itself is fine: no circuit failure


def test_a_long_retry_after_fails_over_at_once_and_rests_the_deployment(
    two_providers, asgi_server, server_env, operator_key, upstream_a, upstream_b
):
    Provider.objects.filter(name="a").update(max_retries=3)
    upstream_a.configure(status=429, retry_after=30)
    started = time.monotonic()
    assert chat(asgi_server, operator_key).status_code == 200
    assert time.monotonic() - started < 2  # not the 5 s retry wait of before
    other = AsgiServer(server_env, name="daphne-other").start()
    try:
        for server in (asgi_server, other, asgi_server):
            assert chat(server, operator_key).status_code == 200
    finally:
        other.stop()
    assert upstream_a.stats()["requests"] == 1 and upstream_b.stats()["requests"] == 4


def test_when_every_deployment_rests_the_caller_is_told_to_wait(
    two_providers, asgi_server, operator_key, upstream_a, upstream_b
):
    for fake in (upstream_a, upstream_b):
        fake.configure(status=429, retry_after=30)
    first = chat(asgi_server, operator_key)
    assert first.status_code == 429
    waiting = chat(asgi_server, operator_key)
    assert waiting.status_code == 429 and waiting.json()["error"]["code"] == "rate_limit_exceeded"
    assert "cooling down" in waiting.json()["error"]["message"]
    assert 25 <= int(waiting.headers["retry-after"]) <= 30
    assert "x-should-retry" not in waiting.headers  # waiting helps: the client may retry
    assert upstream_a.stats()["requests"] == 1 and upstream_b.stats()["requests"] == 1
