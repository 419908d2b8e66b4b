"""Placeholder until the agents services land (the agents branch replaces this file)."""

from __future__ import annotations

from typing import Any

from .models import Agent, AgentActivity


def agent_activity_add(
    *,
    agent: Agent,
    event: str,
    message: str = "",
    task: Any = None,
    build_step_id: int | None = None,
) -> AgentActivity:
    return AgentActivity.objects.create(
        agent=agent, event=event, message=message, task=task, build_step_id=build_step_id
    )
