"""The hourly rollups equal the raw records: rolled from batches stored through the recorder's
path, after a stream's running record is replaced, a batch stored twice, the sweep, and a
store that was still open when its hour was rolled."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.analytics import histograms
from apps.analytics.models import EndUserHourlyRollup, HourlyRollup, PendingHour, TagHourlyRollup
from apps.analytics.services import ROLL_DELAY, rollup_hour, rollups_rebuild, rollups_roll_pending
from apps.analytics.sql import service_expression
from apps.providers.llm.recording.records import call_records_sweep
from apps.providers.models import CallStatus, LlmCall

from .generated import call, generate, hour_now, store

pytestmark = pytest.mark.django_db(transaction=True)

DIMENSIONS = ("provider_name", "model_name", "api_key_id", "user_id", "workspace_id",
              "entry_point", "endpoint", "service", "status")  # fmt: skip


def rolled(**filters) -> dict:
    return HourlyRollup.objects.filter(**filters).aggregate(
        n=Sum("requests"), errors=Sum("errors"), input=Sum("input_tokens"),
        output=Sum("output_tokens"), cost=Sum("cost"), latency=Sum("latency_sum_ms"),
    )  # fmt: skip


def raw(**filters) -> dict:
    calls = LlmCall.objects.exclude(status=CallStatus.RUNNING).filter(**filters)
    return calls.aggregate(
        n=Count("id"), errors=Count("id", filter=Q(status="error")), input=Sum("input_tokens"),
        output=Sum("output_tokens"), cost=Sum("cost"), latency=Sum("latency_ms"),
    )  # fmt: skip


def roll() -> int:
    """Roll every closed hour, whenever in the hour the test runs."""
    return rollups_roll_pending(now=hour_now() + ROLL_DELAY)


def same(rolled_up: dict, exact: dict) -> bool:
    """Equal figures: exactly, but for sums of floats (latency), added in another order."""
    latency = rolled_up.pop("latency"), exact.pop("latency")
    assert rolled_up == exact
    assert latency[0] == pytest.approx(latency[1], rel=1e-9)
    return True


def assert_hour_equal(hour) -> None:
    """Every rollup row of the hour equals the raw records of its key, histograms included."""
    calls = (
        LlmCall.objects.filter(created_at__gte=hour, created_at__lt=hour + timedelta(hours=1))
        .exclude(status=CallStatus.RUNNING)
        .annotate(service=service_expression())
    )
    expected = {
        tuple(row[d] for d in DIMENSIONS): row
        for row in calls.values(*DIMENSIONS).annotate(
            n=Count("id"), cost=Sum("cost"), input=Sum("input_tokens"),
            ttft_n=Count("time_to_first_token_ms"),
        ).order_by()
    }  # fmt: skip
    rows = {
        tuple(getattr(r, d) for d in DIMENSIONS): r for r in HourlyRollup.objects.filter(hour=hour)
    }
    assert rows.keys() == expected.keys()
    for key, row in rows.items():
        assert (row.requests, row.cost, row.input_tokens, row.ttft_count) == (
            expected[key]["n"], expected[key]["cost"], expected[key]["input"],
            expected[key]["ttft_n"],
        )  # fmt: skip
        assert sum(row.latency_histogram) == row.requests
        assert sum(row.ttft_histogram) == row.ttft_count
    for values in calls.values("latency_ms", *DIMENSIONS)[:300]:
        row = rows[tuple(values[d] for d in DIMENSIONS)]
        assert row.latency_histogram[histograms.bucket_of(values["latency_ms"])] > 0


def test_rolled_hours_equal_their_raw_records():
    calls = generate(3000, hours=5)
    calls.append(call(random.Random(5), timezone.now()))  # the open hour has one, even at :00:01
    store(calls)
    hours = set(PendingHour.objects.values_list("hour", flat=True))
    assert len(hours) == 6 and hour_now() in hours
    assert roll() == 5  # the open hour waits until it has closed
    assert list(PendingHour.objects.values_list("hour", flat=True)) == [hour_now()]
    for hour in sorted(hours - {hour_now()}):
        assert_hour_equal(hour)
        assert same(rolled(hour=hour), raw(created_at__gte=hour,
                                           created_at__lt=hour + timedelta(hours=1)))  # fmt: skip
    closed = {"created_at__lt": hour_now()}
    assert same(rolled(), raw(**closed))
    by_user = dict(
        EndUserHourlyRollup.objects.values_list("end_user").annotate(Sum("requests")).order_by()
    )
    expected = dict(
        LlmCall.objects.filter(**closed).exclude(end_user="").values_list("end_user")
        .annotate(Count("id")).order_by()
    )  # fmt: skip
    assert by_user == expected
    tags: Counter = Counter()
    for c in calls:
        if c["created_at"] < hour_now().isoformat():
            for pair in c["tags"].items():
                tags[pair] += 1
    rolled_tags: Counter = Counter()
    for row in TagHourlyRollup.objects.all():
        rolled_tags[(row.key, row.value)] += row.requests
    assert rolled_tags == tags


def test_a_stream_is_counted_once_its_final_record_replaces_the_running_one():
    rng = random.Random(1)
    hour = hour_now() - timedelta(hours=2)
    stream = call(rng, hour + timedelta(minutes=59, seconds=59), status="running", cost="0")
    store([stream], final=False)
    roll()
    assert rolled(hour=hour)["n"] is None  # a running stream is not counted
    final = {**stream, "status": "success", "cost": "0.25", "input_tokens": 10}
    store([final])
    store([final])  # a batch stored twice (a worker died between its write and its pop)
    store([stream], final=False)  # a late running record never replaces the final one
    assert roll() == 1
    assert rolled(hour=hour)["n"] == 1 and rolled(hour=hour)["cost"] == Decimal("0.25")
    assert same(rolled(), raw())


def test_the_sweep_marks_the_hours_it_fails_streams_in():
    rng = random.Random(2)
    hour = hour_now() - timedelta(hours=3)
    store([call(rng, hour + timedelta(minutes=5), status="running")], final=False)
    roll()
    assert not HourlyRollup.objects.exists()
    assert call_records_sweep(older_than=timedelta(minutes=15)) == 1
    assert list(PendingHour.objects.values_list("hour", flat=True)) == [hour]
    roll()
    assert rolled(hour=hour)["errors"] == 1


def test_a_store_still_open_when_its_hour_is_rolled_is_rolled_again():
    """The batch's transaction has stored its records and marked their hour when the roll
    starts: the roll waits for the mark until the store commits, then counts the records."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: the race needs PostgreSQL")
    rng = random.Random(3)
    hour = hour_now() - timedelta(hours=1)
    store([call(rng, hour + timedelta(minutes=1))])
    late = call(rng, hour + timedelta(minutes=2))
    stored, commit = threading.Event(), threading.Event()

    def open_store() -> None:
        try:
            with transaction.atomic():
                store([late])
                stored.set()
                commit.wait(10)
        finally:
            connection.close()

    def roll_in_thread() -> None:
        try:
            rollup_hour(hour=hour)
        finally:
            connection.close()

    writer = threading.Thread(target=open_store)
    writer.start()
    assert stored.wait(10)
    roller = threading.Thread(target=roll_in_thread)
    roller.start()
    roller.join(0.5)
    assert roller.is_alive()  # it waits for the store's lock on the mark
    commit.set()
    writer.join(10)
    roller.join(10)
    assert rolled(hour=hour)["n"] == 2 == raw()["n"]
    assert not PendingHour.objects.exists()


