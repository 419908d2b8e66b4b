from celery import shared_task

from .services import health_run


@shared_task(name="monitoring.health_run", ignore_result=True)
def run_health_checks() -> None:
    """Every health check, state changes stored, ``health_ran`` sent (alerts): run by beat
    itself every ``HEALTH_RUN_INTERVAL`` (``BEAT_IN_PROCESS_TASKS``)."""
    health_run()
