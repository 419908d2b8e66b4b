"""The admin of agents and agent tasks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.agents.models import Agent, AgentTask, RunStatus
from apps.agents.services import agent_activity_add
from apps.providers.models import CallStatus, EntryPoint, LlmCall
from tests.support.factories import user_create


def logged_in(role: Role) -> Client:
    client = Client()
    client.force_login(user_create(role=role))
    return client


def agent_form(**overrides) -> dict:
    return {"name": "writer", "role": "writer", "model": "chat", "enabled": "on", **overrides}


@pytest.mark.django_db
def test_list_and_change_pages_show_status_figures_and_activity(admin_client, bare_agent):
    task = AgentTask.objects.create(
        agent=bare_agent, prompt="p", status=RunStatus.SUCCEEDED, finished_at=timezone.now()
    )
    agent_activity_add(agent=bare_agent, event="succeeded", message="all good", task=task)
    LlmCall.objects.create(
        created_at=timezone.now(),
        entry_point=EntryPoint.AGENT,
        status=CallStatus.SUCCESS,
        latency_ms=42.0,
        agent_id=bare_agent.pk,
        cost=Decimal("0.1234"),
        input_tokens=3,
    )
    listing = admin_client.get("/admin/agents/agent/").content.decode()
    assert "reviewer" in listing and "$0.1234" in listing and "idle" in listing
    page = admin_client.get(f"/admin/agents/agent/{bare_agent.pk}/change/").content.decode()
    assert "1 tasks done" in page and "p95 42.0 ms" in page
    assert "all good" in page and f"task #{task.pk}" in page
    tasks = admin_client.get("/admin/agents/agenttask/").content.decode()
    assert "reviewer" in tasks


@pytest.mark.django_db(transaction=True)  # the routing config is read by the core
def test_the_form_refuses_a_model_no_provider_serves(admin_client, two_providers):
    refused = admin_client.post("/admin/agents/agent/add/", agent_form(model="nope"))
    assert refused.status_code == 200 and "No enabled deployment serves" in refused.content.decode()
    assert not Agent.objects.exists()
    saved = admin_client.post("/admin/agents/agent/add/", agent_form(temperature="0.5"))
    assert saved.status_code == 302
    agent = Agent.objects.get()
    assert (agent.model, agent.temperature) == ("chat", 0.5)
    out_of_range = admin_client.post(
        f"/admin/agents/agent/{agent.pk}/change/", agent_form(temperature="7")
    )
    assert out_of_range.status_code == 200
    agent.refresh_from_db()
    assert agent.temperature == 0.5


@pytest.mark.django_db
def test_an_operator_cancels_tasks_and_a_viewer_may_not(bare_agent):
    queued = AgentTask.objects.create(agent=bare_agent, prompt="p", status=RunStatus.QUEUED)
    done = AgentTask.objects.create(agent=bare_agent, prompt="p", status=RunStatus.SUCCEEDED)
    action = {"action": "cancel", "_selected_action": [queued.pk, done.pk]}

    viewer = logged_in(Role.VIEWER)
    assert viewer.get("/admin/agents/agenttask/").status_code == 200
    viewer.post("/admin/agents/agenttask/", action)
    queued.refresh_from_db()
    assert queued.status == RunStatus.QUEUED

    operator = logged_in(Role.OPERATOR)
    response = operator.post("/admin/agents/agenttask/", action, follow=True)
    assert response.status_code == 200
    queued.refresh_from_db()
    done.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED and done.status == RunStatus.SUCCEEDED
    text = response.content.decode()
    assert "Cancelled 1 task(s)." in text and "already finished" in text


@pytest.mark.django_db
def test_enable_and_disable_actions(admin_client, bare_agent):
    admin_client.post(
        "/admin/agents/agent/", {"action": "disable", "_selected_action": [bare_agent.pk]}
    )
    bare_agent.refresh_from_db()
    assert bare_agent.enabled is False
    admin_client.post(
        "/admin/agents/agent/", {"action": "enable", "_selected_action": [bare_agent.pk]}
    )
    bare_agent.refresh_from_db()
    assert bare_agent.enabled is True
