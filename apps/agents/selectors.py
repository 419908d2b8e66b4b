"""Reads of agents, their tasks, activity, status and performance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404

from apps.providers.models import CallStatus, LlmCall
from apps.providers.selectors import call_latency_percentiles

from .models import Agent, AgentActivity, AgentTask, RunStatus

IDLE, BUSY, ERROR = "idle", "busy", "error"


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.select_related("provider")


def agent_get(*, pk: int) -> Agent:
    return get_object_or_404(agent_list(), pk=pk)


def agent_task_list(*, agent: Agent | None = None) -> QuerySet[AgentTask]:
    tasks = AgentTask.objects.select_related("agent", "created_by")
    return tasks.filter(agent=agent) if agent is not None else tasks


def agent_task_get(*, pk: int) -> AgentTask:
    return get_object_or_404(agent_task_list(), pk=pk)


def agent_activity_list(*, agent: Agent) -> QuerySet[AgentActivity]:
    return AgentActivity.objects.filter(agent=agent)


def agent_current_task(agent: Agent) -> AgentTask | None:
    """The task the agent is running (the latest started, should there be several)."""
    running = AgentTask.objects.filter(agent=agent, status=RunStatus.RUNNING)
    return running.order_by(F("started_at").desc(nulls_last=True), "-pk").first()


def agent_status(agent: Agent) -> str:
    """``busy`` while it runs a task or a build step, ``error`` when its latest finished task or
    step failed, else ``idle``. The steps are read through their relation to agents
    (``build_steps``), not by importing the builds app."""
    steps = agent.build_steps.all()
    if (
        AgentTask.objects.filter(agent=agent, status=RunStatus.RUNNING).exists()
        or steps.filter(status=RunStatus.RUNNING).exists()
    ):
        return BUSY
    latest = [
        row
        for row in (
            _latest_finished(AgentTask.objects.filter(agent=agent)),
            _latest_finished(steps),
        )
        if row is not None
    ]
    if latest and max(latest, key=lambda row: row["finished_at"])["status"] == RunStatus.FAILED:
        return ERROR
    return IDLE


def _latest_finished(runs: QuerySet[Any]) -> dict[str, Any] | None:
    """The latest finished run of ``runs``; cancelled runs say nothing of the agent's health."""
    ended = runs.filter(
        status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED], finished_at__isnull=False
    )
    return ended.order_by("-finished_at", "-pk").values("status", "finished_at").first()


def agent_performance(agent: Agent) -> dict[str, Any]:
    """What the agent did and what it cost.

    Tasks: ``tasks_done`` (succeeded or failed; cancelled ones are not done), how many
    succeeded, and ``success_rate`` among those done (None before any). Build steps the agent
    ran: ``steps_done`` and ``steps_succeeded``, counted the same way (a build's work is not a
    task, yet it is the agent's work). Calls: every LLM call
    record attributed to the agent (its tasks' and its build steps'), ended ones only:
    ``calls``, tokens in and out, ``cost``, and the average and 95th percentile latency (ms) of
    the successful ones (None before any), computed as every page computes it
    (``call_latency_percentiles``).
    """
    tasks = AgentTask.objects.filter(agent=agent).aggregate(
        done=Count("pk", filter=Q(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])),
        succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=RunStatus.FAILED)),
        cancelled=Count("pk", filter=Q(status=RunStatus.CANCELLED)),
    )
    ended = [RunStatus.SUCCEEDED, RunStatus.FAILED]
    steps = agent.build_steps.aggregate(
        done=Count("pk", filter=Q(status__in=ended)),
        succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
    )
    calls = LlmCall.objects.filter(agent_id=agent.pk).exclude(status=CallStatus.RUNNING)
    succeeded = Q(status=CallStatus.SUCCESS)
    aggregates: dict[str, Any] = {
        "calls": Count("pk"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
        "avg_latency_ms": Avg("latency_ms", filter=succeeded),
    }
    totals = calls.order_by().aggregate(**aggregates)
    ((totals["p95_latency_ms"],),) = call_latency_percentiles(
        calls=calls, groups={"all": Q()}, fractions=(0.95,)
    ).values()
    done = tasks["done"]
    return {
        "tasks_done": done,
        "tasks_succeeded": tasks["succeeded"],
        "tasks_failed": tasks["failed"],
        "tasks_cancelled": tasks["cancelled"],
        "steps_done": steps["done"],
        "steps_succeeded": steps["succeeded"],
        "success_rate": tasks["succeeded"] / done if done else None,
        "calls": totals["calls"] or 0,
        "input_tokens": totals["input_tokens"] or 0,
        "output_tokens": totals["output_tokens"] or 0,
        "cost": totals["cost"] or Decimal(0),
        "avg_latency_ms": _ms(totals["avg_latency_ms"]),
        "p95_latency_ms": _ms(totals["p95_latency_ms"]),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
