"""Every entry point records the call's end user, tags and workspace; bad values are refused;
the ``X-Orchestra-*`` headers never reach the provider; the workspace comes from the key or
the user, never from the request."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Role, Workspace
from apps.accounts.services import api_key_create, workspace_create
from apps.providers.llm.recording.recorder import recorder
from apps.providers.models import EntryPoint, LlmCall
from tests.support.factories import bearer, user_create

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]
TAGS = "team=growth, feature=search"


def key_in_workspace(*, by_key: bool = True) -> tuple[str, Workspace]:
    """An operator's key; its workspace is the key's own (``by_key``) or its user's."""
    user = user_create(role=Role.OPERATOR)
    api_key, raw_key = api_key_create(user=user, name="attributed")
    if by_key:
        workspace = workspace_create(name="growth-team", api_keys=[api_key])
    else:
        workspace = workspace_create(name="search-team", members=[user])
    return raw_key, workspace


def post_v1(server, key: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO, **body},
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def test_v1_records_the_body_user_the_header_tags_and_the_keys_workspace(
    two_providers, asgi_server, upstream_a, recorded_calls
):
    key, workspace = key_in_workspace()
    other = Workspace.objects.create(name="someone-else")
    response = post_v1(
        asgi_server,
        key,
        {"user": "alice@example.com", "workspace": other.pk},
        **{"X-Orchestra-Tags": TAGS, "X-Orchestra-User": "ignored", "X-Orchestra-Workspace": "2"},
    )
    assert response.status_code == 200, response.text
    (call,) = recorded_calls(1)
    assert call.end_user == "alice@example.com"  # the body's user wins over the header
    assert call.tags == {"team": "growth", "feature": "search"}
    assert call.workspace_id == workspace.pk  # neither the body nor a header chose it
    sent = upstream_a.stats()["last_request"]
    assert not [name for name in sent["headers"] if name.startswith("x-orchestra")]
    assert sent["body"]["user"] == "alice@example.com"  # OpenAI's own field goes on


