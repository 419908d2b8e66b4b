"""The fake's newer behaviors (usage, error_code, unsupported) and faults on every LLM endpoint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.fake_upstream.client import REPO_ROOT
from tests.fake_upstream.server import BEHAVIOR_KEYS
from tests.fake_upstream_tests.helpers import DEFAULT_CONTENT, MESSAGES, make_client

Call = Callable[[openai.OpenAI], Any]

# One SDK call per LLM endpoint, and what a normal answer looks like.
ENDPOINTS: dict[str, tuple[str, Call, Callable[[Any], Any]]] = {
    "chat": (
        "/v1/chat/completions",
        lambda c: c.chat.completions.create(model="m", messages=MESSAGES),
        lambda r: r.choices[0].message.content,
    ),
    "completions": (
        "/v1/completions",
        lambda c: c.completions.create(model="m", prompt="say hi"),
        lambda r: r.choices[0].text,
    ),
    "embeddings": (
        "/v1/embeddings",
        lambda c: c.embeddings.create(model="m", input="say hi", encoding_format="float"),
        lambda r: len(r.data[0].embedding),
    ),
    "responses": (
        "/v1/responses",
        lambda c: c.responses.create(model="m", input="say hi"),
        lambda r: r.output_text,
    ),
}
NORMAL = {
    "chat": DEFAULT_CONTENT,
    "completions": DEFAULT_CONTENT,
    "embeddings": 8,
    "responses": DEFAULT_CONTENT,
}
# Raw request bodies, for answers the SDK would reject or reshape.
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "m", "messages": MESSAGES},
    "/v1/completions": {"model": "m", "prompt": "say hi"},
    "/v1/embeddings": {"model": "m", "input": "say hi"},
    "/v1/responses": {"model": "m", "input": "say hi"},
}


def raw_usage(fake: FakeUpstream, path: str, **extra: Any) -> Any:
    """The usage object as sent: from the body, or from the stream's usage chunk/final event."""
    reply = fake.request("POST", path, {**BODIES[path], **extra})
    assert reply.status == 200
    if not extra.get("stream"):
        return reply.json()["usage"]
    payloads = [json.loads(data) for _, data in reply.events() if data != "[DONE]"]
    if path == "/v1/responses":
        return payloads[-1]["response"]["usage"]
    assert payloads[-1]["choices"] == []
    return payloads[-1]["usage"]


# usage


@pytest.mark.parametrize("value", [-5, "12", 1e20, 3.7, None, [1], {"deep": True}])
def test_usage_override_any_json_value(fake: FakeUpstream, value: Any) -> None:
    fake.configure(usage={"prompt_tokens": value, "extra_field": "x"})
    response = make_client(fake).chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES
    )
    usage = json.loads(response.content)["usage"]
    assert usage["prompt_tokens"] == value
    assert usage["extra_field"] == "x"
    assert usage["completion_tokens"] == 8, "other entries are kept"
    assert usage["total_tokens"] == 14, "nothing is recomputed"


def test_usage_override_on_every_endpoint_and_stream(fake: FakeUpstream) -> None:
    fake.configure(usage={"prompt_tokens": -5, "input_tokens": "12", "total_tokens": 3.7})
    chat = raw_usage(fake, "/v1/chat/completions")
    assert chat == {
        "prompt_tokens": -5,
        "completion_tokens": 8,
        "total_tokens": 3.7,
        "input_tokens": "12",
    }
    options = {"stream": True, "stream_options": {"include_usage": True}}
    assert raw_usage(fake, "/v1/chat/completions", **options) == chat
    completion = raw_usage(fake, "/v1/completions", **options)
    assert completion["prompt_tokens"] == -5 and completion["completion_tokens"] == 8
    embedding = raw_usage(fake, "/v1/embeddings")
    assert embedding == {"prompt_tokens": -5, "total_tokens": 3.7, "input_tokens": "12"}
    response = raw_usage(fake, "/v1/responses", stream=True)
    assert response["input_tokens"] == "12" and response["output_tokens"] == 8
    assert response["total_tokens"] == 3.7
    assert raw_usage(fake, "/v1/responses")["input_tokens"] == "12"


