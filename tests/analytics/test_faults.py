"""Rollups after faults: a worker killed (SIGKILL) while it stores a batch and Redis killed and
started again leave no record lost and the rollups equal to the raw records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from apps.analytics.models import HourlyRollup, PendingHour
from apps.providers.llm.recording.records import CallRecord, records_key
from apps.providers.models import LlmCall
from orchestra.celery import app as celery_app
from tests.support.processes import CeleryWorker, PrivateRedis

from .generated import generate, hour_now
from .test_rollups import assert_hour_equal, raw, roll, rolled, same

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUE = "analytics-faults"
BATCHES, PER_BATCH = 12, 250


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if connection.vendor != "postgresql":
        pytest.skip("a worker process shares the run's PostgreSQL database")
    private = PrivateRedis(persistent=True)
    yield private
    private.close()


def queue_batch(client: redis.Redis, calls: list[dict]) -> None:
    """Put a batch on the records list as a recorder ships it (stamp, newline, JSON)."""
    body = orjson.dumps([CallRecord(c, []).as_json() for c in calls])
    client.rpush(records_key(), b"%.3f\n" % time.time() + body)


def worker_waits_on_a_lock(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.1)
    raise AssertionError("the worker never reached the locked table")


def stored_count(expected: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        celery_app.send_task("providers.store_call_records", queue=QUEUE)
        if (count := LlmCall.objects.count()) >= expected:
            return count
        time.sleep(1)
    return LlmCall.objects.count()


def test_a_worker_killed_mid_batch_and_a_redis_restart_lose_nothing(server_env, private_redis):
    env = {
        **server_env,
        "REDIS_URL": private_redis.url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,  # the test's own, to send it tasks
        "CALL_RECORDS_CLAIM_SECONDS": "2",
    }
    client = redis.Redis.from_url(private_redis.url)
    calls = generate(BATCHES * PER_BATCH, hours=3, seed=21)
    for index in range(0, len(calls), PER_BATCH):
        queue_batch(client, calls[index : index + PER_BATCH])

    worker = CeleryWorker(env, name="celery-analytics-doomed", concurrency=1, queues=QUEUE)
    worker.start()
    try:
        # The worker inserts a batch's calls, then waits to mark their hours: killed there.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {PendingHour._meta.db_table} IN EXCLUSIVE MODE")
            celery_app.send_task("providers.store_call_records", queue=QUEUE)
            worker_waits_on_a_lock()
            worker.kill()
    finally:
        worker.kill()
    assert LlmCall.objects.count() == 0  # the killed worker's transaction rolled back

    private_redis.kill()
    private_redis.restart()
    late = generate(300, hours=2, seed=22)
    queue_batch(client, late)

    worker = CeleryWorker(env, name="celery-analytics-again", concurrency=1, queues=QUEUE)
    worker.start()
    try:
        sent = len(calls) + len(late)
        assert stored_count(sent) == sent, "records were lost"
    finally:
        worker.stop()
    stored = {str(pk) for pk in LlmCall.objects.values_list("id", flat=True)}
    assert len(stored ^ {c["id"] for c in calls + late}) == 0

    assert roll() >= 3
    closed = {"created_at__lt": hour_now()}
    assert same(rolled(), raw(**closed))
    for hour in sorted(set(HourlyRollup.objects.values_list("hour", flat=True))):
        assert_hour_equal(hour)
        assert same(
            rolled(hour=hour), raw(created_at__gte=hour, created_at__lt=hour + timedelta(hours=1))
        )
