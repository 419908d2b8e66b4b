"""Agent tasks on a real Celery worker against the fake upstream: success, failure, cancel,
redelivery, the sweep."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import workspace_create
from apps.agents.models import AgentTask, RunStatus
from apps.agents.services import (
    AgentTaskFinishedError,
    agent_task_cancel,
    agent_task_create,
    agent_task_run,
    agent_tasks_sweep,
)
from apps.agents.tasks import run_task
from apps.providers.models import CallStatus, EntryPoint, LlmCall
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)


def events(task: AgentTask) -> list[str]:
    return list(task.activity.order_by("created_at", "id").values_list("event", flat=True))


def test_a_task_runs_to_success_with_its_call_record_figures(
    agent, celery_worker, task_reaches, recorded_calls
):
    user = user_create(role=Role.OPERATOR)
    workspace = workspace_create(name="planners", members=[user])
    task = agent_task_create(agent=agent, prompt="Plan a trip", by=user)
    assert task.status == RunStatus.QUEUED and task.queued_at and task.celery_task_id
    task_reaches(task, RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert task.status == RunStatus.SUCCEEDED, task.error
    (call,) = recorded_calls(1)
    assert task.output == "Hello from a lorem ipsum dolor sit amet"
    assert (task.input_tokens, task.output_tokens) == (call.input_tokens, call.output_tokens)
    assert task.output_tokens == 8 and task.cost == call.cost > 0
    assert task.call_id == call.id and call.status == CallStatus.SUCCESS
    # The request hook attributed the call to the agent; the caller is who queued the task.
    assert call.agent_id == agent.pk and call.build_id is None
    assert call.entry_point == EntryPoint.AGENT and call.user_id == user.pk
    assert call.workspace_id == workspace.pk  # the caller's, as on every entry point
    assert call.provider_name == "a" and call.requested_model == "chat"
    assert task.attempts == 1 and task.started_at and task.finished_at and task.heartbeat_at
    assert events(task) == ["queued", "started", "succeeded"]


def test_the_agents_model_settings_reach_the_provider(
    agent, celery_worker, task_reaches, upstream_a
):
    task = agent_task_create(agent=agent, prompt="Plan a trip")
    task_reaches(task, RunStatus.SUCCEEDED, RunStatus.FAILED)
    body = upstream_a.stats()["last_request"]["body"]
    assert body["messages"] == [
        {"role": "system", "content": "You plan."},
        {"role": "user", "content": "Plan a trip"},
    ]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 256 and body["stream"] is True


def test_an_upstream_failure_fails_the_task_with_its_message(
    agent, celery_worker, task_reaches, recorded_calls, upstream_a
):
    upstream_a.configure(status=400, error_message="the prompt is not allowed here")
    task = agent_task_create(agent=agent, prompt="Plan a trip")
    task_reaches(task, RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert task.status == RunStatus.FAILED
    assert "the prompt is not allowed here" in task.error
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.ERROR and task.call_id == call.id
    assert call.agent_id == agent.pk and task.output == ""
    assert events(task) == ["queued", "started", "failed"]
    assert task.activity.get(event="failed").message == task.error


def test_cancel_during_a_slow_stream_stops_it_and_closes_the_upstream(
    agent, celery_worker, task_reaches, recorded_calls, upstream_a
):
    upstream_a.configure(chunk_delay_ms=100, tokens=600)  # a minute: cancel wins under any load
    task = agent_task_create(agent=agent, prompt="Plan a long trip")
    task_reaches(task, RunStatus.RUNNING)
    upstream_a.wait_for(lambda stats: stats["streams_started"] == 1, timeout=10)
    cancelled_at = time.monotonic()
    agent_task_cancel(task=task, by=None)
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1, timeout=10)
    assert time.monotonic() - cancelled_at < 5
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED and call.agent_id == agent.pk
    assert upstream_a.stats()["streams_completed"] == 0
    time.sleep(1)  # the worker had its chance to write over the cancel; it must not have
    task.refresh_from_db()
    assert task.status == RunStatus.CANCELLED and task.output == "" and task.error == ""
    assert events(task) == ["queued", "started", "cancelled"]
    with pytest.raises(AgentTaskFinishedError):
        agent_task_cancel(task=task, by=None)


def test_a_redelivered_message_never_runs_a_finished_task_again(
    agent, celery_worker, task_reaches, recorded_calls, upstream_a
):
    task = agent_task_create(agent=agent, prompt="Plan a trip")
    task_reaches(task, RunStatus.SUCCEEDED, RunStatus.FAILED)
    recorded_calls(1)
    before = AgentTask.objects.values().get(pk=task.pk)
    activity = events(task)

    agent_task_run(task_id=task.pk, celery_task_id=task.celery_task_id)  # as the worker would
    run_task.apply_async(args=[task.pk], task_id=task.celery_task_id)  # through the broker
    time.sleep(1.5)

    assert AgentTask.objects.values().get(pk=task.pk) == before
    assert events(task) == activity
    assert upstream_a.stats()["requests"] == 1
    agent_task_run(task_id=10**9, celery_task_id="gone")  # a deleted task: nothing to do


def test_a_task_found_running_is_retried_as_a_new_attempt(
    agent, celery_worker, task_reaches, recorded_calls
):
    """The worker that started it died before acknowledging (its heartbeat went stale); the
    broker delivers it again."""
    silent_since = timezone.now() - timedelta(seconds=settings.BUILD_STEP_STALE_SECONDS + 1)
    task = AgentTask.objects.create(
        agent=agent,
        prompt="Plan a trip",
        status=RunStatus.RUNNING,
        attempts=1,
        celery_task_id=str(uuid.uuid4()),
        queued_at=silent_since,
        started_at=silent_since,
        heartbeat_at=silent_since,
    )
    run_task.apply_async(args=[task.pk], task_id=task.celery_task_id)
    task_reaches(task, RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert task.status == RunStatus.SUCCEEDED and task.attempts == 2
    assert task.started_at == silent_since  # a task's clock is its first attempt's
    retried = task.activity.get(event="retried")
    assert "Attempt 2" in retried.message
    assert events(task) == ["retried", "succeeded"]
    recorded_calls(1)


def test_the_sweep_fails_running_tasks_whose_worker_went_silent(agent):
    long_ago = timezone.now() - timedelta(seconds=3600)

    def make(status: str, heartbeat_at=None) -> AgentTask:
        return AgentTask.objects.create(
            agent=agent,
            prompt="p",
            status=status,
            attempts=1 if heartbeat_at else 0,
            queued_at=long_ago,
            heartbeat_at=heartbeat_at,
        )

    stale = make(RunStatus.RUNNING, long_ago)
    alive = make(RunStatus.RUNNING, timezone.now())
    waiting = make(RunStatus.QUEUED)
    assert agent_tasks_sweep() == 2  # the stale one failed, the waiting one's message sent again
    for task in (stale, alive, waiting):
        task.refresh_from_db()
    assert stale.status == RunStatus.FAILED and stale.error.startswith("Worker lost")
    assert stale.finished_at is not None and events(stale) == ["failed"]
    assert alive.status == RunStatus.RUNNING and waiting.status == RunStatus.QUEUED
    assert waiting.queued_at > long_ago  # sent again now: not again before it is stale again
    assert agent_tasks_sweep() == 0


def test_a_worker_does_not_overwrite_a_task_the_sweep_failed(
    agent, celery_worker, task_reaches, recorded_calls, upstream_a
):
    """The sweep judged the worker lost: the worker, alive after all, stops and keeps its hands
    off the row (a finish applies only to the attempt still running)."""
    upstream_a.configure(chunk_delay_ms=100, tokens=600)
    task = agent_task_create(agent=agent, prompt="Plan a long trip")
    task_reaches(task, RunStatus.RUNNING)
    upstream_a.wait_for(lambda stats: stats["streams_started"] == 1, timeout=10)
    with override_settings(BUILD_STEP_STALE_SECONDS=-60):  # every running task is stale
        assert agent_tasks_sweep() == 1
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1, timeout=10)
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED
    time.sleep(1)
    task.refresh_from_db()
    assert task.status == RunStatus.FAILED and task.error.startswith("Worker lost")
    assert events(task) == ["queued", "started", "failed"]


def test_tasks_are_refused_for_a_disabled_agent_or_an_empty_prompt(agent):
    with pytest.raises(ValidationError) as empty:
        agent_task_create(agent=agent, prompt="  \n")
    assert "prompt" in empty.value.message_dict
    agent.enabled = False
    agent.save()
    with pytest.raises(ValidationError) as disabled:
        agent_task_create(agent=agent, prompt="Plan")
    assert "agent" in disabled.value.message_dict
    assert not AgentTask.objects.exists()


def test_call_records_of_other_entry_points_carry_no_agent(agent, gateway, recorded_calls):
    """The hook attributes only calls made inside a run."""
    gateway.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    (call,) = recorded_calls(1)
    assert call.agent_id is None and not LlmCall.objects.filter(agent_id=agent.pk).exists()


def test_a_task_over_its_time_limit_fails_and_closes_the_upstream(
    agent, recorded_calls, upstream_a
):
    """Run here, in the test process, as a worker would: the limit is this process's setting."""
    upstream_a.configure(chunk_delay_ms=100, tokens=600)
    task = AgentTask.objects.create(
        agent=agent, prompt="Plan a long trip", queued_at=timezone.now(), celery_task_id="t1"
    )
    started = time.monotonic()
    with override_settings(BUILD_STEP_TIME_LIMIT=1):
        agent_task_run(task_id=task.pk, celery_task_id="t1")
    assert time.monotonic() - started < 5
    task.refresh_from_db()
    assert task.status == RunStatus.FAILED and task.error == "Time limit of 1 s reached."
    upstream_a.wait_for(lambda stats: stats["client_disconnects"] == 1, timeout=10)
    (call,) = recorded_calls(1)
    assert call.status == CallStatus.CANCELLED and call.agent_id == agent.pk
    assert events(task) == ["started", "failed"]
