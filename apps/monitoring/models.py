"""What the periodic health run keeps: each check's current state, and its changes."""

from __future__ import annotations

from django.db import models


class HealthCheckState(models.Model):
    """A check's state as of the latest health run, and since when it has been in it."""

    check_name = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16)
    message = models.CharField(max_length=500, blank=True)
    latency_ms = models.FloatField(default=0)
    since = models.DateTimeField()
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["check_name"]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.status}"


class HealthCheckChange(models.Model):
    """A check whose status changed between two runs (its first run counts as a change)."""

    check_name = models.CharField(max_length=100)
    status = models.CharField(max_length=16)
    previous_status = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    changed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["check_name", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.previous_status or '-'} -> {self.status}"