def test_rebuild_recomputes_rollups_from_the_raw_records():
    store(generate(600, hours=3, seed=4))
    roll()
    before = rolled()
    HourlyRollup.objects.update(requests=0)  # a fault: rollups no longer equal the records
    EndUserHourlyRollup.objects.all().delete()
    LlmCall.objects.filter(created_at__lt=hour_now() - timedelta(hours=2)).update(input_tokens=1)
    from django.core.management import call_command

    call_command("rebuild_rollups", "--since", (hour_now() - timedelta(hours=10)).isoformat())
    after = rolled()
    assert after != before
    assert same(after, raw(created_at__lt=hour_now()))
    assert EndUserHourlyRollup.objects.exists()
    assert rollups_rebuild(since=timezone.now()) == 0


def test_a_refused_batch_leaves_no_mark_and_its_good_records_are_rolled():
    """The database refuses one record of a batch shipped through Redis: the batch's
    transaction rolls back with its marks, the split stores the others with theirs."""
    from apps.core.redis import redis_client
    from apps.providers.llm.recording.records import (
        CallRecord,
        call_records_store,
        records_key,
        ship_batch,
    )

    rng = random.Random(5)
    hour = hour_now() - timedelta(hours=4)
    good = [call(rng, hour + timedelta(minutes=m)) for m in range(6)]
    bad = {**call(rng, hour), "created_at": "not a time"}
    redis_client().delete(records_key())
    ship_batch([CallRecord(c, []) for c in [*good[:3], bad, *good[3:]]])
    assert call_records_store() == 6
    assert list(PendingHour.objects.values_list("hour", flat=True)) == [hour]
    roll()
    assert rolled(hour=hour)["n"] == 6 == raw()["n"]
