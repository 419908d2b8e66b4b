from celery import shared_task

from .services import notification_delivery_send


@shared_task(name="alerts.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """Try a notification again (queued with a countdown after a failed attempt)."""
    notification_delivery_send(delivery_id=delivery_id)
