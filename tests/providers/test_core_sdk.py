"""The core's own entry points (``complete`` through the SDK, ``stream`` through the lean client),
as the query API, WebSocket tasks and builds use them from synchronous code."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from apps.core.runtime import run_sync
from apps.providers.llm import Caller, LlmRequest, collect, complete, errors, stream
from apps.providers.llm.errors import ProviderError
from apps.providers.llm.recording.recorder import recorder
from apps.providers.models import CallStatus, EntryPoint

pytestmark = pytest.mark.django_db(transaction=True)


def request(**overrides) -> LlmRequest:
    fields = {
        "messages": [{"role": "user", "content": "hello there"}],
        "model": "chat",
        "entry_point": EntryPoint.INTERNAL,
        "caller": Caller(),
    }
    return LlmRequest(**{**fields, **overrides})


def test_complete_answers_and_records(two_providers, recorded_calls):
    completion = run_sync(complete(request(params={"max_tokens": 3})))
    assert completion.content == "Hello from a"
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3 and completion.provider == "a"
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.id == completion.call_id and call.cost == completion.cost


def test_complete_fails_over_through_the_sdk(two_providers, upstream_a):
    upstream_a.configure(status=503)
    assert run_sync(complete(request())).provider == "b"


def test_stream_yields_content_then_the_closing_chunk(two_providers, upstream_a):
    text, last = run_sync(collect(request()))
    assert text.startswith("Hello from a") and len(text.split()) == 8
    assert last.finish_reason == "stop" and last.usage.output_tokens == 8
    assert last.provider == "a" and not last.usage.estimated


def test_stream_fails_over_before_the_first_token(two_providers, upstream_a):
    upstream_a.configure(malformed=True)
    text, last = run_sync(collect(request()))
    assert text.startswith("Hello from b") and last.provider == "b"


def test_closing_a_stream_closes_the_upstream_connection(two_providers, upstream_a, recorded_calls):
    upstream_a.configure(chunk_delay_ms=100, tokens=40)

    async def read_two_then_stop() -> list[str]:
        async with aclosing(stream(request())) as chunks:
            return [(await anext(chunks)).content, (await anext(chunks)).content]

    assert len(run_sync(read_two_then_stop())) == 2
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1)
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED


def test_unknown_model_raises_and_is_recorded(two_providers, recorded_calls):
    with pytest.raises(ProviderError) as raised:
        run_sync(complete(request(model="missing")))
    assert raised.value.code == errors.MODEL_NOT_FOUND
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.ERROR and call.error_code == errors.MODEL_NOT_FOUND
