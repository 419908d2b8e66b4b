"""Alerts, and the notification channels that carry them to people.

An ``Alert`` has one cause (``health:redis``, ``provider_error_rate:openai``): while it is not
resolved, the same cause updates it rather than opening another (a partial unique constraint
holds it). A ``NotificationChannel`` is an Apprise URL (email, Slack, Teams, PagerDuty, a
webhook...) encrypted at rest, with the lowest severity it is sent; each notification sent, or
tried, is a ``NotificationDelivery``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.crypto import decrypt


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    cause = models.CharField(max_length=200)
    kind = models.CharField(max_length=64, db_index=True)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    data = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField(db_index=True)
    last_seen_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cause"], condition=~Q(status="resolved"), name="one_open_alert_per_cause"
            )
        ]
        indexes = [models.Index(fields=["status", "raised_at"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status != AlertStatus.RESOLVED


class NotificationChannel(models.Model):
    """Where notifications go. ``url_encrypted`` holds the Apprise URL (its tokens and
    passwords), never shown again once saved; ``service`` is its scheme, for display."""

    name = models.CharField(max_length=100, unique=True)
    service = models.CharField(max_length=32, editable=False)
    url_encrypted = models.TextField(editable=False)
    min_severity = models.CharField(
        max_length=16,
        choices=Severity.choices,
        default=Severity.WARNING,
        help_text="Alerts below this severity are not sent here.",
    )
    notify_resolved = models.BooleanField(
        default=True, help_text="Also say when an alert sent here is resolved."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.service})"

    def url(self) -> str:
        return decrypt(self.url_encrypted)

    def accepts(self, severity: str) -> bool:
        return SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[Severity(self.min_severity)]


class NotificationEvent(models.TextChoices):
    RAISED = "raised", "Raised"
    RESOLVED = "resolved", "Resolved"
    TEST = "test", "Test"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (rate limit)"


class NotificationDelivery(models.Model):
    """One notification to one channel: its attempts, outcome and last error (never the
    channel's URL)."""

    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries"
    )
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=16, choices=NotificationEvent.choices)
    title = models.CharField(max_length=250)
    body = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "notification deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="delivery_due",
            ),
            models.Index(fields=["channel", "sent_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.channel.name}: {self.title} ({self.status})"
