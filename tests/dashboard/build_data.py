"""Builds, agents and artifacts for the dashboard's tests of the Build, Artifact browser, Agent
board and Approval queue pages: agents on the fake upstreams, and a finished build made in the
database (its artifacts stored by the artifacts app) for pages that only read."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.utils import timezone

from apps.agents.models import Agent, AgentActivity, AgentTask, RunStatus
from apps.approvals.services import approval_request_create
from apps.artifacts.services import artifacts_store_for_step
from apps.builds.models import Build, BuildStatus, BuildStep
from apps.providers.models import Provider

PLAN = (
    "## Plan\n\nA small app that keeps widgets, in three parts:\n\n"
    "1. Add a `Widget` model with a name and a size.\n"
    "2. Add a view that lists the widgets, newest first.\n"
    "3. Review both before they ship.\n"
)
CODE = (
    "Here is the model.\n\n```python\n# app/models.py\nclass Widget:\n"
    "    name = 'gear'\n\n    def size(self) -> int:\n        return 42\n```\n"
)
REVIEW = (
    "Looks **good**. One change:\n\n```diff\n--- a/app/models.py\n+++ b/app/models.py\n"
    "@@ -1,2 +1,2 @@\n class Widget:\n-    name = 'gear'\n+    name = 'cog'\n```\n"
    "<script>window.pwned = true</script>\n"
)


def two_agents(providers: dict[str, Provider]) -> dict[str, Agent]:
    """A planner and a reviewer on public model ``chat``, which routing sends to upstream ``a``
    (first in priority). Not pinned to it: a build step's worker does not load an agent's
    provider before running (a SynchronousOnlyOperation in ``builds.services.running._run``)."""
    return {
        name: Agent.objects.create(
            name=name, role=name, model="chat", system_prompt=f"You are the {name}."
        )
        for name in ("planner", "reviewer")
    }


def three_steps() -> list[dict]:
    return [
        {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
        {"name": "implement", "agent": "planner", "prompt": "Implement:\n{steps.plan}"},
        {"name": "review", "agent": "reviewer", "prompt": "Review:\n{previous}"},
    ]


def finished_build(
    *, by: User | None = None, agents: dict[str, Agent] | None = None, title: str = "Widgets"
) -> Build:
    """A build that succeeded, as a worker would have left it: three steps with their outputs,
    figures and artifacts (a report per step, a code file, a patch), and the agents' activity."""
    now = timezone.now()
    agents = agents or {
        name: Agent.objects.get_or_create(name=name, defaults={"role": name, "model": "chat"})[0]
        for name in ("planner", "reviewer")
    }
    build = Build.objects.create(
        title=title,
        input="a widget app",
        status=BuildStatus.SUCCEEDED,
        created_by=by,
        started_at=now - timedelta(seconds=9),
        finished_at=now,
        input_tokens=120,
        output_tokens=96,
        cost=Decimal("0.000756"),
    )
    Build.objects.filter(pk=build.pk).update(created_at=now - timedelta(seconds=10))
    outputs = [
        ("plan", "planner", PLAN),
        ("implement", "planner", CODE),
        ("review", "reviewer", REVIEW),
    ]
    for position, (name, agent, output) in enumerate(outputs, start=1):
        step = BuildStep.objects.create(
            build=build,
            position=position,
            name=name,
            agent=agents[agent],
            prompt_template=three_steps()[position - 1]["prompt"],
            status=RunStatus.SUCCEEDED,
            output=output,
            attempts=1,
            input_tokens=40,
            output_tokens=32,
            cost=Decimal("0.000252"),
            started_at=now - timedelta(seconds=10 - 3 * position),
            finished_at=now - timedelta(seconds=8 - 3 * position),
        )
        artifacts_store_for_step(step=step, text=output)
        AgentActivity.objects.create(
            agent=agents[agent],
            event="step_succeeded",
            message=f"Build #{build.pk}: {name}",
            build_step_id=step.pk,
        )
    AgentTask.objects.create(
        agent=agents["planner"],
        prompt="Say hello",
        status=RunStatus.SUCCEEDED,
        output="Hello!",
        input_tokens=3,
        output_tokens=2,
        cost=Decimal("0.00002"),
        created_by=by,
        queued_at=now,
        started_at=now,
        finished_at=now,
    )
    return build


def waiting_build(*, by: User | None = None) -> Build:
    """A build whose first step succeeded and whose second waits for a person's approval, as
    the worker leaves it (made in the database: no worker runs it)."""
    build = finished_build(by=by, title="Gated widgets")
    implement = build.steps.get(name="implement")
    build.steps.filter(position__gt=implement.position).update(
        status=RunStatus.PENDING,
        output="",
        started_at=None,
        finished_at=None,
        input_tokens=0,
        output_tokens=0,
        cost=0,
    )
    implement.artifacts.all().delete()
    build.artifacts.filter(step__position__gt=implement.position).delete()
    implement.output, implement.status = "", RunStatus.AWAITING_APPROVAL
    implement.requires_approval, implement.started_at, implement.finished_at = True, None, None
    implement.input_tokens = implement.output_tokens = 0
    implement.cost = Decimal(0)
    implement.approval = approval_request_create(
        kind="build_step",
        action=f"Run step 2 (implement) of build #{build.pk}: {build.title}",
        reference=f"build_step:{implement.pk}",
        requested_by=by,
        context={"build": build.pk, "step": implement.pk, "title": build.title},
    )
    implement.save()
    Build.objects.filter(pk=build.pk).update(
        status=BuildStatus.AWAITING_APPROVAL,
        finished_at=None,
        input_tokens=40,
        output_tokens=32,
        cost=Decimal("0.000252"),
    )
    build.refresh_from_db()
    return build
