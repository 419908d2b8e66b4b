"""Call records past ``CALL_RECORD_RETENTION_DAYS`` are deleted, in batches, with their
attempts and the refused records of that age; nothing newer, and nothing at all with 0."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.ids import uuid7
from apps.providers.llm.recording.records import call_records_prune
from apps.providers.models import CallRecordDeadLetter, CallStatus, LlmCall, LlmCallAttempt
from apps.providers.tasks import prune_call_records
from orchestra.celery import app as celery_app
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def calls_made(*ages: timedelta, attempts: int = 2) -> list[LlmCall]:
    """One call per age (made that long ago), each with ``attempts`` attempts."""
    now = timezone.now()
    calls = LlmCall.objects.bulk_create(
        LlmCall(
            id=uuid7(),
            created_at=now - age,
            entry_point="internal",
            status=CallStatus.SUCCESS,
            attempt_count=attempts,
        )
        for age in ages
    )
    LlmCallAttempt.objects.bulk_create(
        LlmCallAttempt(
            call=call,
            number=number,
            provider_name="p",
            model_name="m",
            status=CallStatus.SUCCESS,
            started_at=call.created_at,
        )
        for call in calls
        for number in range(1, attempts + 1)
    )
    return calls


def letter_made(age: timedelta) -> CallRecordDeadLetter:
    letter = CallRecordDeadLetter.objects.create(reason="refused", payload="{}")
    CallRecordDeadLetter.objects.filter(pk=letter.pk).update(created_at=timezone.now() - age)
    return letter


def test_deletes_what_is_older_than_the_setting_and_nothing_newer():
    just_past, just_within = timedelta(days=30, minutes=1), timedelta(days=30, minutes=-1)
    old = calls_made(timedelta(days=400), timedelta(days=31), just_past)
    kept = calls_made(just_within, timedelta(days=1), timedelta(0))
    old_letter, new_letter = letter_made(just_past), letter_made(just_within)

    pruned = call_records_prune(older_than_days=30)

    assert (pruned.calls, pruned.attempts, pruned.dead_letters) == (3, 6, 1)
    assert set(LlmCall.objects.values_list("id", flat=True)) == {c.id for c in kept}
    assert not LlmCallAttempt.objects.filter(call_id__in=[c.id for c in old]).exists()
    assert LlmCallAttempt.objects.count() == 2 * len(kept)
    assert list(CallRecordDeadLetter.objects.values_list("pk", flat=True)) == [new_letter.pk]
    assert old_letter.pk != new_letter.pk


def test_deletes_in_bounded_batches_oldest_first():
    calls_made(*(timedelta(days=100 + n) for n in range(7)), attempts=1)
    kept = calls_made(timedelta(days=2), attempts=1)

    with CaptureQueriesContext(connection) as queries:
        pruned = call_records_prune(older_than_days=90, batch=3)

    assert (pruned.calls, pruned.attempts) == (7, 7)
    assert list(LlmCall.objects.values_list("id", flat=True)) == [kept[0].id]
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    # Three batches of calls (3, 3, 1), each with its attempts: never one unbounded delete.
    assert len(deletes) == 6
    assert all(" IN (" in sql for sql in deletes)


def test_zero_keeps_everything():
    calls_made(timedelta(days=10_000), timedelta(days=1))
    letter_made(timedelta(days=10_000))

    assert call_records_prune(older_than_days=0).calls == 0

    assert LlmCall.objects.count() == 2
    assert LlmCallAttempt.objects.count() == 4
    assert CallRecordDeadLetter.objects.count() == 1


def test_beat_runs_it_hourly_with_the_setting(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["prune-call-records"]
    assert schedule["task"] == prune_call_records.name
    assert schedule["schedule"] == 3600.0
    assert settings.CALL_RECORD_RETENTION_DAYS == 90


def test_the_worker_runs_beats_task(celery_worker):
    """The task as beat sends it (by name), on the real worker, with the default 90 days."""
    old = calls_made(timedelta(days=90, minutes=5))
    kept = calls_made(timedelta(days=89, hours=23))

    celery_app.send_task(settings.CELERY_BEAT_SCHEDULE["prune-call-records"]["task"])

    eventually(lambda: not LlmCall.objects.filter(pk=old[0].pk).exists(), what="the old call gone")
    assert list(LlmCall.objects.values_list("id", flat=True)) == [kept[0].id]
    assert LlmCallAttempt.objects.filter(call_id=kept[0].id).count() == 2
    assert not LlmCallAttempt.objects.filter(call_id=old[0].id).exists()
