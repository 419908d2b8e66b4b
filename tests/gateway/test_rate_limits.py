"""Inbound rate limits through real servers: a key's RPM and TPM limits on ``/v1``, the query
API and SSE, across two processes; the per-IP limit on ``/v1`` and REST, with and without a
trusted proxy; ``Retry-After`` on every 429. (The WebSocket's are in ``tests/realtime``.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from apps.accounts.models import Role
from apps.accounts.services import api_key_create
from apps.providers.models import LlmCall
from tests.support.factories import bearer, user_create
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]
CALL_TOKENS = 11  # the fake upstream's usage: 3 prompt + 8 completion tokens
# Windows of their own (ms), so the servers limited by IP count apart from every other request
# of this test run from 127.0.0.1.
IP_WINDOW_MS, PROXIED_WINDOW_MS = 3_600_001, 3_600_002


def clear_of_window_end(window_seconds: float, margin: float) -> None:
    """Windows are fixed slices of the clock: a test must not straddle two."""
    left = window_seconds - time.time() % window_seconds
    if left < margin:
        time.sleep(left + 0.1)


def limited_key(rpm_limit: int | None = None, tpm_limit: int | None = None) -> tuple[int, str]:
    api_key, raw = api_key_create(
        user=user_create(role=Role.OPERATOR),
        name="limited",
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    return api_key.pk, raw


def v1(server: AsgiServer, key: str, **body) -> httpx.Response:
    payload = {"model": "chat", "messages": HELLO, **body}
    return httpx.post(
        f"{server.url}/v1/chat/completions", json=payload, headers=bearer(key), timeout=30
    )


def v1_stream(server: AsgiServer, key: str, **body) -> httpx.Response:
    """A streamed answer, read to its end."""
    return v1(server, key, stream=True, **body)


def query(server: AsgiServer, key: str) -> httpx.Response:
    body = {"prompt": "say hello please", "model": "chat"}
    return httpx.post(f"{server.url}/api/v1/query", json=body, headers=bearer(key), timeout=30)


def sse(server: AsgiServer, key: str) -> httpx.Response:
    body = {"messages": HELLO, "model": "chat"}
    response = httpx.post(
        f"{server.url}/api/streaming/chat", json=body, headers=bearer(key), timeout=30
    )
    if response.status_code == 200:
        assert "event: done" in response.text, response.text
    return response


def logged(server: AsgiServer, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.output():
            return True
        time.sleep(0.1)
    return False


def assert_retry_after(response: httpx.Response, longest: float = 60) -> int:
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= longest
    return wait


# --- a key's requests per minute ---------------------------------------------------------------


def test_v1_refuses_the_request_past_a_keys_rpm_as_openai_does(
    two_providers, asgi_server, upstream_a, recorded_calls
):
    clear_of_window_end(60, 8)
    key_id, key = limited_key(rpm_limit=3)
    answers = [v1(asgi_server, key) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"3"}
    assert all(a.headers["x-ratelimit-reset-requests"].endswith("s") for a in answers)
    assert "x-ratelimit-limit-tokens" not in answers[0].headers  # no TPM limit on this key
    refused = answers[-1]
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "3 requests per minute" in error["message"]
    assert_retry_after(refused)
    assert int(refused.headers["retry-after-ms"]) <= 60_000
    # The SDK sees OpenAI's own error.
    sdk = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="chat", messages=HELLO)
    assert raised.value.code == "rate_limit_exceeded"
    # Refused before the core: no call record, no upstream request; the refusal is logged.
    assert len(recorded_calls(3)) == 3
    time.sleep(1.0)
    assert LlmCall.objects.filter(api_key_id=key_id).count() == 3
    assert upstream_a.stats()["requests"] == 3
    assert logged(asgi_server, f"refused a request on /v1 with API key {key_id} from 127.0.0.1")


def test_a_key_without_limits_gets_no_ratelimit_headers(two_providers, asgi_server, operator_key):
    answer = v1(asgi_server, operator_key)
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("x-ratelimit")]


def test_the_query_api_refuses_past_a_keys_rpm_in_our_error_shape(two_providers, asgi_server):
    clear_of_window_end(60, 8)
    key_id, key = limited_key(rpm_limit=2)
    answers = [query(asgi_server, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    error = answers[-1].json()["error"]
    assert error["code"] == "rate_limited" and "2 requests per minute" in error["message"]
    assert error["details"]["wait"] == assert_retry_after(answers[-1])
    assert LlmCall.objects.filter(api_key_id=key_id).count() <= 2
    assert logged(asgi_server, f"refused a request on REST with API key {key_id}")


def test_sse_refuses_past_a_keys_rpm_in_our_error_shape(two_providers, asgi_server):
    clear_of_window_end(60, 8)
    key_id, key = limited_key(rpm_limit=1)
    assert sse(asgi_server, key).status_code == 200
    refused = sse(asgi_server, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"]["retry_after"] == assert_retry_after(refused)
    assert logged(asgi_server, f"refused a request on SSE with API key {key_id}")


@pytest.fixture(scope="module")
def second_server(server_env) -> Iterator[AsgiServer]:
    """Another process on the same database and Redis: uvicorn, as in production."""
    server = AsgiServer(server_env, name="uvicorn-limits", server="uvicorn").start()
    yield server
    server.stop()


def test_a_keys_limit_holds_across_two_processes(two_providers, asgi_server, second_server):
    """Counts are shared within about a second: requests a second and a half apart, alternating
    between two servers, see each other's."""
    clear_of_window_end(60, 15)
    _, key = limited_key(rpm_limit=3)
    statuses = []
    for server in (asgi_server, second_server) * 3:
        statuses.append(v1(server, key).status_code)
        time.sleep(1.5)
    assert statuses == [200, 200, 200, 429, 429, 429]


