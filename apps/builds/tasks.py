from celery import shared_task
from django.conf import settings

from .services import build_step_run, builds_sweep


@shared_task(
    name="builds.run_step",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.BUILD_STEP_TIME_LIMIT,
    time_limit=settings.BUILD_STEP_TIME_LIMIT + 30,
    ignore_result=True,
)
def run_step(self, step_id: int) -> None:
    """Run one build step (idempotent: a redelivered message finds the step finished)."""
    build_step_run(step_id=step_id, celery_task_id=self.request.id or "")


@shared_task(name="builds.sweep", ignore_result=True)
def sweep() -> int:
    return builds_sweep()
