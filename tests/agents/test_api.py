"""The REST API of agents and their tasks: who may do what, bad input, the shapes."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent, AgentActivity, AgentTask, RunStatus
from apps.agents.services import agent_activity_add
from apps.providers.models import Provider
from tests.support.factories import api_key_issue, bearer
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)  # the routing config is read by the core


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def payload(**overrides) -> dict:
    return {"name": "coder", "role": "coder", "model": "chat", **overrides}


def error_fields(response) -> set[str]:
    body = response.json()
    assert body["error"]["code"] == "validation_error", body
    return set(body["error"]["details"])


def test_operator_creates_reads_updates_and_deletes_an_agent(two_providers):
    api = client()
    created = api.post(
        "/api/v1/agents",
        payload(
            provider=two_providers["b"].pk,
            temperature=1.5,
            max_tokens=100,
            system_prompt="Write code.",
        ),
        format="json",
    )
    assert created.status_code == 201, created.json()
    agent = created.json()
    assert agent["provider_name"] == "b" and agent["temperature"] == 1.5
    assert agent["status"] == "idle" and agent["current_task"] is None
    assert agent["performance"]["tasks_done"] == 0 and agent["performance"]["cost"] == "0.00000000"

    listed = api.get("/api/v1/agents").json()
    assert [a["name"] for a in listed] == ["coder"]
    updated = api.patch(f"/api/v1/agents/{agent['id']}", {"enabled": False}, format="json")
    assert updated.status_code == 200 and updated.json()["enabled"] is False
    assert api.get("/api/v1/agents?enabled=true").json() == []

    assert api.delete(f"/api/v1/agents/{agent['id']}").status_code == 204
    assert not Agent.objects.exists()
    assert api.get(f"/api/v1/agents/{agent['id']}").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2_000_000}, "max_tokens"),
        ({"model": "no-such-model"}, "model"),
        ({"name": ""}, "name"),
        ({"role": "x" * 101}, "role"),
        ({"provider": 999_999}, "provider"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_agent_input_is_a_400(two_providers, overrides, field):
    response = client().post("/api/v1/agents", payload(**overrides), format="json")
    assert response.status_code == 400
    assert field in error_fields(response)
    assert not Agent.objects.exists()


def test_the_model_must_be_served_by_the_pinned_provider(two_providers, upstream_a):
    other = Provider.objects.create(name="c", base_url=upstream_a.base_url)  # serves nothing
    api = client()
    response = api.post("/api/v1/agents", payload(provider=other.pk), format="json")
    assert response.status_code == 400 and "model" in error_fields(response)
    response = api.post("/api/v1/agents", payload(model="", provider=other.pk), format="json")
    assert response.status_code == 400 and error_fields(response) & {"model", "provider"}
    Provider.objects.filter(pk=two_providers["a"].pk).update(enabled=False)
    response = api.post("/api/v1/agents", payload(provider=two_providers["a"].pk), format="json")
    assert response.status_code == 400 and "provider" in error_fields(response)


def test_a_blank_model_uses_the_routing_default(two_providers):
    api = client()
    response = api.post("/api/v1/agents", payload(model=""), format="json")
    assert response.status_code == 400 and "model" in error_fields(response)
    routing(default_model="chat")
    response = api.post("/api/v1/agents", payload(model=""), format="json")
    assert response.status_code == 201, response.json()


def test_names_are_unique(two_providers):
    api = client()
    assert api.post("/api/v1/agents", payload(), format="json").status_code == 201
    duplicate = api.post("/api/v1/agents", payload(), format="json")
    assert duplicate.status_code == 400 and "name" in error_fields(duplicate)
    other = api.post("/api/v1/agents", payload(name="other"), format="json").json()
    renamed = api.patch(f"/api/v1/agents/{other['id']}", {"name": "coder"}, format="json")
    assert renamed.status_code == 400 and "name" in error_fields(renamed)


def test_a_viewer_reads_everything_and_writes_nothing(agent):
    task = AgentTask.objects.create(agent=agent, prompt="p", status=RunStatus.QUEUED)
    agent_activity_add(agent=agent, event="queued", task=task)
    viewer = client(Role.VIEWER)
    for path in (
        "/api/v1/agents",
        f"/api/v1/agents/{agent.pk}",
        f"/api/v1/agents/{agent.pk}/activity",
        f"/api/v1/agents/{agent.pk}/tasks",
        f"/api/v1/agent-tasks/{task.pk}",
    ):
        assert viewer.get(path).status_code == 200, path
    for method, path, body in (
        ("post", "/api/v1/agents", payload(name="x")),
        ("patch", f"/api/v1/agents/{agent.pk}", {"role": "x"}),
        ("delete", f"/api/v1/agents/{agent.pk}", None),
        ("post", f"/api/v1/agents/{agent.pk}/tasks", {"prompt": "go"}),
        ("post", f"/api/v1/agent-tasks/{task.pk}/cancel", None),
    ):
        response = getattr(viewer, method)(path, body, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"
    assert APIClient().get("/api/v1/agents").status_code == 401
    agent.refresh_from_db()
    task.refresh_from_db()
    assert agent.role == "planner" and task.status == RunStatus.QUEUED
    assert AgentTask.objects.count() == 1


@pytest.mark.django_db  # in a transaction never committed: the task is never sent to a worker
def test_operator_queues_a_task_and_cancels_it(bare_agent):
    agent = bare_agent
    api = client()
    response = api.post(f"/api/v1/agents/{agent.pk}/tasks", {"prompt": "Plan"}, format="json")
    assert response.status_code == 202, response.json()
    queued = response.json()
    assert queued["status"] == "queued" and queued["agent"] == agent.pk
    assert queued["agent_name"] == "reviewer" and queued["celery_task_id"]
    assert queued["created_by"] is not None

    listed = api.get(f"/api/v1/agents/{agent.pk}/tasks").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == queued["id"]
    assert api.get(f"/api/v1/agents/{agent.pk}/tasks?status=succeeded").json()["count"] == 0

    cancelled = api.post(f"/api/v1/agent-tasks/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/agent-tasks/{queued['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    activity = api.get(f"/api/v1/agents/{agent.pk}/activity").json()
    assert [a["event"] for a in activity["results"]] == ["cancelled", "queued"]
    assert activity["results"][0]["task"] == queued["id"]


@pytest.mark.django_db
def test_bad_task_input_is_a_400(bare_agent):
    agent = bare_agent
    api = client()
    for body in ({}, {"prompt": ""}, {"prompt": "   "}, {"prompt": ["a"]}):
        response = api.post(f"/api/v1/agents/{agent.pk}/tasks", body, format="json")
        assert response.status_code == 400, body
        assert error_fields(response) == {"prompt"}
    Agent.objects.filter(pk=agent.pk).update(enabled=False)
    response = api.post(f"/api/v1/agents/{agent.pk}/tasks", {"prompt": "go"}, format="json")
    assert response.status_code == 400 and error_fields(response) == {"agent"}
    assert api.post("/api/v1/agents/999999/tasks", {"prompt": "go"}).status_code == 404
    assert api.get("/api/v1/agent-tasks/999999").status_code == 404
    assert not AgentTask.objects.exists()


@pytest.mark.django_db
def test_activity_is_paginated_newest_first(bare_agent):
    agent = bare_agent
    for i in range(5):
        agent_activity_add(agent=agent, event="note", message=f"entry {i}", build_step_id=i)
    page = client(Role.VIEWER).get(f"/api/v1/agents/{agent.pk}/activity?limit=2&offset=1")
    body = page.json()
    assert body["count"] == 5 and [e["message"] for e in body["results"]] == ["entry 3", "entry 2"]
    assert body["results"][0]["build_step_id"] == 3 and body["next"]
    assert AgentActivity.objects.count() == 5


@pytest.mark.django_db
def test_the_api_is_in_the_openapi_schema():
    schema = APIClient().get("/api/schema/", headers={"Accept": "application/json"}).json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/agents"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/agents/{id}"])
    assert "202" in paths["/api/v1/agents/{id}/tasks"]["post"]["responses"]
    assert "post" in paths["/api/v1/agent-tasks/{id}/cancel"]
    assert "get" in paths["/api/v1/agents/{id}/activity"]
    agent_fields = schema["components"]["schemas"]["AgentOutput"]["properties"]
    assert {"status", "current_task", "performance"} <= set(agent_fields)
