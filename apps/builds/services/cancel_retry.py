"""Cancelling a build that has not finished, and retrying a failed or cancelled one from its first
step that did not succeed."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.agents.models import FINISHED

from ..models import Build, BuildStatus, RunStatus
from .transitions import announce_build, build_finish, event_record, step_enqueue, step_finish


def build_cancel(*, build: Build, by: User | None = None) -> Build:
    """Cancel a build that has not finished: the running step stops within half a second (its
    stream is closed, which closes the upstream request) and the rest never start."""
    with transaction.atomic():
        build = Build.objects.select_for_update().get(pk=build.pk)
        if build.finished:
            raise ValidationError(f"The build already {build.status}.")
        for step in build.steps.exclude(status__in=FINISHED):
            step_finish(step, RunStatus.CANCELLED, "Cancelled.")
        build_finish(build, BuildStatus.CANCELLED, "Cancelled" + (f" by {by}." if by else "."))
    return build


def build_retry(*, build: Build, by: User | None = None) -> Build:
    """Run a failed or cancelled build again from its first step that did not succeed."""
    with transaction.atomic():
        build = Build.objects.select_for_update().get(pk=build.pk)
        if build.status not in (BuildStatus.FAILED, BuildStatus.CANCELLED):
            raise ValidationError("Only a failed or cancelled build can be retried.")
        unfinished = list(build.steps.exclude(status=RunStatus.SUCCEEDED).order_by("position"))
        if not unfinished:
            raise ValidationError("Every step of this build succeeded.")
        for step in unfinished:
            step.status = RunStatus.PENDING
            step.error = ""
            step.output = ""
            step.approval = None
            step.finished_at = None
            step.save(update_fields=["status", "error", "output", "approval", "finished_at"])
        build.status = BuildStatus.QUEUED
        build.error = ""
        build.finished_at = None
        build.save(update_fields=["status", "error", "finished_at"])
        event_record(
            build,
            None,
            "retried",
            detail=f"From step {unfinished[0].name}" + (f" by {by}" if by else ""),
        )
        announce_build(build)
        step_enqueue(unfinished[0])
    return build