# --- a key's tokens per minute -----------------------------------------------------------------

CALLS = {
    "v1": v1,
    "v1-stream-usage": lambda s, k: v1_stream(s, k, stream_options={"include_usage": True}),
    "v1-stream-estimated": v1_stream,  # no usage asked for: estimated, about as many tokens
    "query": query,
    "sse": sse,
}


@pytest.mark.parametrize("how", CALLS)
def test_a_tpm_limit_refuses_once_the_minutes_tokens_are_spent(two_providers, asgi_server, how):
    clear_of_window_end(60, 8)
    call = CALLS[how]
    _, key = limited_key(tpm_limit=2 * CALL_TOKENS - 2)
    first, second, third = (call(asgi_server, key) for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200), "tokens left after the first"
    assert third.status_code == 429
    assert_retry_after(third)
    error = third.json()["error"]
    assert "tokens per minute" in error["message"]
    if how.startswith("v1"):
        assert error["code"] == "rate_limit_exceeded"
        assert first.headers["x-ratelimit-limit-tokens"] == str(2 * CALL_TOKENS - 2)
        assert int(second.headers["x-ratelimit-remaining-tokens"]) < 2 * CALL_TOKENS - 2
        assert third.headers["x-ratelimit-remaining-tokens"] == "0"
    else:
        assert error["code"] == "rate_limited"


# --- the provider's 429s carry Retry-After too --------------------------------------------------


def test_when_every_deployment_waits_every_entry_point_says_how_long(
    two_providers, asgi_server, operator_key, upstream_a, upstream_b
):
    for fake in (upstream_a, upstream_b):
        fake.configure(status=429, retry_after=30)
    for call in (query, sse, v1):
        answer = call(asgi_server, operator_key)
        assert answer.status_code == 429, call
        assert 1 <= int(answer.headers["retry-after"]) <= 30


# --- the per-IP limit ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ip_limited_server(server_env) -> Iterator[AsgiServer]:
    env = {**server_env, "RATE_LIMIT_MAX": "3", "RATE_LIMIT_WINDOW_MS": str(IP_WINDOW_MS)}
    server = AsgiServer(env, name="daphne-ip-limited").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(server_env) -> Iterator[AsgiServer]:
    env = {
        **server_env, "RATE_LIMIT_MAX": "2", "RATE_LIMIT_WINDOW_MS": str(PROXIED_WINDOW_MS),
        "TRUSTED_PROXIES": "127.0.0.1,::1",
    }  # fmt: skip
    server = AsgiServer(env, name="daphne-proxied").start()
    yield server
    server.stop()


def test_the_ip_limit_refuses_on_v1_and_rest_whatever_x_forwarded_for_says(
    ip_limited_server, operator_key
):
    clear_of_window_end(IP_WINDOW_MS / 1000, 10)
    url = ip_limited_server.url

    def get(path: str, forwarded: str, key: str | None = operator_key) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded, **(bearer(key) if key else {})}
        return httpx.get(f"{url}{path}", headers=headers, timeout=10)

    # 127.0.0.1 is not a trusted proxy here: three requests from it, however they dress up.
    served = [get("/v1/models", "10.0.0.1"), get("/api/v1/me", "10.0.0.2"), get("/v1/models", "")]
    assert [a.status_code for a in served] == [200, 200, 200]
    on_v1 = get("/v1/models", "10.0.0.4")
    assert on_v1.status_code == 429
    assert on_v1.json()["error"]["type"] == "rate_limit_error"
    assert on_v1.json()["error"]["code"] == "rate_limit_exceeded"
    assert_retry_after(on_v1, IP_WINDOW_MS / 1000)
    on_rest = get("/api/v1/me", "10.0.0.5")
    assert on_rest.status_code == 429 and on_rest.json()["error"]["code"] == "rate_limited"
    assert "3 requests per" in on_rest.json()["error"]["message"]
    assert_retry_after(on_rest, IP_WINDOW_MS / 1000)
    # Before authentication: a made-up key is refused without being looked up.
    assert get("/api/v1/me", "", key="ao_deadbeef_made-up").status_code == 429
    assert get("/v1/models", "", key=None).status_code == 429
    assert logged(ip_limited_server, "refused a request on /v1 from 127.0.0.1: over 3 requests")
    # One line per counter and second at most, with a tally of those it did not log.
    time.sleep(1.1)
    assert get("/api/v1/me", "").status_code == 429
    assert logged(ip_limited_server, "on REST from 127.0.0.1: over 3 requests per")
    assert logged(ip_limited_server, "(3 more refused since the last line)")


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(proxied_server, operator_key):
    clear_of_window_end(PROXIED_WINDOW_MS / 1000, 10)

    def me(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded, **bearer(operator_key)}
        return httpx.get(f"{proxied_server.url}/api/v1/me", headers=headers).status_code

    assert [me("198.51.100.1") for _ in range(3)] == [200, 200, 429]
    assert me("198.51.100.2") == 200, "another client behind the same proxy"
    # What the client wrote itself, left of what the proxy added, is not believed.
    assert me("198.51.100.2, 198.51.100.1") == 429
    models = httpx.get(
        f"{proxied_server.url}/v1/models",
        headers={"X-Forwarded-For": "198.51.100.1", **bearer(operator_key)},
    )
    assert models.status_code == 429 and assert_retry_after(models, PROXIED_WINDOW_MS / 1000)
    assert logged(proxied_server, "refused a request on REST from 198.51.100.1")
