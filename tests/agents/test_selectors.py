"""An agent's status and performance, from its tasks, its build steps and its call records."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.agents.models import Agent, AgentTask, RunStatus
from apps.agents.selectors import agent_current_task, agent_performance, agent_status
from apps.agents.services import agent_task_create
from apps.builds.models import Build, BuildStep
from apps.core.aggregates import percentile
from apps.providers.models import CallStatus, EntryPoint, LlmCall


def task(agent: Agent, status: str, finished_minutes_ago: int | None = None) -> AgentTask:
    finished = (
        None
        if finished_minutes_ago is None
        else timezone.now() - timedelta(minutes=finished_minutes_ago)
    )
    return AgentTask.objects.create(
        agent=agent, prompt="p", status=status, finished_at=finished, started_at=timezone.now()
    )


def step(agent: Agent, status: str, finished_minutes_ago: int | None = None) -> BuildStep:
    build = Build.objects.create(title="b")
    finished = (
        None
        if finished_minutes_ago is None
        else timezone.now() - timedelta(minutes=finished_minutes_ago)
    )
    return BuildStep.objects.create(
        build=build,
        position=0,
        name="s",
        agent=agent,
        prompt_template="x",
        status=status,
        finished_at=finished,
    )


def test_a_new_agent_is_idle(bare_agent):
    assert agent_status(bare_agent) == "idle" and agent_current_task(bare_agent) is None


def test_a_running_task_makes_it_busy_and_is_its_current_task(bare_agent):
    task(bare_agent, RunStatus.SUCCEEDED, 5)
    running = task(bare_agent, RunStatus.RUNNING)
    assert agent_status(bare_agent) == "busy"
    assert agent_current_task(bare_agent) == running


def test_a_running_build_step_makes_it_busy(bare_agent):
    step(bare_agent, RunStatus.RUNNING)
    assert agent_status(bare_agent) == "busy" and agent_current_task(bare_agent) is None


def test_its_latest_finished_work_failing_says_error(bare_agent):
    task(bare_agent, RunStatus.FAILED, 10)
    assert agent_status(bare_agent) == "error"
    task(bare_agent, RunStatus.SUCCEEDED, 5)
    assert agent_status(bare_agent) == "idle"
    step(bare_agent, RunStatus.FAILED, 1)  # a build step is work of the agent's too
    assert agent_status(bare_agent) == "error"
    task(bare_agent, RunStatus.CANCELLED, 0)  # a cancel says nothing of its health
    assert agent_status(bare_agent) == "error"
    task(bare_agent, RunStatus.QUEUED)  # queued work is not running work
    assert agent_status(bare_agent) == "error"


def call(agent_id: int | None, status: str, latency_ms: float, **fields) -> LlmCall:
    return LlmCall.objects.create(
        created_at=timezone.now(),
        entry_point=EntryPoint.AGENT,
        status=status,
        latency_ms=latency_ms,
        agent_id=agent_id,
        **fields,
    )


def test_performance_is_what_its_call_records_and_tasks_say(bare_agent):
    latencies = [120.0, 80.0, 300.0, 95.5, 210.0, 60.0, 1000.0, 150.0, 45.0, 500.0, 75.0]
    for i, latency in enumerate(latencies):
        call(
            bare_agent.pk,
            CallStatus.SUCCESS,
            latency,
            input_tokens=10 + i,
            output_tokens=5,
            cost=Decimal("0.00012345"),
        )
    call(bare_agent.pk, CallStatus.ERROR, 9999.0, input_tokens=7, cost=Decimal("0.00000001"))
    call(bare_agent.pk, CallStatus.RUNNING, 0.0, input_tokens=1000)  # still streaming
    call(None, CallStatus.SUCCESS, 5.0, input_tokens=1000, cost=Decimal(1))  # not the agent's
    for status in (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED):
        task(bare_agent, status, 1)
    task(bare_agent, RunStatus.FAILED, 1)
    task(bare_agent, RunStatus.CANCELLED, 1)
    task(bare_agent, RunStatus.RUNNING)

    figures = agent_performance(bare_agent)

    ended = LlmCall.objects.filter(agent_id=bare_agent.pk).exclude(status=CallStatus.RUNNING)
    assert figures["calls"] == ended.count() == 12
    assert figures["input_tokens"] == sum(c.input_tokens for c in ended) == 7 + sum(range(10, 21))
    assert figures["output_tokens"] == 55
    assert figures["cost"] == sum(c.cost for c in ended) == Decimal("0.00135796")
    assert figures["avg_latency_ms"] == pytest.approx(sum(latencies) / len(latencies), abs=0.01)
    # percentile_cont(0.95) of the 11 successful latencies: between the 10th and 11th
    ranked = sorted(latencies)
    expected_p95 = ranked[9] + (ranked[10] - ranked[9]) * 0.5
    assert figures["p95_latency_ms"] == pytest.approx(expected_p95, abs=0.01) == 750.0
    assert figures["tasks_done"] == 4 and figures["tasks_succeeded"] == 3
    assert figures["tasks_failed"] == 1 and figures["tasks_cancelled"] == 1
    assert figures["success_rate"] == 0.75


def test_performance_of_an_agent_without_work(bare_agent):
    figures = agent_performance(bare_agent)
    assert figures["calls"] == figures["tasks_done"] == 0
    assert figures["success_rate"] is None and figures["p95_latency_ms"] is None
    assert figures["avg_latency_ms"] is None and figures["cost"] == 0


def test_the_python_percentile_agrees_with_the_database(bare_agent):
    """Where the database is PostgreSQL the percentile is its own; elsewhere it is computed in
    Python the same way."""
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    assert percentile(values, 0.95) == pytest.approx(7.75)
    assert percentile([5.0], 0.95) == 5.0 and percentile([], 0.95) is None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY v) FROM unnest(%s) AS v",
                [values],
            )
            assert cursor.fetchone()[0] == pytest.approx(percentile(values, 0.95))


@pytest.mark.django_db(transaction=True)
def test_performance_matches_the_records_of_tasks_run_by_a_worker(
    agent, celery_worker, task_reaches, recorded_calls
):
    tasks = [agent_task_create(agent=agent, prompt=f"Plan trip {i}") for i in range(3)]
    for queued in tasks:
        task_reaches(queued, RunStatus.SUCCEEDED, RunStatus.FAILED)
    calls = recorded_calls(3)
    figures = agent_performance(agent)
    assert figures["tasks_done"] == figures["tasks_succeeded"] == figures["calls"] == 3
    assert figures["cost"] == sum(c.cost for c in calls) == sum(t.cost for t in tasks)
    assert figures["output_tokens"] == sum(c.output_tokens for c in calls) == 24
    assert figures["input_tokens"] == sum(c.input_tokens for c in calls)
    latencies = [c.latency_ms for c in calls]
    assert figures["avg_latency_ms"] == pytest.approx(sum(latencies) / 3, abs=0.01)
    assert figures["p95_latency_ms"] == pytest.approx(percentile(latencies, 0.95), abs=0.01)