def test_v1_stream_takes_the_user_from_the_header_and_the_users_workspace(
    two_providers, asgi_server, upstream_a, recorded_calls
):
    key, workspace = key_in_workspace(by_key=False)
    with httpx.stream(
        "POST",
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO, "stream": True},
        headers={
            "Authorization": f"Bearer {key}",
            "X-Orchestra-User": "bob",
            "X-Orchestra-Tags": "team=search",
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        response.read()
    (call,) = recorded_calls(1)
    assert call.stream and call.end_user == "bob" and call.tags == {"team": "search"}
    assert call.workspace_id == workspace.pk
    headers = upstream_a.stats()["last_request"]["headers"]
    assert "x-orchestra-user" not in headers and "x-orchestra-tags" not in headers


def test_v1_without_attribution_records_none(two_providers, asgi_server, recorded_calls):
    user = user_create(role=Role.OPERATOR)
    raw_key = api_key_create(user=user, name="plain")[1]
    assert post_v1(asgi_server, raw_key, {}).status_code == 200
    (call,) = recorded_calls(1)
    assert (call.end_user, call.tags, call.workspace_id) == ("", {}, None)


REFUSED = {
    "too-many-tags": ({}, {"X-Orchestra-Tags": ",".join(f"k{i}=v" for i in range(11))}),
    "bad-key": ({}, {"X-Orchestra-Tags": "te am=growth"}),
    "long-key": ({}, {"X-Orchestra-Tags": "k" * 33 + "=v"}),
    "long-value": ({}, {"X-Orchestra-Tags": "team=" + "v" * 65}),
    "no-equals": ({}, {"X-Orchestra-Tags": "growth"}),
    "twice": ({}, {"X-Orchestra-Tags": "team=a,team=b"}),
    "empty-value": ({}, {"X-Orchestra-Tags": "team="}),
    "long-user": ({"user": "u" * 257}, {}),
    "control-user": ({"user": "al\u0007ice"}, {}),
    "user-not-string": ({"user": 42}, {}),
    "control-user-header": ({}, {"X-Orchestra-User": "al\tice"}),
}


@pytest.mark.parametrize("case", REFUSED)
def test_v1_refuses_bad_attribution_with_a_400(two_providers, asgi_server, upstream_a, case):
    key, _ = key_in_workspace()
    body, headers = REFUSED[case]
    response = post_v1(asgi_server, key, body, **headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] in ("user", "X-Orchestra-Tags", "X-Orchestra-User")
    assert upstream_a.stats()["requests"] == 0


def test_v1_tags_in_the_body_are_openais_business_not_ours(
    two_providers, asgi_server, upstream_a, recorded_calls
):
    key, _ = key_in_workspace()
    assert post_v1(asgi_server, key, {"tags": {"team": "x"}}).status_code == 200
    (call,) = recorded_calls(1)
    assert call.tags == {}


def test_query_api_records_the_bodys_user_and_tags(two_providers, recorded_calls):
    key, workspace = key_in_workspace()
    api = APIClient(headers=bearer(key))
    response = api.post(
        "/api/v1/query",
        {"prompt": "hi", "model": "chat", "user": "carol", "tags": {"feature": "summary"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.entry_point == EntryPoint.QUERY
    assert (call.end_user, call.tags, call.workspace_id) == (
        "carol",
        {"feature": "summary"},
        workspace.pk,
    )


def test_query_api_takes_the_headers_where_the_body_has_none(two_providers, recorded_calls):
    key, workspace = key_in_workspace(by_key=False)
    api = APIClient(headers={**bearer(key), "X-Orchestra-User": "dan", "X-Orchestra-Tags": TAGS})
    response = api.post("/api/v1/query", {"prompt": "hi", "model": "chat"}, format="json")
    assert response.status_code == 200, response.json()
    recorder.flush()
    (call,) = recorded_calls(1)
    assert call.end_user == "dan" and call.tags == {"team": "growth", "feature": "search"}
    assert call.workspace_id == workspace.pk


@pytest.mark.parametrize(
    "body",
    [
        {"tags": {"team": "a b"}},
        {"tags": ["team=growth"]},
        {"tags": {"team": 1}},
        {"user": "x" * 257},
    ],
)
def test_query_api_refuses_bad_attribution(two_providers, body):
    key, _ = key_in_workspace()
    api = APIClient(headers=bearer(key))
    response = api.post("/api/v1/query", {"prompt": "hi", "model": "chat", **body}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_sse_records_the_header_user_and_tags(two_providers, asgi_server, recorded_calls):
    key, workspace = key_in_workspace()
    with httpx.stream(
        "POST",
        f"{asgi_server.url}/api/streaming/chat",
        json={"messages": HELLO, "model": "chat"},
        headers={"Authorization": f"Bearer {key}", "X-Orchestra-User": "erin"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        response.read()
    with httpx.stream(
        "POST",
        f"{asgi_server.url}/api/streaming/generate",
        json={"prompt": "hi", "model": "chat", "tags": {"team": "growth"}},
        headers={"Authorization": f"Bearer {key}", "X-Orchestra-Tags": "team=ignored"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        response.read()
    first, second = recorded_calls(2)
    assert first.entry_point == second.entry_point == EntryPoint.SSE
    assert (first.end_user, first.tags, first.workspace_id) == ("erin", {}, workspace.pk)
    assert second.tags == {"team": "growth"}  # the body's tags win over the header's


def test_sse_refuses_bad_tags(two_providers, asgi_server):
    key, _ = key_in_workspace()
    response = httpx.post(
        f"{asgi_server.url}/api/streaming/chat",
        json={"messages": HELLO, "model": "chat"},
        headers={"Authorization": f"Bearer {key}", "X-Orchestra-Tags": "team"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["param"] == "X-Orchestra-Tags"


async def test_websocket_records_the_messages_user_and_tags(
    two_providers, asgi_server, celery_worker, recorded_calls
):
    key, workspace = await database_sync_to_async(key_in_workspace)()
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(asgi_server.ws_url, additional_headers=headers) as ws:
        ask = {"type": "query", "id": "q1", "messages": HELLO, "model": "chat"}
        await ws.send(json.dumps({**ask, "id": "bad", "tags": {"team": "a b"}}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert refused["type"] == "error" and "tags" in refused["message"]
        await ws.send(json.dumps({**ask, "user": "frank", "tags": {"team": "growth"}}))
        while (answer := json.loads(await asyncio.wait_for(ws.recv(), 15)))["type"] not in (
            "response",
            "error",
        ):
            pass
    assert answer["type"] == "response", answer
    (call,) = await database_sync_to_async(recorded_calls)(1)
    assert call.entry_point == EntryPoint.WEBSOCKET
    assert (call.end_user, call.tags, call.workspace_id) == (
        "frank",
        {"team": "growth"},
        workspace.pk,
    )


def test_a_calls_workspace_is_kept_when_the_workspace_goes(two_providers, recorded_calls):
    key, workspace = key_in_workspace()
    api = APIClient(headers=bearer(key))
    response = api.post("/api/v1/query", {"prompt": "hi", "model": "chat"}, format="json")
    assert response.status_code == 200
    recorder.flush()
    (call,) = recorded_calls(1)
    workspace.delete()
    assert ApiKey.objects.get(prefix=key.split("_")[1]).workspace is None
    assert LlmCall.objects.get(pk=call.pk).workspace_id == call.workspace_id
