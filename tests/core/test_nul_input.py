"""NUL characters (``\\u0000``) in what callers send: PostgreSQL cannot store them in text, and a
step prompt, a template or an approval's ``context`` holding one was a 500. Every JSON body of
the REST and SSE APIs (every write operation of the schema) and every ``/ws/`` message refuses
them with a 400 that names where the NUL is."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.approvals.models import ApprovalRequest
from apps.builds.models import Build, BuildTemplate
from tests.support.factories import api_key_issue, bearer


def _write_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch")
        and "application/json" in operation.get("requestBody", {}).get("content", {})
        and "{" not in path
        and path.startswith("/api/v1/")  # the SSE views: test_a_nul_over_sse_is_a_400
    )


WRITES = _write_operations()


def assert_nul_refused(response, where: str) -> None:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert where in json.dumps(error) and "NUL" in json.dumps(error)


@pytest.fixture
def admin() -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))


def test_the_schema_has_the_writes_of_the_issue():
    expected = {
        ("post", "/api/v1/builds"),
        ("post", "/api/v1/build-templates"),
        ("post", "/api/v1/approvals/request"),
        ("post", "/api/v1/agents"),
    }
    assert expected <= set(WRITES)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_every_json_write_refuses_a_nul_naming_the_field(admin, method, path):
    response = getattr(admin, method)(path, {"name": "a\x00b"}, format="json")
    assert_nul_refused(response, "name")
    if response.json()["error"]["code"] == "validation_error":
        assert "name" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_a_nul_in_a_step_prompt_is_a_400_and_nothing_is_stored(admin):
    steps = [{"name": "plan", "model": "chat", "prompt": "Plan {input}\x00"}]
    response = admin.post("/api/v1/builds", {"title": "t", "steps": steps}, format="json")
    assert_nul_refused(response, "steps.0.prompt")
    response = admin.post("/api/v1/build-templates", {"name": "t", "steps": steps}, format="json")
    assert_nul_refused(response, "steps.0.prompt")
    assert not Build.objects.exists() and not BuildTemplate.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_an_approval_context_is_a_400(admin):
    body = {
        "approval_type": "financial",
        "proposed_action": "Refund",
        "context": {"state_summary": {"note": "x\x00"}},
    }
    response = admin.post("/api/v1/approvals/request", body, format="json")
    assert_nul_refused(response, "context.state_summary.note")
    assert not ApprovalRequest.objects.exists()


@pytest.mark.django_db
def test_nul_in_writes_to_existing_objects_is_a_400(admin):
    agent = Agent.objects.create(name="nul", role="r", model="chat")
    template = BuildTemplate.objects.create(
        name="tpl", steps=[{"name": "a", "model": "chat", "prompt": "{input}"}]
    )
    cases = [
        ("patch", f"/api/v1/agents/{agent.pk}", {"system_prompt": "You\x00"}, "system_prompt"),
        ("post", f"/api/v1/agents/{agent.pk}/tasks", {"prompt": "Hi\x00"}, "prompt"),
        ("patch", f"/api/v1/build-templates/{template.pk}", {"description": "\x00"}, "description"),
        ("post", f"/api/v1/build-templates/{template.pk}/run", {"input": "in\x00"}, "input"),
    ]
    for method, path, body, where in cases:
        assert_nul_refused(getattr(admin, method)(path, body, format="json"), where)
    agent.refresh_from_db()
    assert agent.system_prompt == "" and not agent.tasks.exists() and not Build.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_a_decision_note_is_a_400(admin):
    requester = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    asked = requester.post(
        "/api/v1/approvals/request",
        {"approval_type": "t", "proposed_action": "a", "risk_level": "low"},
        format="json",
    )
    assert asked.status_code == 201, asked.content
    pk = asked.json()["id"]
    response = admin.post(
        f"/api/v1/approvals/{pk}/decide",
        {"decision": "approved", "notes": "ok\x00"},
        format="json",
    )
    assert_nul_refused(response, "notes")
    assert ApprovalRequest.objects.get(pk=pk).status == "pending"


@pytest.mark.django_db
def test_form_data_with_a_nul_is_a_400(admin):
    response = admin.post("/api/v1/agents", {"name": "n\x00", "role": "r", "model": "chat"})
    assert response.status_code == 400 and "name" in response.json()["error"]["details"]


@pytest.mark.django_db(transaction=True)
def test_a_nul_over_sse_is_a_400(asgi_server):
    key = api_key_issue(role=Role.OPERATOR)
    response = httpx.post(
        asgi_server.url + "/api/streaming/chat",
        content=json.dumps({"messages": [{"role": "user", "content": "a\x00"}]}),
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert_nul_refused(response, "messages.0.content")


@pytest.mark.django_db(transaction=True)
async def test_a_nul_in_a_websocket_build_is_an_error_reply(asgi_server):
    key = await database_sync_to_async(api_key_issue)(role=Role.OPERATOR)
    message = {
        "type": "build",
        "id": "b1",
        "title": "t",
        "steps": [{"name": "a", "model": "chat", "prompt": "x\x00"}],
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(asgi_server.ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps(message))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["code"] == "invalid_request", reply
        assert "steps.0.prompt" in reply["message"], reply
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        assert json.loads(await ws.recv())["type"] == "pong"
    assert not await database_sync_to_async(Build.objects.exists)()
