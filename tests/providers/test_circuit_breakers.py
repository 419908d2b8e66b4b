"""Circuit breakers are shared by every process through Redis."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from apps.providers.selectors import circuit_breaker_list
from apps.providers.services import circuit_breaker_reset
from tests.support.processes import AsgiServer
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def ask(client: openai.OpenAI) -> str:
    answer = client.chat.completions.create(model="chat", messages=HELLO)
    return (answer.choices[0].message.content or "").split()[2]


def breaker(name: str):
    return next(view for view in circuit_breaker_list() if view.provider == name)


@pytest.fixture
def second_server(server_env):
    server = AsgiServer(server_env, name="daphne-second").start()
    yield server
    server.stop()


@pytest.fixture
def fragile_a(two_providers):
    routing(breaker_failure_threshold=3, breaker_cooldown_seconds=1.0, breaker_min_requests=1000)
    two_providers["a"].max_retries = 0
    two_providers["a"].save()
    return two_providers["a"]


def client_of(server: AsgiServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_circuit_opens_is_shared_half_opens_and_closes_after_a_probe(
    fragile_a, gateway, upstream_a, second_server, operator_key
):
    upstream_a.configure(status=500)
    assert [ask(gateway) for _ in range(3)] == ["b", "b", "b"]
    assert upstream_a.stats()["requests"] == 3
    assert breaker("a").state == "open"

    other = client_of(second_server, operator_key)
    assert ask(other) == "b" and ask(gateway) == "b"
    assert upstream_a.stats()["requests"] == 3, "no process sends to an open circuit"

    time.sleep(1.1)
    assert breaker("a").state == "half_open"
    upstream_a.configure()
    assert ask(other) == "a", "the half-open probe goes to a and succeeds"
    assert breaker("a").state == "closed"
    assert [ask(gateway) for _ in range(2)] == ["a", "a"]


def test_failed_probe_opens_the_circuit_again(fragile_a, gateway, upstream_a):
    upstream_a.configure(status=500)
    for _ in range(3):
        ask(gateway)
    time.sleep(1.1)
    assert ask(gateway) == "b"
    assert upstream_a.stats()["requests"] == 4, "exactly one probe"
    assert breaker("a").state == "open"


def test_error_rate_over_the_window_opens_the_circuit(two_providers, gateway, upstream_a):
    routing(breaker_failure_threshold=100, breaker_error_rate=0.5, breaker_min_requests=6)
    two_providers["a"].max_retries = 0
    two_providers["a"].save()
    upstream_a.enqueue(*[{"status": 500} if i % 2 else {} for i in range(6)])
    served = [ask(gateway) for _ in range(6)]
    assert served.count("a") == 3
    assert breaker("a").state == "open"


def test_state_survives_a_restart_of_the_web_process(
    fragile_a, upstream_a, server_env, operator_key
):
    routing(breaker_cooldown_seconds=60)
    upstream_a.configure(status=500)
    first = AsgiServer(server_env, name="daphne-restart").start()
    try:
        for _ in range(3):
            ask(client_of(first, operator_key))
    finally:
        first.stop()
    restarted = AsgiServer(server_env, name="daphne-restarted").start()
    try:
        assert ask(client_of(restarted, operator_key)) == "b"
        assert upstream_a.stats()["requests"] == 3
    finally:
        restarted.stop()


def test_reset_closes_the_circuit(fragile_a, gateway, upstream_a):
    upstream_a.configure(status=500)
    for _ in range(3):
        ask(gateway)
    assert circuit_breaker_reset(provider=fragile_a).state == "closed"
    upstream_a.configure()
    assert ask(gateway) == "a"


def test_breakers_are_listed_and_reset_through_a_real_server(fragile_a, asgi_server, operator_key):
    """Sync views that run the async core (via run_sync) must not deadlock under ASGI."""
    headers = {"Authorization": f"Bearer {operator_key}"}
    listed = httpx.get(f"{asgi_server.url}/api/v1/circuit-breakers", headers=headers, timeout=10)
    assert {b["provider"] for b in listed.json()} == {"a", "b"}
    reset = httpx.post(
        f"{asgi_server.url}/api/v1/circuit-breakers/a/reset", headers=headers, timeout=10
    )
    assert reset.status_code == 200 and reset.json()["state"] == "closed"


def test_a_failed_calls_record_names_the_last_provider_tried(
    two_providers, gateway, upstream_a, upstream_b, recorded_calls
):
    for upstream in (upstream_a, upstream_b):
        upstream.configure(status=500)
    with pytest.raises(openai.APIStatusError):
        gateway.chat.completions.create(model="chat", messages=HELLO)
    (call,) = recorded_calls(1)
    tried = [attempt.provider_name for attempt in call.attempts.order_by("number")]
    assert call.status == "error" and tried[0] == "a" and tried[-1] == "b"
    assert (call.provider_name, call.model_name) == ("b", "fake-model")
    assert call.provider_id == two_providers["b"].pk