def test_usage_override_keeps_huge_integers_exact(fake: FakeUpstream) -> None:
    fake.configure(usage={"completion_tokens": 2**70})
    assert fake.stats()["behavior"] == {"usage": {"completion_tokens": 2**70}}
    reply = fake.request("POST", "/v1/chat/completions", BODIES["/v1/chat/completions"])
    assert b'"completion_tokens":1180591620717411303424' in reply.body


def test_omit_usage_wins_over_usage(fake: FakeUpstream) -> None:
    fake.configure(usage={"prompt_tokens": 1}, omit_usage=True)
    for path, body in BODIES.items():
        sent = fake.request("POST", path, body).json()
        assert sent.get("usage") is None
        assert ("usage" in sent) == (path == "/v1/responses"), "a response says usage: null"


# error_code


@pytest.mark.parametrize("stream", [False, True])
def test_error_code_with_status_and_message(fake: FakeUpstream, stream: bool) -> None:
    fake.configure(status=404, error_code="model_not_found", error_message="no such model")
    with pytest.raises(openai.NotFoundError) as info:
        make_client(fake).chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert info.value.body == {
        "message": "no such model",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def test_error_code_on_other_endpoints(fake: FakeUpstream) -> None:
    fake.enqueue(
        {"status": 400, "error_code": "context_length_exceeded"},
        {"status": 429, "error_code": "insufficient_quota", "retry_after": 2},
    )
    client = make_client(fake)
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="m", input="x")
    assert isinstance(bad.value.body, dict) and bad.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="m", input="x")
    assert (
        isinstance(limited.value.body, dict) and limited.value.body["code"] == "insufficient_quota"
    )
    assert limited.value.response.headers["retry-after"] == "2"
    fake.configure(status=429)
    assert fake.request("GET", "/v1/models").json()["error"]["code"] == "rate_limit_exceeded"


# unsupported


def test_unsupported_paths_answer_unknown_url(fake: FakeUpstream) -> None:
    client = make_client(fake)
    stored = client.responses.create(model="m", input="x")
    fake.configure(unsupported=["/v1/responses", "/v1/embeddings"])
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="m", input="x")
    assert info.value.body == {
        "message": "Invalid URL (POST /v1/responses)",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }
    with pytest.raises(openai.NotFoundError) as retrieved:
        client.responses.retrieve(stored.id)
    assert isinstance(retrieved.value.body, dict)
    assert retrieved.value.body["code"] == "unknown_url"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="m", input="x")
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    fake.configure()
    assert client.responses.retrieve(stored.id).output_text == DEFAULT_CONTENT
    stats = fake.stats()
    assert stats["requests"] == 4
    assert stats["completed"] == 4


