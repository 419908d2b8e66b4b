from celery import shared_task

from .services import rollups_roll_pending


@shared_task(name="analytics.roll_hours", ignore_result=True)
def roll_hours() -> int:
    """Roll up the closed hours whose call records changed (run by beat every minute)."""
    return rollups_roll_pending()
