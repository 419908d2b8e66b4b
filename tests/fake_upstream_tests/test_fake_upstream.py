"""Checks the fake upstream against the real ``openai`` SDK, so gateway tests can trust it."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.fake_upstream import FakeUpstream, free_port
from tests.fake_upstream_tests.helpers import DEFAULT_CONTENT, MESSAGES, make_client, raw_http


def test_non_streaming_content_and_usage(fake: FakeUpstream) -> None:
    response = make_client(fake).chat.completions.create(model="my-model", messages=MESSAGES)
    assert response.object == "chat.completion"
    assert response.model == "my-model"
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_CONTENT
    assert choice.finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == 6
    assert response.usage.completion_tokens == 8
    assert response.usage.total_tokens == 14
    stats = fake.stats()
    assert stats["requests"] == 1
    assert stats["completed"] == 1
    assert stats["by_path"] == {"/v1/chat/completions": 1}


def test_tokens_and_max_tokens(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.configure(tokens=20)
    long = client.chat.completions.create(model="m", messages=MESSAGES)
    assert len((long.choices[0].message.content or "").split()) == 20
    capped = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)
    assert capped.choices[0].message.content == "Hello from a"
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None and capped.usage.completion_tokens == 3


def test_streaming_matches_non_streaming(fake: FakeUpstream) -> None:
    client = make_client(fake)
    expected = client.chat.completions.create(model="m", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == expected.usage
    assert len(chunks) == 1 + 8 + 1 + 1
    stats = fake.wait_for(lambda s: s["streams_completed"] == 1)
    assert stats["streams_started"] == 1
    assert stats["client_disconnects"] == 0


def test_stream_without_include_usage_and_omit_usage(fake: FakeUpstream) -> None:
    client = make_client(fake)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    fake.configure(omit_usage=True)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)
    assert client.chat.completions.create(model="m", messages=MESSAGES).usage is None


def test_content_override_streams_exactly(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.configure(content="  one two\tthree  ")
    full = client.chat.completions.create(model="m", messages=MESSAGES)
    assert full.choices[0].message.content == "  one two\tthree  "
    assert full.usage is not None and full.usage.completion_tokens == 3
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]
    assert pieces == ["  one", " two", "\tthree  "]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_statuses(
    fake: FakeUpstream, status: int, error: type[openai.APIStatusError], stream: bool
) -> None:
    fake.configure(status=status, retry_after=7, error_message="nope")
    with pytest.raises(error) as info:
        make_client(fake).chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert info.value.status_code == status
    assert info.value.response.headers["retry-after"] == "7"
    body = info.value.body
    assert isinstance(body, dict)
    assert body["message"] == "nope"
    assert body["param"] is None


def test_malformed_raises(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.configure(malformed=True)
    with pytest.raises(ValueError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(ValueError):
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_hang_times_out_and_counts_disconnect(fake: FakeUpstream) -> None:
    fake.configure(hang=True)
    with pytest.raises(openai.APITimeoutError):
        make_client(fake, timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)
    stats = fake.wait_for(lambda s: s["client_disconnects"] == 1)
    assert stats["completed"] == 0
    assert stats["open_connections"] == 0


def test_disconnect_during_latency(fake: FakeUpstream) -> None:
    fake.configure(latency_ms=3000)
    with pytest.raises(openai.APITimeoutError):
        make_client(fake, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    fake.wait_for(lambda s: s["client_disconnects"] == 1 and s["completed"] == 0)


def test_latency_delays_but_answers(fake: FakeUpstream) -> None:
    fake.configure(latency_ms=50)
    response = make_client(fake).chat.completions.create(model="m", messages=MESSAGES)
    assert response.choices[0].message.content == DEFAULT_CONTENT


def test_drop_raises_connection_error(fake: FakeUpstream) -> None:
    fake.configure(drop=True)
    with pytest.raises(openai.APIConnectionError) as info:
        make_client(fake).chat.completions.create(model="m", messages=MESSAGES)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert fake.stats()["client_disconnects"] == 0


def test_drop_after_chunks(fake: FakeUpstream) -> None:
    fake.configure(drop_after_chunks=3)
    stream = make_client(fake).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    stats = fake.wait_for(lambda s: s["open_connections"] == 0)
    assert stats["streams_started"] == 1
    assert stats["streams_completed"] == 0
    assert stats["client_disconnects"] == 0


def test_enqueue_one_429_then_success(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.enqueue({"status": 429, "retry_after": 1})
    assert fake.stats()["queued"] == 1
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    response = client.chat.completions.create(model="m", messages=MESSAGES)
    assert response.choices[0].message.content == DEFAULT_CONTENT
    assert fake.stats()["requests"] == 2


def test_enqueue_is_ordered_and_sdk_retry_recovers(fake: FakeUpstream) -> None:
    fake.configure(tokens=2)
    fake.enqueue({"status": 500}, {"status": 503}, {"tokens": 4})
    client = make_client(fake, max_retries=2)
    response = client.chat.completions.create(model="m", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from a lorem"
    again = client.chat.completions.create(model="m", messages=MESSAGES)
    assert again.choices[0].message.content == "Hello from"
    assert fake.stats()["requests"] == 4


def test_closing_stream_midway_counts_disconnect(fake: FakeUpstream) -> None:
    fake.configure(chunk_delay_ms=50, tokens=50)
    stream = make_client(fake).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    stream.close()
    stats = fake.wait_for(lambda s: s["client_disconnects"] == 1)
    assert stats["streams_started"] == 1
    assert stats["streams_completed"] == 0
    assert stats["completed"] == 0


def test_cancelling_async_stream_counts_disconnect(fake: FakeUpstream) -> None:
    fake.configure(chunk_delay_ms=50, tokens=50)

    async def consume(first: asyncio.Event) -> None:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        async with client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            async with stream:
                async for _chunk in stream:
                    first.set()

    async def main() -> None:
        first = asyncio.Event()
        task = asyncio.create_task(consume(first))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    fake.wait_for(lambda s: s["client_disconnects"] == 1 and s["streams_completed"] == 0)


def test_models_listing(fake: FakeUpstream) -> None:
    client = make_client(fake)
    models = client.models.list()
    assert [m.id for m in models] == ["fake-model", "fake-model-2"]
    assert all(m.owned_by == "a" and m.object == "model" for m in models)
    assert client.models.retrieve("fake-model-2").id == "fake-model-2"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    fake.configure(models=["x", "y", "z"])
    assert [m.id for m in client.models.list()] == ["x", "y", "z"]
    assert fake.stats()["requests"] == 0


def test_stats_last_request_and_reset(fake: FakeUpstream) -> None:
    client = make_client(fake, api_key="secret", default_headers={"X-Trace": "t1"})
    client.chat.completions.create(model="m", messages=MESSAGES, temperature=0.5)
    stats = fake.stats()
    assert stats["name"] == "a"
    last = stats["last_request"]
    assert last["path"] == "/v1/chat/completions"
    assert last["headers"]["authorization"] == "Bearer secret"
    assert last["headers"]["x-trace"] == "t1"
    assert last["body"] == {"model": "m", "messages": MESSAGES, "temperature": 0.5}
    fake.configure(status=500)
    fake.enqueue({"tokens": 1})
    fake.reset()
    stats = fake.stats()
    assert stats["requests"] == 0
    assert stats["by_path"] == {}
    assert stats["queued"] == 0
    assert stats["behavior"] == {}
    assert stats["last_request"] is None
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices


def test_invalid_behavior_is_rejected(fake: FakeUpstream) -> None:
    with pytest.raises(RuntimeError, match="latency"):
        fake.configure(latncy_ms=5)
    with pytest.raises(RuntimeError, match="boolean"):
        fake.configure(hang="yes")


def test_invalid_request_gets_400(fake: FakeUpstream) -> None:
    client = make_client(fake)
    with pytest.raises(openai.BadRequestError):
        # Deliberately malformed: the SDK's types rightly reject a string as the messages.
        client.chat.completions.create(model="m", messages="hi")  # type: ignore[arg-type]
    assert fake.stats()["requests"] == 1


def test_chunked_request_body_rejected_and_pipelining(fake: FakeUpstream) -> None:
    body = b'{"model":"m","messages":[]}'
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    assert raw_http(fake, chunked).startswith(b"HTTP/1.1 400 ")
    one = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    last = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    fake.enqueue({"latency_ms": 30})
    reply = raw_http(fake, one * 3 + last)
    assert reply.count(b"HTTP/1.1 200 OK") == 4
    assert reply.index(b"chatcmpl-a-1") < reply.index(b"chatcmpl-a-2") < reply.index(b'"list"')


def test_wait_for_times_out_with_stats(fake: FakeUpstream) -> None:
    with pytest.raises(AssertionError, match="last stats"):
        fake.wait_for(lambda s: s["requests"] == 99, timeout=0.1)


def test_lifecycle_and_free_port() -> None:
    port = free_port()
    fake = FakeUpstream(name="b", port=port, tokens=3, models=["only"])
    with fake:
        assert fake.port == port
        assert fake.base_url == f"http://127.0.0.1:{port}/v1"
        client = make_client(fake)
        content = client.chat.completions.create(model="m", messages=MESSAGES)
        assert content.choices[0].message.content == "Hello from b"
        assert [m.id for m in client.models.list()] == ["only"]
        process = fake.process
        assert process is not None
    assert process.returncode == 0
    assert not fake.running
