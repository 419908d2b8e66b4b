"""The state changes every topic shares: a step queued, a step or a build finished. Each is kept
as a ``BuildEvent`` and published on commit: the build's status on ``builds`` and
``build:<id>``, each step's on ``build:<id>``."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils import timezone

from apps.agents.services import agent_activity_add
from apps.core.dispatch import send_on_commit
from apps.core.events import publish_on_commit

from ..models import Build, BuildEvent, BuildStatus, BuildStep, RunStatus


def event_record(
    build: Build, step: BuildStep | None, event: str, detail: str = "", attempt: int | None = None
) -> None:
    """A row of the build's history; ``attempt`` is the step's current one unless given."""
    BuildEvent.objects.create(
        build=build,
        step=step,
        event=event,
        detail=detail[:500],
        status=(step.status if step else build.status),
        attempt=attempt if attempt is not None else step.attempts if step else 0,
        celery_task_id=step.celery_task_id if step else "",
    )


def announce_build(build: Build) -> None:
    data = {"build": build.pk, "title": build.title, "status": build.status, "error": build.error}
    publish_on_commit("builds", "build.updated", data)
    publish_on_commit(f"build:{build.pk}", "build.status", data)


def announce_step(step: BuildStep) -> None:
    publish_on_commit(
        f"build:{step.build_id}",
        "build.step",
        {
            "build": step.build_id,
            "step": step.pk,
            "position": step.position,
            "name": step.name,
            "status": step.status,
            "error": step.error,
            "attempt": step.attempts,
        },
    )


def step_enqueue(step: BuildStep | None) -> None:
    """Queue a step: its task id is stored with it before the message leaves (on commit)."""
    if step is None:
        return
    from ..tasks import run_step

    step.status = RunStatus.QUEUED
    step.celery_task_id = str(uuid.uuid4())
    step.queued_at = timezone.now()
    step.save(update_fields=["status", "celery_task_id", "queued_at"])
    event_record(step.build, step, "queued")
    announce_step(step)
    send_on_commit(
        run_step, args=[step.pk], task_id=step.celery_task_id, queue=settings.BUILD_TASK_QUEUE
    )


def step_finish(step: BuildStep, status: str, error: str) -> None:
    step.status = status
    step.error = error[:500]
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "error", "finished_at"])
    event_record(step.build, step, status, detail=error)
    announce_step(step)
    step_activity_add(step, status, error)


def step_activity_add(step: BuildStep, what: str, error: str) -> None:
    if step.agent is None:
        return
    message = f"Build #{step.build_id}: {step.name}" + (f": {error}" if error else "")
    agent_activity_add(
        agent=step.agent, event=f"step_{what}", message=message[:500], build_step_id=step.pk
    )


def build_finish(build: Build, status: str, error: str) -> None:
    build.status = status
    build.error = error[:500]
    build.finished_at = timezone.now()
    build.save(update_fields=["status", "error", "finished_at"])
    event_record(build, None, status, detail=error)
    announce_build(build)


def build_fail_at(step: BuildStep, message: str) -> None:
    """Fail a step and its build (the steps after it stay pending, for a retry)."""
    step_finish(step, RunStatus.FAILED, message)
    build = Build.objects.select_for_update().get(pk=step.build_id)
    if not build.finished:
        build_finish(build, BuildStatus.FAILED, f"Step {step.name}: {message}")
