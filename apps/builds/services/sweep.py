"""The sweep (a beat task): steps whose worker vanished fail with their builds, and steps left
queued while the broker was away are sent again."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from apps.core.dispatch import resend_stale_queued, stale_before

from ..models import BuildStep, RunStatus
from .transitions import build_fail_at, event_record


def builds_sweep() -> int:
    """Fail the steps whose worker vanished (no heartbeat for ``BUILD_STEP_STALE_SECONDS``),
    and their builds, so nothing stays running forever; send again the message of steps queued
    that long and not started (the broker was away when they were queued). Returns how many
    steps it failed or sent again."""
    return _steps_resend() + _steps_fail_stale()


def _steps_resend() -> int:
    from ..tasks import run_step

    def note(step: BuildStep) -> None:
        event_record(step.build, step, "resent", detail="Not started yet: its message sent again.")

    return resend_stale_queued(
        BuildStep,
        run_step,
        status=RunStatus.QUEUED,
        queue=settings.BUILD_TASK_QUEUE,
        on_resent=note,
    )


def _steps_fail_stale() -> int:
    cutoff = stale_before()
    stale = BuildStep.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    failed = 0
    for step_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            step = (
                BuildStep.objects.select_for_update(of=("self",))
                .select_related("build", "agent")
                .get(pk=step_id)
            )
            if (
                step.status == RunStatus.RUNNING
                and step.heartbeat_at
                and step.heartbeat_at < cutoff
            ):
                build_fail_at(step, "Its worker stopped reporting (lost or killed).")
                failed += 1
    return failed
