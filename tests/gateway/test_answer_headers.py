"""What every answer says besides its body: who served it (``x-orchestra-provider``,
``x-orchestra-model``) and its call record (``x-orchestra-call-id``) on ``/v1`` and SSE; the
security headers of ``/v1``; an unknown model's 404 naming the models there are; and a 429's
status line under daphne. The unmodified openai SDK (``with_raw_response``) against a real
daphne and the fake upstream."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from apps.providers.models import CallStatus, ModelMode
from tests.support.processes import AsgiServer
from tests.support.providers import deploy

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]
SECURITY = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}
# A window of its own (ms), so this server's per-IP count is apart from every other request.
LIMITED_WINDOW_MS = 3_600_003


def assert_served(headers: httpx.Headers, provider: str, model: str) -> uuid.UUID:
    assert headers["x-orchestra-provider"] == provider
    assert headers["x-orchestra-model"] == model
    assert {name: headers.get(name) for name in SECURITY} == SECURITY
    return uuid.UUID(headers["x-orchestra-call-id"])


def test_chat_answers_name_provider_model_and_call(two_providers, gateway, recorded_calls):
    raw = gateway.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    call_id = assert_served(raw.headers, "a", "fake-model")
    assert raw.parse().choices[0].message.content.startswith("Hello from a")
    (call,) = recorded_calls(1)
    assert call.id == call_id and call.provider_name == "a"


def test_a_pinned_provider_is_the_one_named(two_providers, gateway):
    raw = gateway.chat.completions.with_raw_response.create(model="b/chat", messages=HELLO)
    assert_served(raw.headers, "b", "fake-model")


def test_streamed_answers_name_them_before_the_first_event(two_providers, gateway):
    with gateway.chat.completions.with_streaming_response.create(
        model="chat", messages=HELLO, stream=True
    ) as raw:
        assert_served(raw.headers, "a", "fake-model")
        assert raw.headers["content-type"].startswith("text/event-stream")
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.startswith("Hello from a")


def test_completions_embeddings_and_responses_name_them(two_providers, gateway):
    deploy(two_providers["b"], name="fake-embed", mode=ModelMode.EMBEDDING, aliases=[])
    completion = gateway.completions.with_raw_response.create(model="chat", prompt="hi")
    assert_served(completion.headers, "a", "fake-model")
    embedding = gateway.embeddings.with_raw_response.create(model="fake-embed", input="hi")
    assert_served(embedding.headers, "b", "fake-embed")
    response = gateway.responses.with_raw_response.create(model="chat", input="hi")
    assert_served(response.headers, "a", "fake-model")


def test_a_failed_call_names_its_record(two_providers, gateway, upstream_a, upstream_b):
    upstream_a.configure(status=500)
    upstream_b.configure(status=500)
    with pytest.raises(openai.InternalServerError) as failed:
        gateway.chat.completions.create(model="chat", messages=HELLO)
    headers = failed.value.response.headers
    assert uuid.UUID(headers["x-orchestra-call-id"])
    assert headers["x-content-type-options"] == "nosniff"
    assert "x-orchestra-provider" not in headers  # nobody served it


def test_an_unknown_model_says_which_models_there_are(two_providers, gateway):
    with pytest.raises(openai.NotFoundError) as unknown:
        gateway.chat.completions.create(model="gpt-nope", messages=HELLO)
    error = unknown.value.body
    assert unknown.value.code == "model_not_found"
    assert "gpt-nope" in error["message"]
    assert "chat" in error["message"] and "GET /v1/models" in error["message"]
    assert unknown.value.response.headers["cache-control"] == "no-store"

    with pytest.raises(openai.NotFoundError) as missing:
        gateway.models.retrieve("gpt-nope")
    assert "chat" in missing.value.body["message"]
    assert "GET /v1/models" in missing.value.body["message"]


def test_the_list_of_models_in_a_404_is_short(two_providers, gateway):
    for number in range(15):
        deploy(two_providers["a"], name=f"extra-{number:02}", aliases=[])
    with pytest.raises(openai.NotFoundError) as unknown:
        gateway.chat.completions.create(model="gpt-nope", messages=HELLO)
    message = unknown.value.body["message"]
    assert "extra-00" in message and "extra-14" not in message
    assert "and 7 more" in message  # 17 public names (chat, fake-model, 15 more), 10 shown


def test_model_lists_carry_the_security_headers(two_providers, gateway):
    raw = gateway.models.with_raw_response.list()
    assert {name: raw.headers.get(name) for name in SECURITY} == SECURITY


def test_sse_answers_name_provider_model_and_call(
    two_providers, asgi_server, operator_key, recorded_calls
):
    with httpx.stream(
        "POST",
        f"{asgi_server.url}/api/streaming/chat",
        json={"messages": HELLO, "model": "chat"},
        headers={"Authorization": f"Bearer {operator_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-orchestra-provider"] == "a"
        assert response.headers["x-orchestra-model"] == "fake-model"
        call_id = uuid.UUID(response.headers["x-orchestra-call-id"])
        assert response.headers["cache-control"] == "no-store"
        body = response.read().decode()
    assert f'"callId": "{call_id}"' in body
    (call,) = recorded_calls(1)
    assert call.id == call_id and call.status == CallStatus.SUCCESS


@pytest.fixture(scope="module")
def limited_daphne(server_env) -> Iterator[AsgiServer]:
    env = {**server_env, "RATE_LIMIT_MAX": "1", "RATE_LIMIT_WINDOW_MS": str(LIMITED_WINDOW_MS)}
    server = AsgiServer(env, name="daphne-429").start()
    yield server
    server.stop()


def status_line(server: AsgiServer, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n", 1)[0]


def test_a_429_under_daphne_says_too_many_requests(limited_daphne):
    status_line(limited_daphne, "/v1/models")  # the window's one request
    assert status_line(limited_daphne, "/v1/models") == b"HTTP/1.1 429 Too Many Requests"
    assert status_line(limited_daphne, "/api/v1/me") == b"HTTP/1.1 429 Too Many Requests"
