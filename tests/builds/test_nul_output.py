"""A model that answers with NUL characters (which PostgreSQL cannot hold in text): the step, its
artifacts and an agent task are stored without them, through a real worker, instead of failing
with a ``DataError`` (or staying ``running`` until the sweep)."""

from __future__ import annotations

import pytest

from apps.accounts.models import Role
from apps.agents.models import RunStatus as TaskStatus
from apps.agents.services import agent_task_create
from apps.artifacts.models import Artifact
from apps.builds.models import BuildStatus, RunStatus
from apps.builds.services import build_create
from tests.builds.test_build_run import finished
from tests.support.factories import user_create
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

WITH_NUL = "Plan:\x00 one\x00\x00 two\n```python app/x.py\nprint(1)\x00\n```"
WITHOUT = "Plan: one two\n```python app/x.py\nprint(1)\n```"


def test_a_step_whose_model_answers_nul_succeeds_without_them(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": WITH_NUL})
    build = build_create(
        title="nul",
        steps=[{"name": "plan", "agent": "reviewer", "prompt": "Plan"}],
        by=user_create(role=Role.OPERATOR),
    )

    build = finished(build)

    assert build.status == BuildStatus.SUCCEEDED, build.error
    step = build.steps.get()
    assert step.status == RunStatus.SUCCEEDED
    # The fake upstream sends one word per token, its whitespace rebuilt between them.
    assert step.output.replace(" ", "").replace("\n", "") == WITHOUT.replace(" ", "").replace(
        "\n", ""
    )
    assert "\x00" not in step.output
    contents = [artifact.content for artifact in Artifact.objects.filter(build=build)]
    assert contents and all("\x00" not in content for content in contents)
    assert any("print(1)" in content for content in contents)


def test_an_agent_task_whose_model_answers_nul_finishes(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": "Hello\x00 there"})
    task = agent_task_create(agent=agents["reviewer"], prompt="Hi")

    def done():
        task.refresh_from_db()
        return task if task.status not in (TaskStatus.QUEUED, TaskStatus.RUNNING) else None

    eventually(done, 20, f"task {task.pk} finished")
    assert task.status == TaskStatus.SUCCEEDED, task.error
    assert task.output == "Hello there"
