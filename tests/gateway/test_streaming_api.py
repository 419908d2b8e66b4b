"""The SSE streaming API (``/api/streaming/…``) through a real daphne, read by an HTTP client."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from apps.accounts.models import Role
from apps.gateway.streaming import LEASE_SECONDS
from tests.support.factories import api_key_issue, user_create
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "tell me a story"}]


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def events(response: httpx.Response, stop_after_tokens: int | None = None) -> list[tuple]:
    """(event, data) pairs of an SSE response; optionally stop reading after some tokens."""
    parsed, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            parsed.append((name, json.loads(line.removeprefix("data: "))))
            tokens = sum(1 for event, _ in parsed if event == "token")
            if stop_after_tokens is not None and tokens >= stop_after_tokens:
                break
    return parsed


def open_stream(server: AsgiServer, key: str, path: str = "chat", **body):
    payload = {"messages": HELLO, "model": "chat", **body}
    return httpx.stream(
        "POST", f"{server.url}/api/streaming/{path}", json=payload, headers=headers(key), timeout=30
    )


def test_chat_streams_start_tokens_done(two_providers, asgi_server, operator_key):
    with open_stream(asgi_server, operator_key) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        received = events(response)
    names = [name for name, _ in received]
    assert names == ["start"] + ["token"] * 8 + ["done"]
    start, tokens, done = received[0][1], received[1:-1], received[-1][1]
    assert start["streamId"].startswith("stream_") and start["model"] == "chat"
    assert [data["tokenCount"] for _, data in tokens] == list(range(1, 9))
    assert done["fullText"] == "".join(data["content"] for _, data in tokens)
    assert done["fullText"].startswith("Hello from a") and done["tokenCount"] == 8
    assert done["finishReason"] == "stop" and done["usage"]["completion_tokens"] == 8
    assert done["provider"] == "a"


def token_arrivals(server: AsgiServer, key: str) -> list[float]:
    """When each ``token`` event of one stream reached the client, in seconds from the send."""
    arrivals: list[float] = []
    sent = time.monotonic()
    with open_stream(server, key) as response:
        for line in response.iter_lines():
            if line == "event: token":
                arrivals.append(time.monotonic() - sent)
    return arrivals


def test_tokens_reach_the_client_as_the_upstream_sends_them(
    two_providers, server_env, operator_key, upstream_a
):
    """In a new web process (uvicorn, as in production) too: the first token arrives before the
    upstream sends its second, then one token per pace, and the process's first stream does not
    wait for its start-up (it used to wait some 0.35 s more than the next one, and seconds on a
    busy machine: the URLconf and the openai SDK were imported on the way)."""
    pace = 0.3  # the upstream sends its first token at 1 pace, its second at 2
    upstream_a.configure(chunk_delay_ms=pace * 1000, tokens=5)
    server = AsgiServer(server_env, name="uvicorn-first-stream", server="uvicorn").start()
    try:
        first, second = token_arrivals(server, operator_key), token_arrivals(server, operator_key)
    finally:
        server.stop()
    assert len(first) == len(second) == 5
    assert second[0] < 2 * pace, f"the first token came at {second[0]:.2f} s"
    assert first[0] - second[0] < pace, f"the process's first stream: {first[0]:.2f} s"
    for arrivals in (first, second):
        assert arrivals[-1] - arrivals[0] > 3 * pace, f"not one at a time: {arrivals}"


def test_generate_turns_the_prompt_into_a_message(two_providers, asgi_server, operator_key):
    with open_stream(asgi_server, operator_key, "generate", prompt="once upon", maxTokens=3) as r:
        received = events(r)
    assert received[-1][0] == "done" and received[-1][1]["tokenCount"] == 3
    assert received[-1][1]["finishReason"] == "length"


def test_fallback_before_the_first_token(two_providers, asgi_server, operator_key, upstream_a):
    upstream_a.configure(status=500)
    with open_stream(asgi_server, operator_key, backend="") as response:
        done = events(response)[-1][1]
    assert done["provider"] == "b"


def test_routing_failures_are_json_errors_not_streams(two_providers, asgi_server, operator_key):
    with open_stream(asgi_server, operator_key, model="nope") as response:
        response.read()
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"messages": []}',
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": 3}',
        b'{"messages": [{"role": "user", "content": "x"}], "maxTokens": -2}',
        b'{"messages": "hi"}',
    ],
)
def test_bad_bodies_are_400(asgi_server, operator_key, body):
    response = httpx.post(
        f"{asgi_server.url}/api/streaming/chat", content=body, headers=headers(operator_key)
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_generate_needs_a_prompt(asgi_server, operator_key):
    response = httpx.post(
        f"{asgi_server.url}/api/streaming/generate",
        json={"prompt": ""},
        headers=headers(operator_key),
    )
    assert response.status_code == 400


def test_auth_and_roles(two_providers, asgi_server):
    url = f"{asgi_server.url}/api/streaming/chat"
    assert httpx.post(url, json={"messages": HELLO}).status_code == 401
    viewer = api_key_issue(role=Role.VIEWER)
    assert httpx.post(url, json={"messages": HELLO}, headers=headers(viewer)).status_code == 403
    bad = httpx.post(url, json={"messages": HELLO}, headers=headers("ao_deadbeef_x"))
    assert bad.status_code == 401
    assert httpx.get(url, headers=headers(viewer)).status_code == 405
    assert (
        httpx.get(f"{asgi_server.url}/api/streaming/active", headers=headers(viewer)).status_code
        == 200
    )


def test_session_writes_need_csrf(two_providers, asgi_server):
    user = user_create(role=Role.OPERATOR)
    user.set_password("pw-123-long-enough")
    user.is_staff = True  # to log in through the admin's login page
    user.save()
    client = httpx.Client(base_url=asgi_server.url)
    client.get("/admin/login/")
    client.post(
        "/admin/login/",
        data={
            "username": user.username,
            "password": "pw-123-long-enough",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    refused = client.post("/api/streaming/chat", json={"messages": HELLO, "model": "chat"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    accepted = client.post(
        "/api/streaming/chat",
        json={"messages": HELLO, "model": "chat"},
        headers={"X-CSRFToken": client.cookies["csrftoken"], "Referer": asgi_server.url},
    )
    assert accepted.status_code == 200 and "event: done" in accepted.text


def stats(server: AsgiServer, key: str) -> dict:
    return httpx.get(f"{server.url}/api/streaming/statistics", headers=headers(key)).json()[
        "statistics"
    ]


def active_ids(server: AsgiServer, key: str) -> list[str]:
    body = httpx.get(f"{server.url}/api/streaming/active", headers=headers(key)).json()
    return [entry["streamId"] for entry in body["streams"]]


def run_and_cancel(stream_server: AsgiServer, cancel_server: AsgiServer, key: str, upstream):
    upstream.configure(chunk_delay_ms=100, tokens=50)
    before = stats(stream_server, key)
    received: list = []
    with open_stream(stream_server, key) as response:
        stream_id = response.headers["x-stream-id"]
        reader = threading.Thread(target=lambda: received.extend(events(response)))
        reader.start()
        deadline = time.monotonic() + 5
        while stream_id not in active_ids(cancel_server, key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stream_id in active_ids(cancel_server, key)
        cancelled = httpx.delete(
            f"{cancel_server.url}/api/streaming/{stream_id}", headers=headers(key)
        )
        assert cancelled.status_code == 202
        reader.join(10)
    assert received[-1] == ("error", {"code": "cancelled", "message": "The stream was cancelled."})
    upstream.wait_for(lambda s: s["client_disconnects"] >= 1)
    assert stream_id not in active_ids(stream_server, key)
    after = stats(stream_server, key)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["started"] == before["started"] + 1


def test_delete_cancels_a_stream_and_closes_the_upstream(
    two_providers, asgi_server, operator_key, upstream_a
):
    run_and_cancel(asgi_server, asgi_server, operator_key, upstream_a)


def test_a_stream_is_cancelled_from_another_web_process(
    two_providers, asgi_server, server_env, operator_key, upstream_a
):
    other = AsgiServer(server_env, name="daphne-canceller").start()
    try:
        run_and_cancel(asgi_server, other, operator_key, upstream_a)
    finally:
        other.stop()


def test_a_client_leaving_mid_stream_closes_the_upstream(
    two_providers, asgi_server, operator_key, upstream_a
):
    upstream_a.configure(chunk_delay_ms=100, tokens=50)
    with open_stream(asgi_server, operator_key) as response:
        assert [name for name, _ in events(response, stop_after_tokens=2)][-1] == "token"
    upstream_a.wait_for(lambda s: s["client_disconnects"] == 1)


def test_cancel_rules(two_providers, asgi_server, operator_key):
    viewer = api_key_issue(role=Role.VIEWER)
    missing = httpx.delete(f"{asgi_server.url}/api/streaming/stream_nope", headers=headers(viewer))
    assert missing.status_code == 404


def test_statistics_count_completed_streams(two_providers, asgi_server, operator_key):
    before = stats(asgi_server, operator_key)
    with open_stream(asgi_server, operator_key) as response:
        events(response)
    after = stats(asgi_server, operator_key)
    assert after["completed"] == before["completed"] + 1
    assert after["tokens"] == before["tokens"] + 8
    assert after["averageTimeToFirstTokenMs"] is not None


def test_streams_of_a_killed_web_process_leave_the_active_list_within_the_lease(
    two_providers, asgi_server, server_env, operator_key, upstream_a
):
    upstream_a.configure(chunk_delay_ms=200, tokens=200)
    doomed = AsgiServer(server_env, name="daphne-doomed").start()
    try:
        with open_stream(doomed, operator_key) as response:
            stream_id = response.headers["x-stream-id"]
            assert stream_id in active_ids(asgi_server, operator_key)
            doomed.kill()  # SIGKILL: nothing unregisters the stream
            killed_at = time.monotonic()
            assert stream_id in active_ids(asgi_server, operator_key), "listed while leased"
            while stream_id in active_ids(asgi_server, operator_key):
                assert time.monotonic() - killed_at < LEASE_SECONDS + 2, "still listed"
                time.sleep(0.2)
    finally:
        doomed.stop()
    assert time.monotonic() - killed_at >= 1, "a live lease kept it listed for a while"
