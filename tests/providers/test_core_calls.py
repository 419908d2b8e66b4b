"""The core's own entry points (``complete`` and ``stream``, over the pass-through's lean client),
as the query API, WebSocket tasks and builds use them from synchronous code."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from apps.core.runtime import run_sync
from apps.experiments.hooks import snapshot_clear
from apps.experiments.services import experiment_create, experiment_start
from apps.providers.llm import Caller, LlmRequest, collect, complete, errors, stream
from apps.providers.llm.errors import ProviderError
from apps.providers.llm.recording.recorder import recorder
from apps.providers.models import CallStatus, EntryPoint
from tests.support.providers import deploy, provider_for, routing

pytestmark = pytest.mark.django_db(transaction=True)


def request(**overrides) -> LlmRequest:
    fields = {
        "messages": [{"role": "user", "content": "hello there"}],
        "model": "chat",
        "entry_point": EntryPoint.INTERNAL,
        "caller": Caller(),
    }
    return LlmRequest(**{**fields, **overrides})


def test_complete_answers_and_records(two_providers, upstream_a, recorded_calls):
    completion = run_sync(complete(request(params={"max_tokens": 3, "stream": True})))
    sent = upstream_a.stats()["last_request"]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == {
        "max_tokens": 3,
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    assert completion.content == "Hello from a"
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3 and completion.provider == "a"
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.id == completion.call_id and call.cost == completion.cost


def test_complete_fails_over(two_providers, upstream_a):
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


@pytest.fixture
def only_a(upstream_a):
    """Provider a alone, without retries: what one failed attempt raises reaches the caller."""
    routing()
    deploy(provider_for(upstream_a, max_retries=0, timeout_seconds=0.5))


@pytest.mark.parametrize(
    ("behavior", "code"),
    [
        ({"body": '{"choices": []}'}, errors.MALFORMED_RESPONSE),
        ({"body": '{"id": "chatcmpl-1", "object": "chat.completion"}'}, errors.MALFORMED_RESPONSE),
        ({"body": '{"choices": [{"message": "hello"}]}'}, errors.MALFORMED_RESPONSE),
        ({"malformed": True}, errors.MALFORMED_RESPONSE),
        ({"status": 500}, errors.UNAVAILABLE),
        ({"status": 503, "error_message": "overloaded"}, errors.UNAVAILABLE),
        ({"status": 401}, errors.AUTH),
        ({"status": 404, "error_code": "model_not_found"}, errors.MODEL_UNAVAILABLE),
        ({"status": 429, "retry_after": "1"}, errors.RATE_LIMITED),
        ({"status": 400}, errors.BAD_REQUEST),
        ({"status": 400, "error_code": "context_length_exceeded"}, errors.CONTEXT_TOO_LONG),
        ({"status": 504}, errors.TIMEOUT),
        ({"hang": True}, errors.TIMEOUT),
        ({"drop": True}, errors.UNAVAILABLE),
    ],
)
def test_complete_maps_what_the_provider_does_wrong(only_a, upstream_a, behavior, code):
    upstream_a.configure(**behavior)
    with pytest.raises(ProviderError) as raised:
        run_sync(complete(request()))
    assert raised.value.code == code
    if "status" in behavior:
        assert raised.value.http_status == behavior["status"]
    if "error_message" in behavior:
        assert "overloaded" in raised.value.message


def test_complete_says_when_the_provider_cannot_be_reached(upstream_a):
    routing()
    provider = provider_for(upstream_a, max_retries=0, base_url="http://127.0.0.1:9/v1")
    deploy(provider)
    with pytest.raises(ProviderError) as raised:
        run_sync(complete(request()))
    assert raised.value.code == errors.UNAVAILABLE
    assert "127.0.0.1:9" in raised.value.message


def test_complete_sends_what_the_request_hooks_left(two_providers, upstream_a):
    experiment = experiment_create(
        name="brief",
        variants=[
            {"name": "control", "type": "control", "traffic_percentage": 0, "config": {}},
            {
                "name": "brief",
                "type": "treatment",
                "traffic_percentage": 100,
                "config": {"temperature": 0.2, "max_tokens": 7, "system_prompt": "Be brief."},
            },
        ],
        user_percentage=100,
    )
    experiment_start(experiment=experiment)
    snapshot_clear()
    run_sync(complete(request(experiment="brief", user="ann", params={"max_tokens": 3})))
    sent = upstream_a.stats()["last_request"]["body"]
    assert sent["max_tokens"] == 7 and sent["temperature"] == 0.2
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