def test_unsupported_one_shot_and_models(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.enqueue({"unsupported": ["/v1/chat/completions"]})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    fake.configure(unsupported=["/v1/models"])
    with pytest.raises(openai.NotFoundError):
        client.models.list()
    reply = fake.request("GET", "/v1/nothing/here")
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "unknown_url"


# faults and one-shots on every LLM endpoint


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_faults_on_every_endpoint(fake: FakeUpstream, endpoint: str) -> None:
    path, call, read = ENDPOINTS[endpoint]
    client = make_client(fake)
    fake.enqueue(
        {"status": 503, "retry_after": 1},
        {"malformed": True},
        {"drop": True},
        {"latency_ms": 30, "tokens": 2},
        {"hang": True},
    )
    with pytest.raises(openai.InternalServerError):
        call(client)
    with pytest.raises(ValueError):
        call(client)
    with pytest.raises(openai.APIConnectionError):
        call(client)
    expected = NORMAL[endpoint] if endpoint == "embeddings" else "Hello from"
    assert read(call(client)) == expected
    with pytest.raises(openai.APITimeoutError):
        call(make_client(fake, timeout=0.3))
    assert read(call(client)) == NORMAL[endpoint]
    stats = fake.wait_for(lambda s: s["client_disconnects"] == 1)
    assert stats["requests"] == 6
    assert stats["by_path"] == {path: 6}
    assert stats["completed"] == 4, "dropped and hung requests are not completed"
    assert stats["last_request"]["path"] == path
    assert stats["queued"] == 0


def test_one_shots_are_shared_by_all_endpoints_in_order(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.enqueue({"tokens": 1}, {"tokens": 2}, {"content": "x y z"}, {"status": 500})
    assert client.responses.create(model="m", input="x").output_text == "Hello"
    assert client.completions.create(model="m", prompt="x").choices[0].text == "Hello from"
    chat = client.chat.completions.create(model="m", messages=MESSAGES)
    assert chat.choices[0].message.content == "x y z"
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="m", input="x")
    stats = fake.stats()
    assert stats["requests"] == 4
    assert stats["last_request"]["path"] == "/v1/embeddings"
    assert stats["last_request"]["body"]["input"] == "x"
    assert stats["by_path"] == {
        "/v1/responses": 1,
        "/v1/completions": 1,
        "/v1/chat/completions": 1,
        "/v1/embeddings": 1,
    }


def test_drop_after_chunks_on_responses_stream(fake: FakeUpstream) -> None:
    fake.configure(drop_after_chunks=4)
    stream = make_client(fake).responses.create(model="m", input="x", stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for event in stream:
            received.append(event.type)
    assert received == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    stats = fake.wait_for(lambda s: s["open_connections"] == 0)
    assert stats["streams_started"] == 1
    assert stats["streams_completed"] == 0
    assert stats["client_disconnects"] == 0


def test_stream_faults_on_completions_and_responses(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.configure(malformed=True)
    with pytest.raises(ValueError):
        list(client.completions.create(model="m", prompt="x", stream=True))
    with pytest.raises(ValueError):
        list(client.responses.create(model="m", input="x", stream=True))
    assert fake.stats()["streams_completed"] == 2, "a malformed stream is still sent in full"
    fake.configure(chunk_delay_ms=20, tokens=3)
    started = time.monotonic()
    events = list(client.responses.create(model="m", input="x", stream=True))
    # 10 delays of 20 ms between 11 events; the event loop's timers may fire a little early.
    assert time.monotonic() - started >= 0.15
    assert len(events) == 11 and events[-1].type == "response.completed"


# validation, help and the chat fast path


@pytest.mark.parametrize(
    ("behavior", "message"),
    [
        ({"usage": [1]}, "usage must be a JSON object"),
        ({"error_code": 404}, "error_code must be a string"),
        ({"tool_call": {"arguments": "{}"}}, "tool_call must be"),
        ({"tool_call": {"name": "f", "arguments": {}}}, "tool_call must be"),
        ({"tool_call": {"name": "f", "id": "x"}}, "tool_call must be"),
        ({"unsupported": "/v1/responses"}, "unsupported must be a list of strings"),
        ({"unsupported": ["v1/responses"]}, "must start with /"),
    ],
)
def test_new_behaviors_are_validated(
    fake: FakeUpstream, behavior: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        fake.configure(**behavior)
    with pytest.raises(RuntimeError, match=re.escape(message)):
        fake.enqueue(behavior)
    assert fake.stats()["queued"] == 0


def test_help_lists_endpoints_and_every_behavior_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fake_upstream", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for path in BODIES:
        assert f"POST {path} " in result.stdout
    assert "/v1/responses/ID" in result.stdout
    keys = set(re.findall(r"^  (\w+) +", result.stdout.split("behavior keys")[1], re.M))
    assert keys == BEHAVIOR_KEYS


def test_chat_fast_path_sends_the_same_bytes(fake: FakeUpstream) -> None:
    """A default behavior takes a hand-serialized path; any behavior takes the general one."""
    body = BODIES["/v1/chat/completions"]
    fast = fake.request("POST", "/v1/chat/completions", {**body, "max_tokens": 3}).body
    fake.configure(latency_ms=0)
    general = fake.request("POST", "/v1/chat/completions", {**body, "max_tokens": 3}).body

    def normalized(raw: bytes) -> bytes:
        return re.sub(rb'"(id|created)":("[^"]*"|\d+)', b"", raw)

    assert normalized(fast) == normalized(general)
    assert json.loads(fast)["choices"][0]["finish_reason"] == "length"
