"""A first provider in one minute: base URLs that work as typed, a test button that says exactly
what happened, errors that name the URL tried, and sync that goes on past a broken provider."""

from __future__ import annotations

import httpx
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import LlmModel, Provider
from tests.support.factories import api_key_issue, bearer
from tests.support.providers import deploy

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def create(**payload) -> dict:
    response = client().post("/api/v1/providers", payload, format="json")
    return {"status": response.status_code, **response.json()}


@pytest.mark.parametrize(
    ("kind", "typed", "stored"),
    [
        ("ollama", "http://gpu-box:11434", "http://gpu-box:11434/v1"),
        ("ollama", "http://gpu-box:11434/", "http://gpu-box:11434/v1"),
        ("openrouter", "https://openrouter.ai", "https://openrouter.ai/api/v1"),
        ("vllm", "http://10.0.0.5:8000/v1/", "http://10.0.0.5:8000/v1"),
        ("openai_compatible", "http://127.0.0.1:9000/v1/", "http://127.0.0.1:9000/v1"),
    ],
)
def test_a_server_root_gets_the_path_of_its_kinds_api(kind, typed, stored):
    assert create(name="p", kind=kind, base_url=typed)["base_url"] == stored


def test_a_generic_server_without_a_base_url_is_refused_when_created():
    answer = create(name="p", kind="openai_compatible")
    assert answer["status"] == 400 and "base URL" in answer["error"]["details"]["base_url"][0]
    wrong = create(name="p", kind="skynet", base_url="http://x/v1")
    assert wrong["status"] == 400 and "openai_compatible" in str(wrong["error"]["details"])


def test_the_test_button_says_what_it_found(upstream_a):
    pk = create(name="a", kind="openai_compatible", base_url=upstream_a.base_url)["id"]
    found = client().post(f"/api/v1/providers/{pk}/test").json()
    assert found["ok"] and found["url"] == f"{upstream_a.base_url}/models"
    assert found["models"] == ["fake-model", "fake-model-2"] and found["latency_ms"] > 0
    tested = Provider.objects.get(pk=pk)  # the result is its health from now on, as a probe's
    assert tested.health_status == "ok" and tested.health_checked_at and not tested.health_error
    assert client(Role.VIEWER).post(f"/api/v1/providers/{pk}/test").status_code == 403


@pytest.mark.parametrize(
    ("base_url", "words"),
    [
        ("http://127.0.0.1:9/v1", "connection refused by http://127.0.0.1:9/v1/models"),
        (
            "http://no-such-host.invalid/v1",
            "cannot resolve the host of http://no-such-host.invalid",
        ),
    ],
)
def test_the_test_button_names_connection_failures(base_url, words):
    pk = create(name="p", kind="openai_compatible", base_url=base_url)["id"]
    found = client().post(f"/api/v1/providers/{pk}/test").json()
    assert not found["ok"] and words in found["error"] and found["error_code"] == "unavailable"


def test_the_test_button_names_tls_refusals_timeouts_and_keys(upstream_a):
    port = upstream_a.base_url.split(":")[2].split("/")[0]
    tls = create(name="tls", kind="openai_compatible", base_url=f"https://127.0.0.1:{port}/v1")
    found = client().post(f"/api/v1/providers/{tls['id']}/test").json()
    assert "TLS failed with https://127.0.0.1" in found["error"]
    slow = create(
        name="slow", kind="openai_compatible", base_url=upstream_a.base_url, timeout_seconds=0.5
    )
    upstream_a.configure(hang=True)
    found = client().post(f"/api/v1/providers/{slow['id']}/test").json()
    assert found["error_code"] == "timeout" and upstream_a.base_url in found["error"]
    upstream_a.configure(status=401)
    found = client().post(f"/api/v1/providers/{slow['id']}/test").json()
    assert found["error_code"] == "auth" and "credentials" in found["error"]
    assert "sk-" not in str(found)


def test_sync_all_goes_on_past_a_provider_that_fails(upstream_a, capsys):
    Provider.objects.create(name="dead", base_url="http://127.0.0.1:9/v1", priority=1)
    Provider.objects.create(name="a", base_url=upstream_a.base_url, priority=2)
    with pytest.raises(CommandError, match="dead"):
        call_command("sync_models", "--all")
    out = capsys.readouterr()
    assert "connection refused by http://127.0.0.1:9/v1/models" in out.err
    assert "a: created 2" in out.out
    assert set(LlmModel.objects.values_list("name", flat=True)) == {"fake-model", "fake-model-2"}


def test_v1_errors_say_what_happened_and_where(asgi_server, operator_key, upstream_a):
    dead = Provider.objects.create(name="dead", base_url="http://127.0.0.1:9/v1", max_retries=0)
    deploy(dead, "fake-model", aliases=["chat"])
    headers = {"Authorization": f"Bearer {operator_key}"}
    answer = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO},
        headers=headers,
    )
    assert answer.status_code == 502 and answer.headers["x-should-retry"] == "false"
    message = answer.json()["error"]["message"]
    assert message == "connection refused by http://127.0.0.1:9/v1/chat/completions"
    empty = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "", "messages": HELLO},
        headers=headers,
    )
    assert empty.status_code == 400
    assert empty.json()["error"] == {
        "message": "'model' is required.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_required",
    }


def test_a_dropped_stream_says_the_provider_closed_it(
    two_providers, asgi_server, operator_key, upstream_a
):
    upstream_a.configure(drop_after_chunks=3)
    answer = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO, "stream": True},
        headers={"Authorization": f"Bearer {operator_key}"},
    )
    assert "closed the connection" in answer.text and "mid-answer" in answer.text
    assert upstream_a.base_url in answer.text


def test_openai_error_codes(two_providers, asgi_server, operator_key, upstream_a, upstream_b):
    headers = {"Authorization": f"Bearer {operator_key}"}

    def code(**payload) -> str:
        body = {"model": "chat", "messages": HELLO, **payload}
        answer = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=headers)
        return answer.json()["error"]["code"]

    too_long = "This model's maximum context length is 8 tokens"
    upstream_a.configure(status=400, error_code="context_length_exceeded", error_message=too_long)
    assert code() == "context_length_exceeded"
    assert code(model="nope") == "model_not_found"
    bad_key = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO},
        headers={"Authorization": "Bearer ao_nothing_here"},
    )
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"
    for fake in (upstream_a, upstream_b):
        fake.configure(status=429, retry_after=1)
    assert code() == "rate_limit_exceeded"
