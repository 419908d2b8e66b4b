"""Agents pinned to the fake upstream ``a`` (serving public model ``chat``), and waiting for a
task to reach a status in a Celery worker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.agents.models import Agent, AgentTask
from apps.agents.services import agent_create
from apps.providers.models import Provider
from tests.support.waiting import eventually


@pytest.fixture
def agent(two_providers: dict[str, Provider]) -> Agent:
    """An agent whose every call goes to provider ``a`` (no failover to ``b``)."""
    return agent_create(
        name="planner",
        role="planner",
        model="chat",
        provider=two_providers["a"],
        system_prompt="You plan.",
        temperature=0.2,
        max_tokens=256,
    )


@pytest.fixture
def bare_agent(db) -> Agent:
    """An agent saved without the services: no routing config needed, so it serves tests that
    run in a transaction (which other connections, such as the core's, cannot see into)."""
    return Agent.objects.create(name="reviewer", role="reviewer", model="chat")


@pytest.fixture
def task_reaches() -> Callable[..., AgentTask]:
    def wait(task: AgentTask, *statuses: str, timeout: float = 20.0) -> AgentTask:
        def reached() -> bool:
            task.refresh_from_db()
            return task.status in statuses

        eventually(reached, timeout, f"task #{task.pk} {' or '.join(statuses)}", 0.1)
        return task

    return wait
