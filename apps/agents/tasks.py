from typing import Any

from celery import shared_task
from django.conf import settings

from .services import agent_task_run, agent_tasks_sweep


@shared_task(
    name="agents.run_task",
    acks_late=True,  # a worker lost mid-task gives the message back: the task runs again
    reject_on_worker_lost=True,
    time_limit=settings.BUILD_STEP_TIME_LIMIT + 30,
    soft_time_limit=settings.BUILD_STEP_TIME_LIMIT,
    ignore_result=True,
    bind=True,
)
def run_task(self: Any, task_id: int) -> None:
    """Run one agent task (queued by ``agent_task_create``)."""
    agent_task_run(task_id=task_id, celery_task_id=self.request.id or "")


@shared_task(name="agents.sweep", ignore_result=True)
def sweep() -> int:
    """Fail running tasks whose worker was lost (run by beat every BUILD_SWEEP_INTERVAL)."""
    return agent_tasks_sweep()
