"""Retention keeps exactly what the policy says; one backup runs at a time; the last backup's
state (failed, stale) shows on /health and Home and raises an alert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.alerts.models import Alert, AlertStatus, Severity
from apps.backups.checks import backups as backups_check
from apps.backups.models import Backup, BackupStatus, BackupTrigger
from apps.backups.services import backup_run_now, backup_storage, backups_prune
from apps.core.health import forget_results
from apps.dashboard.figures import SNAPSHOT_KEY
from apps.monitoring.services import health_run
from tests.dashboard.conftest import member

pytestmark = pytest.mark.django_db(transaction=True)


def made(status: str, days_ago: float, *, with_file: bool = True) -> Backup:
    backup = Backup.objects.create(status=status, trigger=BackupTrigger.SCHEDULE)
    at = timezone.now() - timedelta(days=days_ago)
    fields: dict[str, object] = {
        "created_at": at,
        "started_at": at,
        "finished_at": at + timedelta(seconds=3),
    }
    if with_file and status == BackupStatus.SUCCEEDED:
        fields["name"] = backup_storage().save(f"b-{backup.pk}.tar.gz", ContentFile(b"x"))
        fields["size"] = 1
    if status == BackupStatus.FAILED:
        fields["error"] = "pg_dump failed: no space left on device"
    Backup.objects.filter(pk=backup.pk).update(**fields)
    return Backup.objects.get(pk=backup.pk)


def kept() -> list[int]:
    return sorted(Backup.objects.values_list("pk", flat=True))


def test_retention_by_count_and_age(settings):
    settings.BACKUP_KEEP_LAST = 3
    settings.BACKUP_KEEP_DAYS = 10
    succeeded = [made(BackupStatus.SUCCEEDED, days) for days in (0.1, 1, 2, 3, 4, 20)]
    failed_old = made(BackupStatus.FAILED, 15)
    failed_new = made(BackupStatus.FAILED, 0.5)
    running_old = made(BackupStatus.RUNNING, 30)

    removed = backups_prune()

    # The newest three succeeded; the others beyond the count or the age; the failed one older
    # than the age; never a running one.
    doomed = [b.pk for b in succeeded[3:]] + [failed_old.pk]
    assert removed == sorted(doomed)
    assert kept() == sorted([b.pk for b in succeeded[:3]] + [failed_new.pk, running_old.pk])
    storage = backup_storage()
    assert all(storage.exists(b.name) for b in succeeded[:3])
    assert not any(storage.exists(b.name) for b in succeeded[3:])
    assert backups_prune() == []  # a second run removes nothing more


def test_retention_always_keeps_the_newest_success_and_zero_means_no_limit(settings):
    settings.BACKUP_KEEP_LAST = 0
    settings.BACKUP_KEEP_DAYS = 7
    old = [made(BackupStatus.SUCCEEDED, days) for days in (30, 40)]
    assert backups_prune() == [old[1].pk]
    assert kept() == [old[0].pk]
    settings.BACKUP_KEEP_DAYS = 0
    more = [made(BackupStatus.SUCCEEDED, days) for days in (50, 60)]
    assert backups_prune() == []
    assert kept() == sorted([old[0].pk, *(b.pk for b in more)])


def test_a_backup_applies_retention_after_it_succeeds(settings):
    settings.BACKUP_KEEP_LAST = 2
    settings.BACKUP_KEEP_DAYS = 0
    older = [made(BackupStatus.SUCCEEDED, days) for days in (1, 2)]
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    assert kept() == sorted([older[0].pk, backup.pk])
    assert f"retention removed backups #{older[1].pk}" in Backup.objects.get(pk=backup.pk).log


def test_one_backup_at_a_time():
    running = made(BackupStatus.RUNNING, 0)
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)
    assert backup.status == BackupStatus.FAILED
    assert "Another backup was running" in backup.error
    Backup.objects.filter(pk=running.pk).update(started_at=timezone.now() - timedelta(days=1))
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)  # the stuck one lost its worker
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    assert Backup.objects.get(pk=running.pk).status == BackupStatus.FAILED


def test_a_failed_backup_keeps_its_log_and_leaves_no_archive(settings, backup_settings):
    settings.BACKUP_ENCRYPTION_KEY = "too short"
    archives = set(backup_settings["backups"].glob("*"))
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)
    assert backup.status == BackupStatus.FAILED
    assert "BACKUP_ENCRYPTION_KEY must be 32 random bytes" in backup.error
    assert "failed:" in backup.log and backup.name == "" and backup.finished_at
    assert set(backup_settings["backups"].glob("*")) == archives


def home_backups_pill(client: Client) -> str:
    """The backups' card of Home's services, as computed now."""
    forget_results()
    cache.delete(SNAPSHOT_KEY)
    page = client.get("/admin/").content.decode()
    start = page.index('data-health="backups"')
    return page[start : start + 600]


def test_a_failed_or_stale_backup_shows_on_health_and_home(settings):
    client = Client()
    client.force_login(member(Role.VIEWER))
    assert backups_check().status == "disabled"  # none yet
    made(BackupStatus.SUCCEEDED, 0.01)
    assert backups_check().status == "ok"
    failed = made(BackupStatus.FAILED, 0.001)
    assert backups_check().status == "error"
    assert 'data-status="error"' in home_backups_pill(client)
    assert "no space left on device" in home_backups_pill(client)
    failed.delete()
    settings.BACKUP_MAX_AGE_HOURS = 0.1
    result = backups_check()
    assert result.status == "degraded" and "Stale" in result.message
    assert 'data-status="degraded"' in home_backups_pill(client)


def test_a_failed_backup_raises_an_alert_that_a_good_one_resolves():
    made(BackupStatus.FAILED, days_ago=0.01)
    forget_results()
    health_run()
    alert = Alert.objects.get(cause="health:backups")
    assert (alert.status, alert.severity) == (AlertStatus.OPEN, Severity.CRITICAL)
    assert "no space left" in alert.detail

    made(BackupStatus.SUCCEEDED, days_ago=0)
    forget_results()
    health_run()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None
