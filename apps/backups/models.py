"""Backups: each run of a backup (scheduled, asked for on the page or the API, or by the
``backup`` command) is a row with its status, its archive's place, size and checksum, how long
it took and its log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

MANAGE_PERMISSION = "backups.manage_backups"


class BackupStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BackupTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual", "On demand"
    COMMAND = "command"


class Backup(models.Model):
    status = models.CharField(
        max_length=16, choices=BackupStatus.choices, default=BackupStatus.QUEUED, db_index=True
    )
    trigger = models.CharField(max_length=16, choices=BackupTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    name = models.CharField(
        max_length=255, blank=True, help_text="The archive's name in the backups storage."
    )
    location = models.CharField(
        max_length=1000, blank=True, help_text="Where the archive is (a path, or storage:name)."
    )
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the archive.")
    encrypted = models.BooleanField(default=False)
    database_vendor = models.CharField(max_length=16, blank=True)
    summary = models.JSONField(
        default=dict, blank=True, help_text="Rows, files and sizes, from the manifest."
    )
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("manage_backups", "Can run backups and see them (admins)")]

    def __str__(self) -> str:
        return f"Backup #{self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
