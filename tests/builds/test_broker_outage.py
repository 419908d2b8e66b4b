"""A build or agent task started while the broker is away: the API still answers and keeps
the work queued, and once a broker answers, the sweep sends the message again and a worker runs
it. A real daphne on a Redis of its own (its broker), which the test kills; the worker that
runs the work afterwards listens on the shared test broker."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from apps.agents.models import AgentTask
from apps.agents.services import agent_tasks_sweep
from apps.builds.models import Build, BuildStatus, RunStatus
from apps.builds.services import builds_sweep
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer, PrivateRedis
from tests.support.waiting import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PLAN = "## Plan\n1. Add a model."


@pytest.fixture
def server_without_broker(server_env):
    private = PrivateRedis()
    server = AsgiServer({**server_env, "REDIS_URL": private.url}, name="daphne-no-broker")
    try:
        server.start()
        private.kill()
        yield server
    finally:
        server.stop()
        private.close()


def post(server: AsgiServer, path: str, payload: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key_issue()}"}
    return httpx.post(f"{server.url}{path}", json=payload, headers=headers, timeout=30)


def queued_long_ago(model, pk: int) -> None:
    model.objects.filter(pk=pk).update(queued_at=timezone.now() - timedelta(hours=1))


def test_a_build_queued_without_a_broker_runs_once_the_sweep_sends_it_again(
    agents, upstream_a, server_without_broker, celery_worker
):
    upstream_a.enqueue({"content": PLAN})
    steps = [{"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"}]

    response = post(server_without_broker, "/api/v1/builds", {"title": "t", "steps": steps})

    assert response.status_code == 201, response.text
    build = Build.objects.get(pk=response.json()["id"])
    step = build.steps.get()
    assert step.status == RunStatus.QUEUED and step.celery_task_id
    assert upstream_a.stats()["requests"] == 0
    assert builds_sweep() == 0  # not queued long enough yet

    queued_long_ago(type(step), step.pk)
    assert builds_sweep() == 1

    build = eventually(
        lambda: Build.objects.filter(pk=build.pk, status=BuildStatus.SUCCEEDED).first(),
        30,
        "the build succeeded",
    )
    step = build.steps.get()
    assert step.output == PLAN and step.attempts == 1
    assert list(build.events.filter(step=step).values_list("event", flat=True)) == [
        "queued",
        "resent",
        "started",
        "succeeded",
    ]
    assert builds_sweep() == 0


def test_an_agent_task_queued_without_a_broker_runs_once_the_sweep_sends_it_again(
    agents, upstream_a, server_without_broker, celery_worker
):
    upstream_a.enqueue({"content": PLAN})
    planner = agents["planner"]

    response = post(server_without_broker, f"/api/v1/agents/{planner.pk}/tasks", {"prompt": "go"})

    assert response.status_code == 202, response.text
    task = AgentTask.objects.get(pk=response.json()["id"])
    assert task.status == RunStatus.QUEUED

    queued_long_ago(AgentTask, task.pk)
    assert agent_tasks_sweep() == 1

    task = eventually(
        lambda: AgentTask.objects.filter(pk=task.pk, status=RunStatus.SUCCEEDED).first(),
        30,
        "the task succeeded",
    )
    assert task.output == PLAN and task.attempts == 1
