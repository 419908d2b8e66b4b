from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import Backup, BackupStatus


def backup_list() -> QuerySet[Backup]:
    return Backup.objects.select_related("requested_by").order_by("-created_at", "-id")


def backup_get(*, pk: int) -> Backup:
    return get_object_or_404(backup_list(), pk=pk)


@dataclass(frozen=True)
class BackupState:
    """How the backups stand, for Home and ``/health``: ``status`` is ``ok``, ``degraded``
    (the last success is older than ``BACKUP_MAX_AGE_HOURS``, or a backup has run for too
    long), ``error`` (the latest backup failed) or ``none`` (never backed up)."""

    status: str
    message: str
    last_success_at: datetime | None = None


def backup_state(*, now: datetime | None = None) -> BackupState:
    now = now or timezone.now()
    finished = backup_list().filter(status__in=[BackupStatus.SUCCEEDED, BackupStatus.FAILED])
    latest = finished.first()
    success = finished.filter(status=BackupStatus.SUCCEEDED).first()
    success_at = success.finished_at if success else None
    if latest is None:
        return BackupState("none", "No backup yet.")
    if latest.status == BackupStatus.FAILED:
        when = latest.finished_at or latest.created_at
        return BackupState(
            "error",
            f"The last backup (#{latest.pk}, {when:%Y-%m-%d %H:%M} UTC) failed: "
            f"{latest.error[:200]}",
            success_at,
        )
    stuck = (
        backup_list()
        .filter(
            status=BackupStatus.RUNNING,
            started_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT),
        )
        .first()
    )
    if stuck is not None:
        return BackupState("degraded", f"Backup #{stuck.pk} has run for too long.", success_at)
    if success is None or success_at is None:  # the latest finished one succeeded
        return BackupState("none", "No backup yet.")
    age = now - success_at
    hours = age.total_seconds() / 3600
    if hours > settings.BACKUP_MAX_AGE_HOURS:
        return BackupState(
            "degraded", f"Stale: the last successful backup is {hours:.0f} hours old.", success_at
        )
    size = f"{success.size or 0:,} bytes"
    return BackupState("ok", f"Last backup {_ago(age)} ago ({size}).", success_at)


def _ago(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
