from celery import shared_task

from .services import canaries_advance


@shared_task(name="experiments.advance_canaries", ignore_result=True)
def advance_canaries() -> int:
    """Judge every running canary: next step, completion or rollback (Celery beat)."""
    return canaries_advance()
