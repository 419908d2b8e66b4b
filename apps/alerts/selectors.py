"""Reads of alerts and notification deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Alert, AlertStatus, NotificationChannel, NotificationDelivery


def alert_list(
    *, status: str | None = None, severity: str | None = None, kind: str | None = None
) -> QuerySet[Alert]:
    """Alerts, newest first; ``status`` ``active`` means open or acknowledged."""
    alerts = Alert.objects.select_related("acknowledged_by").order_by("-raised_at", "-id")
    if status == "active":
        alerts = alerts.exclude(status=AlertStatus.RESOLVED)
    elif status:
        alerts = alerts.filter(status=status)
    if severity:
        alerts = alerts.filter(severity=severity)
    if kind:
        alerts = alerts.filter(kind=kind)
    return alerts


def alert_active_list() -> QuerySet[Alert]:
    """Alerts not resolved yet (open or acknowledged), the most severe and newest first."""
    return alert_list(status="active")


def alert_open_count() -> int:
    return Alert.objects.filter(status=AlertStatus.OPEN).count()


def alert_kinds() -> list[str]:
    return list(Alert.objects.order_by("kind").values_list("kind", flat=True).distinct())


def notification_channel_list() -> QuerySet[NotificationChannel]:
    return NotificationChannel.objects.order_by("name")


def notification_delivery_list(
    *, channel: NotificationChannel | None = None
) -> QuerySet[NotificationDelivery]:
    deliveries = NotificationDelivery.objects.select_related("channel", "alert")
    return deliveries.filter(channel=channel) if channel else deliveries
