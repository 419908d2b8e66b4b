"""Backups on the real worker: the schedule (a django-celery-beat task, as an admin edits it)
runs one at its time through a real beat; an on-demand backup taken while 200 calls go
through /v1 leaves every call answered and recorded, and the calls are not held up."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from apps.accounts.models import Role
from apps.backups.models import Backup, BackupStatus, BackupTrigger
from apps.providers.models import CallStatus
from tests.dashboard.conftest import member
from tests.support.processes import CeleryBeat
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def test_a_scheduled_backup_runs_on_the_worker_at_its_time(server_env, backups_worker):
    at = timezone.now() + timedelta(seconds=8)
    PeriodicTask.objects.create(
        name="Backup soon",
        task="backups.run_scheduled",
        one_off=True,
        clocked=ClockedSchedule.objects.create(clocked_time=at),
    )
    beat = CeleryBeat(server_env).start()
    try:
        backup = eventually(
            lambda: Backup.objects.filter(status=BackupStatus.SUCCEEDED).first(),
            60,
            "the scheduled backup succeeded",
        )
    finally:
        beat.stop()
    assert backup.trigger == BackupTrigger.SCHEDULE
    assert backup.started_at is not None and backup.started_at >= at
    assert backup.started_at - at < timedelta(seconds=15)
    assert Backup.objects.count() == 1


def test_the_platform_keeps_serving_during_a_backup(
    two_providers, upstream_a, upstream_b, backups_worker, gateway, recorded_calls
):
    """Calls go on until the backup has ended and at least 200 were made; each is answered,
    the calls made while it ran are as fast as the others (no lock held them up) and every
    call is recorded."""
    upstream_a.configure(latency_ms=5)
    client = Client()
    client.force_login(member(Role.ADMIN))
    latencies: list[tuple[float, float]] = []  # (wall-clock start, seconds)
    lock = threading.Lock()

    def call() -> None:
        started, clock = time.time(), time.monotonic()
        answer = gateway.chat.completions.create(model="chat", messages=HELLO)
        assert answer.choices[0].message.content
        with lock:
            latencies.append((started, time.monotonic() - clock))

    for _ in range(20):  # warm up the pools before measuring
        call()
    backup_id = client.post("/api/v1/backups").json()["id"]
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        sent = 0
        while sent < 200 or Backup.objects.get(pk=backup_id).status in ("queued", "running"):
            list(pool.map(lambda _: call(), range(8)))
            sent += 8
            assert time.monotonic() - began < 120, "the backup did not end"
    backup = Backup.objects.get(pk=backup_id)
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    assert backup.started_at and backup.finished_at
    ran = (backup.finished_at - backup.started_at).total_seconds()
    window = (backup.started_at.timestamp(), backup.finished_at.timestamp())
    during = [seconds for started, seconds in latencies[20:] if window[0] <= started <= window[1]]
    others = [seconds for started, seconds in latencies if not window[0] <= started <= window[1]]
    assert len(during) >= 8, "calls were made while the backup ran"
    calls = recorded_calls(20 + sent, timeout=60)
    assert len(calls) >= 20 + sent
    assert all(call.status == CallStatus.SUCCESS for call in calls)
    print(
        f"backup ran {ran:.2f} s; {sent} calls, {len(during)} while it ran: p50 "
        f"{statistics.median(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms; the "
        f"others p50 {statistics.median(others) * 1000:.0f} ms, max {max(others) * 1000:.0f} ms"
    )
    # A lock held for the backup would hold the calls (and their records) for as long.
    assert max(during) < max(1.0, 3 * max(others))
