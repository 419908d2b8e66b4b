"""The experiment variants' rollup (hour × variant × status, with the successful calls' latency
histogram): equal to the raw records hour by hour and day by day, and an experiment's figures
read from it and the raw records of the hours it does not hold (the range's partial hours at
the ends, the open hour, pending hours), on PostgreSQL and SQLite alike."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.analytics import histograms
from apps.analytics.models import PendingHour, VariantDailyRollup, VariantHourlyRollup
from apps.analytics.selectors import variant_figures
from apps.analytics.services import ROLL_DELAY, rollups_fill_variants, rollups_roll_pending
from apps.experiments.selectors import call_figures
from apps.providers.models import CallStatus, LlmCall

from .generated import call, hour_now, store
from .test_api import money, nearest_rank

pytestmark = pytest.mark.django_db(transaction=True)

VARIANTS = [41, 42, 43]
DAYS = 5


def generate(count: int, *, hours: int, seed: int) -> list[dict[str, Any]]:
    """``count`` calls over the last ``hours`` closed hours and the open one, most of them
    given one of ``VARIANTS``."""
    rng = random.Random(seed)
    start = hour_now() - timedelta(hours=hours)
    span = (timezone.now() - start).total_seconds()
    return [
        call(
            rng,
            start + timedelta(seconds=rng.uniform(0, span)),
            experiment_variant_id=rng.choice([None, *VARIANTS]),
        )
        for _ in range(count)
    ]


def roll() -> int:
    return rollups_roll_pending(now=hour_now() + ROLL_DELAY)


@pytest.fixture
def rolled() -> list[dict[str, Any]]:
    """1,200 calls over the last five days and today, rolled up, days included."""
    made = generate(1200, hours=DAYS * 24 + hour_now().hour, seed=41)
    store(made)
    roll()
    return made


def counted(calls: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
    return calls.exclude(status=CallStatus.RUNNING).filter(experiment_variant_id__isnull=False)


def raw_hours() -> dict[tuple[Any, ...], dict[str, Any]]:
    """Each closed hour's figures and latency buckets per variant and status, from the raw
    records (the buckets computed here, in Python)."""
    closed = counted(LlmCall.objects.filter(created_at__lt=hour_now()))
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows = closed.annotate(in_hour=TruncHour("created_at")).values(
        "in_hour", "experiment_variant_id", "status"
    )
    for row in rows.annotate(
        n=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost")
    ).order_by():
        key = (row["in_hour"], row["experiment_variant_id"], row["status"])
        found[key] = {
            "requests": row["n"], "input_tokens": row["input"], "output_tokens": row["output"],
            "cost": money(row["cost"]), "latency_histogram": histograms.empty(),
        }  # fmt: skip
    for created_at, variant, status, latency in closed.values_list(
        "created_at", "experiment_variant_id", "status", "latency_ms"
    ):
        hour = created_at.replace(minute=0, second=0, microsecond=0)
        found[(hour, variant, status)]["latency_histogram"][histograms.bucket_of(latency)] += 1
    return found


def stored(rows) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (row.hour, row.experiment_variant_id, row.status): {
            "requests": row.requests,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cost": money(row.cost),
            "latency_histogram": row.latency_histogram,
        }  # fmt: skip
        for row in rows
    }


def test_each_closed_hours_variant_rows_equal_its_raw_records(rolled):
    expected = raw_hours()
    assert len({key[1] for key in expected}) == len(VARIANTS)
    assert stored(VariantHourlyRollup.objects.all()) == expected
    errors = VariantHourlyRollup.objects.filter(status=CallStatus.ERROR)
    assert all(row.errors == row.requests for row in errors) and errors.exists()
    assert not VariantHourlyRollup.objects.filter(hour__gte=hour_now()).exists()


def test_each_closed_days_variant_rows_are_its_hours_summed(rolled):
    days = VariantDailyRollup.objects.all()
    assert len({row.day for row in days}) == DAYS
    for row in days:
        hours = VariantHourlyRollup.objects.filter(
            hour__gte=row.day, hour__lt=row.day + timedelta(days=1),
            experiment_variant_id=row.experiment_variant_id, status=row.status,
        )  # fmt: skip
        assert row.requests == sum(h.requests for h in hours)
        assert row.cost == sum((h.cost for h in hours), Decimal(0))
        summed = histograms.empty()
        for h in hours:
            histograms.add(summed, enumerate(h.latency_histogram))
        assert row.latency_histogram == summed


def exact(since: datetime, until: datetime | None) -> dict[int, dict[str, Any]]:
    """What ``variant_figures`` must answer, computed from the raw records."""
    calls = counted(LlmCall.objects.filter(created_at__gte=since))
    if until is not None:
        calls = calls.filter(created_at__lt=until)
    found: dict[Any, dict[str, Any]] = {}
    rows = calls.values("experiment_variant_id").annotate(
        requests=Count("id"),
        successes=Count("id", filter=Q(status=CallStatus.SUCCESS)),
        errors=Count("id", filter=Q(status=CallStatus.ERROR)),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost=Sum("cost"),
    )
    for found_row in rows.order_by():
        row: dict[str, Any] = dict(found_row)
        variant = row.pop("experiment_variant_id")
        latencies = list(
            calls.filter(experiment_variant_id=variant, status=CallStatus.SUCCESS).values_list(
                "latency_ms", flat=True
            )
        )
        found[variant] = {**row, "cost": money(row["cost"]), "latencies": latencies}
    return found


def assert_figures(since: datetime, until: datetime | None = None) -> dict[int, dict[str, Any]]:
    answer = variant_figures(variant_ids=VARIANTS, since=since, until=until)
    expected = exact(since, until)
    assert set(answer) == set(expected) == set(VARIANTS)
    for variant, found in answer.items():
        figures, want = dict(found), expected[variant]
        latencies = want.pop("latencies")
        p50, p95 = figures.pop("latency_p50_ms"), figures.pop("latency_p95_ms")
        assert {**figures, "cost": money(figures["cost"])} == want
        buckets = histograms.add(
            histograms.empty(), [(histograms.bucket_of(v), 1) for v in latencies]
        )
        assert (p50, p95) == (
            histograms.percentile(buckets, 0.5),
            histograms.percentile(buckets, 0.95),
        )
        for got, q in ((p50, 0.5), (p95, 0.95)):
            assert got == pytest.approx(nearest_rank(latencies, q), rel=histograms.ERROR_BOUND)
    return answer


def test_figures_take_five_queries_at_most(rolled, django_assert_max_num_queries):
    since = hour_now() - timedelta(days=DAYS - 1, hours=5, minutes=20)
    with django_assert_max_num_queries(5):
        variant_figures(variant_ids=VARIANTS, since=since)


def test_figures_across_hour_boundaries_equal_the_raw_records(rolled):
    # From the middle of an hour to the middle of another, then on to the open hour: whole
    # days from the daily rows, whole hours from the hourly ones, the rest from the calls.
    since = hour_now() - timedelta(days=DAYS - 1, hours=5, minutes=20)
    assert_figures(since, hour_now() - timedelta(hours=3, minutes=40))
    assert_figures(since)
    assert_figures(hour_now() - timedelta(hours=2, minutes=10))  # hourly rows only


def test_a_pending_hour_is_read_from_the_raw_records(rolled):
    hour = hour_now() - timedelta(hours=7)
    late = [
        call(random.Random(n), hour + timedelta(minutes=n), experiment_variant_id=VARIANTS[0],
             status="success", latency_ms=90_000.0)
        for n in range(1, 40)
    ]  # fmt: skip
    store(late)
    assert PendingHour.objects.filter(hour=hour).exists()
    since = hour_now() - timedelta(days=DAYS - 1, minutes=30)
    answer = assert_figures(since)
    roll()
    assert not PendingHour.objects.filter(hour=hour).exists()
    assert variant_figures(variant_ids=VARIANTS, since=since) == answer


def test_hours_whose_records_retention_deleted_are_read_from_the_rollup(rolled):
    since = hour_now() - timedelta(days=DAYS - 1)
    before = variant_figures(variant_ids=VARIANTS, since=since)
    LlmCall.objects.filter(created_at__lt=hour_now() - timedelta(hours=1)).delete()
    assert variant_figures(variant_ids=VARIANTS, since=since) == before


def test_the_experiments_call_figures_are_the_variant_figures(rolled):
    since = hour_now() - timedelta(hours=30, minutes=15)
    figures = call_figures(variant_ids=VARIANTS, since=since)
    answer = variant_figures(variant_ids=VARIANTS, since=since)
    assert {v: f.requests for v, f in figures.items()} == {
        v: a["requests"] for v, a in answer.items()
    }
    assert figures[VARIANTS[0]].latency_p95_ms == answer[VARIANTS[0]]["latency_p95_ms"]


def test_the_fill_counts_calls_given_a_variant_after_their_hours_were_rolled(rolled):
    moved = LlmCall.objects.filter(experiment_variant_id__isnull=True, created_at__lt=hour_now())
    assert moved.update(experiment_variant_id=VARIANTS[2])  # as a benchmark assigns calls
    since = hour_now() - timedelta(days=DAYS - 1, hours=3, minutes=30)
    stale = variant_figures(variant_ids=VARIANTS, since=since)[VARIANTS[2]]["requests"]
    assert stale < exact(since, None)[VARIANTS[2]]["requests"]  # no hook saw it: it lags

    counted_ = rollups_fill_variants(now=hour_now() + ROLL_DELAY)

    assert counted_ == sum(row["requests"] for row in raw_hours().values())
    assert stored(VariantHourlyRollup.objects.all()) == raw_hours()
    assert_figures(since)
    assert rollups_fill_variants(now=hour_now() + ROLL_DELAY) == counted_  # repeatable
