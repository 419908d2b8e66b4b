from celery import shared_task

from .services import figures_publish


@shared_task(name="dashboard.publish_figures", ignore_result=True, expires=10)
def publish_figures() -> None:
    """Compute Home's figures and publish them on ``metrics`` (run by beat every 5 s)."""
    figures_publish()
