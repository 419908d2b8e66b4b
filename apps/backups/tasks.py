from celery import shared_task
from django.conf import settings

from .models import BackupTrigger
from .services import backup_run, backup_run_now


@shared_task(
    name="backups.run",
    ignore_result=True,
    soft_time_limit=settings.CELERY_TASK_TIME_LIMIT,
    time_limit=settings.CELERY_TASK_TIME_LIMIT + 30,
)
def run(backup_id: int) -> None:
    """Run a queued backup (a message delivered twice finds it no longer queued)."""
    backup_run(backup_id=backup_id)


@shared_task(name="backups.run_scheduled", ignore_result=True)
def run_scheduled() -> int:
    """What the schedule (a django-celery-beat periodic task, editable in the admin) runs."""
    return backup_run_now(trigger=BackupTrigger.SCHEDULE).pk
