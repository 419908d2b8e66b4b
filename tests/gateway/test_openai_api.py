"""The OpenAI-compatible API, driven by the unmodified ``openai`` SDK against fake upstreams."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from apps.accounts.models import Role
from apps.providers.models import CallStatus, Provider
from apps.providers.services import provider_update
from tests.fake_upstream import FakeUpstream, free_port
from tests.support.factories import api_key_issue
from tests.support.providers import deploy, provider_for, routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]


def direct(fake: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)


def test_non_streaming_answer_arrives_intact(two_providers, gateway, upstream_a):
    ours = gateway.chat.completions.create(model="chat", messages=HELLO)
    theirs = direct(upstream_a).chat.completions.create(model="fake-model", messages=HELLO)
    assert ours.choices[0].message.content == theirs.choices[0].message.content
    assert ours.choices[0].message.content.startswith("Hello from a")
    assert ours.usage.completion_tokens == theirs.usage.completion_tokens == 8
    assert ours.model == "fake-model"


def test_streaming_answer_arrives_intact(two_providers, gateway, upstream_a):
    chunks = list(gateway.chat.completions.create(model="chat", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = direct(upstream_a).chat.completions.create(model="fake-model", messages=HELLO)
    assert text == expected.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks), "usage was not asked for"


def test_stream_usage_is_forwarded_when_asked(two_providers, gateway):
    chunks = list(
        gateway.chat.completions.create(
            model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage.completion_tokens == 8


def test_provider_can_be_pinned_in_the_model_name(two_providers, gateway):
    answer = gateway.chat.completions.create(model="b/chat", messages=HELLO)
    assert answer.choices[0].message.content.startswith("Hello from b")


def refuse_connections(provider: Provider) -> None:
    provider.base_url = f"http://127.0.0.1:{free_port()}/v1"
    provider.save()


FAILURES = {
    "500": lambda fake, provider: fake.configure(status=500),
    "timeout": lambda fake, provider: fake.configure(hang=True),
    "refused": lambda fake, provider: refuse_connections(provider),
    "malformed": lambda fake, provider: fake.configure(malformed=True),
    "dropped": lambda fake, provider: fake.configure(drop=True),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("failure", FAILURES)
def test_requests_succeed_through_the_other_provider(
    recorded_calls, two_providers, gateway, upstream_a, failure, stream
):
    provider_a = two_providers["a"]
    provider_a.timeout_seconds = 0.5
    provider_a.save()
    FAILURES[failure](upstream_a, provider_a)
    for _ in range(3):
        if stream:
            chunks = gateway.chat.completions.create(model="chat", messages=HELLO, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = (
                gateway.chat.completions.create(model="chat", messages=HELLO)
                .choices[0]
                .message.content
            )
        assert text.startswith("Hello from b")
    calls = recorded_calls(3)
    assert all(call.status == CallStatus.SUCCESS and call.provider_name == "b" for call in calls)
    failed = [a for call in calls for a in call.attempts.all() if a.provider_name == "a"]
    assert failed and all(a.status == CallStatus.ERROR for a in failed)
    assert {a.error_code for a in failed} <= {"unavailable", "timeout", "malformed_response"}


def test_a_bad_request_is_returned_and_not_failed_over(
    recorded_calls, two_providers, gateway, upstream_a, upstream_b
):
    upstream_a.configure(status=400, error_message="messages are weird")
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.chat.completions.create(model="chat", messages=HELLO)
    assert "messages are weird" in raised.value.message
    assert upstream_a.stats()["requests"] == 1, "a client error is not retried"
    assert upstream_b.stats()["requests"] == 0, "a client error is not failed over"
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.ERROR and call.error_code == "bad_request"


def test_rate_limited_request_is_retried_after_backoff(
    recorded_calls, two_providers, gateway, upstream_a, upstream_b
):
    upstream_a.enqueue({"status": 429, "retry_after": 0.3})
    answer = gateway.chat.completions.create(model="chat", messages=HELLO)
    assert answer.choices[0].message.content.startswith("Hello from a")
    assert upstream_a.stats()["requests"] == 2 and upstream_b.stats()["requests"] == 0
    (call,) = recorded_calls(1)
    first, second = call.attempts.order_by("number")
    assert first.error_code == "rate_limited" and first.http_status == 429
    assert second.status == CallStatus.SUCCESS and second.provider_name == "a"
    assert (second.started_at - first.started_at).total_seconds() >= 0.3


def test_cost_is_tokens_times_price(recorded_calls, two_providers, gateway):
    answer = gateway.chat.completions.create(model="chat", messages=HELLO)
    (call,) = recorded_calls(1)
    assert (
        (call.input_tokens, call.output_tokens)
        == (3, 8)
        == (
            answer.usage.prompt_tokens,
            answer.usage.completion_tokens,
        )
    )
    assert call.cost == (3 * Decimal("1.5") + 8 * Decimal("6")) / 1_000_000
    assert not call.tokens_estimated
    assert call.user_id and call.api_key_id and call.request_id


def test_missing_usage_is_estimated_and_marked(recorded_calls, two_providers, gateway, upstream_a):
    upstream_a.configure(omit_usage=True)
    gateway.chat.completions.create(model="chat", messages=HELLO)
    (call,) = recorded_calls(1)
    assert call.tokens_estimated and call.output_tokens > 0 and call.input_tokens > 0


def test_dropping_the_client_mid_stream_closes_the_upstream(
    recorded_calls, two_providers, gateway, upstream_a
):
    upstream_a.configure(chunk_delay_ms=100, tokens=50)
    stream = gateway.chat.completions.create(model="chat", messages=HELLO, stream=True)
    next(iter(stream))
    next(iter(stream))
    stream.close()
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1, timeout=5)
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED


def test_unknown_model_is_404_in_openai_shape(two_providers, gateway):
    with pytest.raises(openai.NotFoundError) as raised:
        gateway.chat.completions.create(model="nope", messages=HELLO)
    assert raised.value.body["code"] == "model_not_found"


def test_models_lists_public_names(two_providers, gateway):
    assert {m.id for m in gateway.models.list()} == {"fake-model", "chat"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (b'{"model": "chat"}', "messages"),
        (b'{"model": "chat", "messages": [{"content": "x"}]}', "messages[0]"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (
            b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
            "temperature",
        ),
        (
            b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
            "max_tokens",
        ),
        (
            b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
        ),
    ],
)
def test_bad_bodies_get_a_400_in_openai_shape(
    two_providers, asgi_server, operator_key, body, param
):
    response = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {operator_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param


def test_too_large_body_is_413(asgi_server, operator_key):
    response = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        content=b"x" * (5 * 1024 * 1024),
        headers={"Authorization": f"Bearer {operator_key}"},
    )
    assert response.status_code == 413


def test_keys_and_roles_are_enforced(two_providers, asgi_server):
    url = f"{asgi_server.url}/v1"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="ao_deadbeef_nope").chat.completions.create(
            model="chat", messages=HELLO
        )
    viewer = openai.OpenAI(base_url=url, api_key=api_key_issue(role=Role.VIEWER), max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        viewer.chat.completions.create(model="chat", messages=HELLO)
    assert [m.id for m in viewer.models.list()], "viewers may list models"
    anonymous = httpx.post(f"{url}/chat/completions", json={"model": "chat", "messages": HELLO})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"


def test_wrong_method_and_unknown_path(asgi_server, operator_key):
    headers = {"Authorization": f"Bearer {operator_key}"}
    assert httpx.get(f"{asgi_server.url}/v1/chat/completions", headers=headers).status_code == 405
    assert httpx.get(f"{asgi_server.url}/v1/embeddings", headers=headers).status_code == 405
    assert httpx.get(f"{asgi_server.url}/v1/images/generations", headers=headers).status_code == 404


def test_request_id_is_echoed_and_recorded(
    recorded_calls, two_providers, asgi_server, operator_key
):
    response = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO},
        headers={"Authorization": f"Bearer {operator_key}", "X-Request-ID": "gw-trace-1"},
    )
    assert response.headers["X-Request-ID"] == "gw-trace-1"
    (call,) = recorded_calls(1)
    assert call.request_id == "gw-trace-1"


def test_model_fallback_list_is_tried_after_its_own_deployments(upstream_a, upstream_b, gateway):
    routing()
    deploy(provider_for(upstream_a), name="big", aliases=[], fallbacks=["small"])
    deploy(provider_for(upstream_b), name="small", aliases=[])
    upstream_a.configure(status=503)
    answer = gateway.chat.completions.create(model="big", messages=HELLO)
    assert answer.choices[0].message.content.startswith("Hello from b")


def test_fallback_can_be_switched_off(two_providers, gateway, upstream_a, upstream_b):
    routing(fallback_enabled=False)
    upstream_a.configure(status=500)
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.chat.completions.create(model="chat", messages=HELLO)
    assert raised.value.status_code == 502
    assert upstream_b.stats()["requests"] == 0


def test_the_provider_key_is_sent_upstream(upstream_a, gateway):
    routing()
    provider = Provider.objects.create(name="a", base_url=upstream_a.base_url, kind="openai")
    provider_update(provider=provider, api_key="sk-secret-upstream")
    deploy(provider)
    gateway.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    headers = upstream_a.stats()["last_request"]["headers"]
    assert headers["authorization"] == "Bearer sk-secret-upstream"
