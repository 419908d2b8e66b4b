"""The daily and the narrow (provider × model) rollups: built from the hourly rows of closed
days, read for ranges of several whole days, rebuilt when an hour of their day is rolled again,
and every figure still equal to a direct aggregate over the raw records."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Count, F, Q, Sum

from apps.analytics import histograms
from apps.analytics.models import (
    DailyRollup,
    EndUserDailyRollup,
    HourlyRollup,
    ModelDailyRollup,
    ModelHourlyRollup,
    PendingDay,
    TagDailyRollup,
)
from apps.analytics.services import ROLL_DELAY, rollups_rebuild, rollups_roll_pending

from .generated import call, generate, hour_now, store
from .test_api import GROUP_COLUMNS, exact, get, iso, money, nearest_rank, raw_calls, viewer

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["viewer"]  # the fixture, used by name
DAYS = 6


def today() -> datetime:
    return hour_now().replace(hour=0)


def roll() -> int:
    return rollups_roll_pending(now=hour_now() + ROLL_DELAY)


@pytest.fixture
def days() -> list[dict[str, Any]]:
    """1,500 calls over the last six days and today, rolled up, days included."""
    made = generate(1500, hours=DAYS * 24 + hour_now().hour, seed=6)
    store(made)
    roll()
    return made


def test_closed_days_are_built_and_equal_their_hourly_rows(days):
    assert not PendingDay.objects.filter(day__lt=today()).exists()
    assert PendingDay.objects.filter(day=today()).exists() or hour_now().hour == 0
    built = set(DailyRollup.objects.values_list("day", flat=True))
    assert len(built) == DAYS and max(built) == today() - timedelta(days=1)
    figures = ("requests", "errors", "input_tokens", "output_tokens", "ttft_count")
    for day in built:
        hours = HourlyRollup.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
        daily = DailyRollup.objects.filter(day=day)
        assert daily.aggregate(**{f: Sum(f) for f in figures}) == hours.aggregate(
            **{f: Sum(f) for f in figures}
        )
        # SQLite sums decimals as floats: to their 8 decimal places.
        assert money(daily.aggregate(c=Sum("cost"))["c"]) == money(
            hours.aggregate(c=Sum("cost"))["c"]
        )
        for model in (DailyRollup, ModelDailyRollup):
            latency = histograms.empty()
            for row in model.objects.filter(day=day):
                histograms.add(latency, enumerate(row.latency_histogram))
            expected = histograms.empty()
            for row in hours:
                histograms.add(expected, enumerate(row.latency_histogram))
            assert latency == expected
        ends = EndUserDailyRollup.objects.filter(day=day).aggregate(n=Sum("requests"))["n"]
        assert ends == raw_calls(day, day + timedelta(days=1)).exclude(end_user="").count()
        assert TagDailyRollup.objects.filter(day=day).exists()
    narrow = ModelHourlyRollup.objects.aggregate(n=Sum("requests"), c=Sum("cost"))
    wide = HourlyRollup.objects.aggregate(n=Sum("requests"), c=Sum("cost"))
    assert (narrow["n"], money(narrow["c"])) == (wide["n"], money(wide["c"]))


def test_long_ranges_read_the_daily_rows_and_equal_the_raw_records(days, viewer):
    end = datetime.now(UTC)
    start = today() - timedelta(days=DAYS, hours=-5, minutes=-17)  # partial first day and hour
    answer = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    for point in answer["series"]:
        at = datetime.fromisoformat(point["period"].replace("Z", "+00:00"))
        expected = exact(raw_calls(max(at, start), min(at + timedelta(days=1), end)))
        assert point["requests"] == expected["requests"]
        assert money(point["cost"]) == expected["cost"]
    total = exact(raw_calls(start, end))
    assert answer["totals"]["totalRequests"] == total["requests"]
    for group, column in GROUP_COLUMNS.items():
        found = get(viewer, "costs", groupBy=group, startDate=iso(start), endDate=iso(end))
        base = raw_calls(start, end)
        if group == "end_user":
            base = base.exclude(end_user="")
        expected_rows = {
            (None if row[column] is None else str(row[column])): (row["n"], money(row["c"]))
            for row in base.values(column).annotate(n=Count("id"), c=Sum("cost")).order_by()
        }
        got = {r["key"]: (r["requests"], money(r["cost"])) for r in found["breakdown"]}
        assert got == expected_rows, group
    by_tag = get(viewer, "costs", groupBy="tag", startDate=iso(start), endDate=iso(end))
    tags: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for row in raw_calls(start, end).values("tags", "cost"):
        for pair in row["tags"].items():
            tags[":".join(pair)][0] += 1
            tags[":".join(pair)][1] += row["cost"]
    assert {r["key"]: (r["requests"], money(r["cost"])) for r in by_tag["breakdown"]} == {
        key: (n, money(cost)) for key, (n, cost) in tags.items()
    }
    # The whole days came from the daily rows: changing them changes the answer.
    whole = DailyRollup.objects.filter(day__gte=today() - timedelta(days=DAYS - 1))
    changed = whole.count()
    whole.update(requests=F("requests") + 1)
    again = get(viewer, "usage", period="week", startDate=iso(start), endDate=iso(end))
    assert changed and again["totals"]["totalRequests"] == total["requests"] + changed
    # Asked per hour, the series reads the hourly rows.
    hourly = get(viewer, "usage", period="hour", startDate=iso(start), endDate=iso(end))
    assert sum(p["requests"] for p in hourly["series"]) == total["requests"]


def test_performance_from_the_narrow_and_daily_rollups_is_within_the_bound(days, viewer):
    end = datetime.now(UTC)
    start = today() - timedelta(days=DAYS, hours=-3)
    for filters in ({}, {"provider": "alpha"}, {"status": "error"}):
        answer = get(viewer, "performance", period="day", startDate=iso(start),
                     endDate=iso(end), **filters)  # fmt: skip
        checked = 0
        for group in answer["results"]:
            q = Q(provider_name=group["provider"], model_name=group["model"])
            if "status" in filters:
                q &= Q(status=filters["status"])
            pair = raw_calls(start, end, q)
            figures = exact(pair)
            assert (group["requests"], group["errorCount"]) == (
                figures["requests"], figures["errors"],
            )  # fmt: skip
            assert sum(p["requests"] for p in group["series"]) == figures["requests"]
            values = [v for v in pair.values_list("latency_ms", flat=True) if v is not None]
            for name, q_ in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                true = nearest_rank(values, q_)
                if histograms.LOW_MS <= true < histograms.HIGH_MS:
                    assert abs(group["latency"][name] - true) / true <= histograms.ERROR_BOUND
                    checked += 1
        assert checked >= (3 if filters else 6)


def test_a_late_call_in_a_closed_day_marks_it_until_it_is_rebuilt(days, viewer):
    day = today() - timedelta(days=3)
    start, end = today() - timedelta(days=DAYS), today()
    before = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    late = call(random.Random(3), day + timedelta(hours=5, minutes=10), cost="1.5")
    store([late])
    during = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    assert during["totals"]["totalRequests"] == before["totals"]["totalRequests"] + 1
    roll()  # the hour is rolled, then its day rebuilt
    assert not PendingDay.objects.filter(day=day).exists()
    assert DailyRollup.objects.filter(day=day).aggregate(n=Sum("requests"))["n"] == (
        raw_calls(day, day + timedelta(days=1)).count()
    )
    after = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    assert same_totals(after["totals"], during["totals"])
    # A rebuild from the raw records gives the same rows.
    assert rollups_rebuild(now=hour_now() + ROLL_DELAY) > 0
    again = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    assert same_totals(again["totals"], after["totals"])


def same_totals(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal totals: costs to their 8 decimals (SQLite sums decimals as floats), sums of floats
    (latency) added in another order to their rounding."""
    for name in ("totalRequests", "totalTokens", "errorCount"):
        assert got[name] == expected[name], name
    assert money(got["totalCost"]) == money(expected["totalCost"])
    assert got["avgLatency"] == pytest.approx(expected["avgLatency"], abs=0.002)
    return True


def test_export_per_day_adds_up_the_hourly_rows(days, viewer):
    start, end = today() - timedelta(days=DAYS, hours=-7), datetime.now(UTC)
    for granularity in ("day", "hour"):
        response = viewer.get("/api/v1/analytics/export", {
            "format": "csv", "startDate": iso(start), "endDate": iso(end),
            "granularity": granularity, "provider": "alpha",
        })  # fmt: skip
        assert response.status_code == 200 and response.streaming
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        stamps = [r[granularity] for r in rows]
        assert stamps == sorted(stamps)
        stored = HourlyRollup.objects.filter(hour__gte=start, hour__lt=end, provider_name="alpha")
        expected = stored.aggregate(n=Sum("requests"), c=Sum("cost"))
        assert sum(int(r["requests"]) for r in rows) == expected["n"]
        assert money(sum(Decimal(r["cost"]) for r in rows)) == money(expected["c"])
        if granularity == "day":
            assert len({r["day"] for r in rows}) == DAYS + 1
            keys = [(r["day"], *(r[c] for c in list(r)[1:10])) for r in rows]
            assert len(keys) == len(set(keys))  # one row per day and key
            assert len(rows) < stored.count()
