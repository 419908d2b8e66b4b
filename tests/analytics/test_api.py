"""Every figure of the analytics API equals a direct aggregate over the raw records of the same
range and filters (rolled hours, pending hours, the open hour and partial hours together), and
its percentiles are within the histograms' stated bound of the exact ones."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Count, F, Q, Sum
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.analytics import histograms
from apps.analytics.models import HourlyRollup, PendingHour
from apps.analytics.services import ROLL_DELAY, rollups_roll_pending
from apps.analytics.sql import service_expression
from apps.providers.models import CallStatus, LlmCall
from tests.support.factories import api_key_issue, bearer

from .generated import call, generate, hour_now, store

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = 30


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    """3,000 calls over 30 closed hours and the open one: the closed hours rolled up, then
    late calls in two of them (pending again) and streams still running (never counted)."""
    made = generate(3000, hours=HOURS)
    store(made)
    rollups_roll_pending(now=hour_now() + ROLL_DELAY)
    rng = random.Random(9)
    late = [
        call(rng, hour_now() - timedelta(hours=h, minutes=30)) for h in (3, 7) for _ in range(40)
    ]
    store(late)
    running = [call(rng, hour_now() - timedelta(hours=2), status="running") for _ in range(5)]
    store(running, final=False)
    assert HourlyRollup.objects.exists() and PendingHour.objects.count() >= 2
    return made + late


@pytest.fixture
def viewer() -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))


def get(client: APIClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/analytics/{path}", params)
    assert response.status_code == 200, response.content[:500]
    return response.json()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def raw_calls(start: datetime, end: datetime, q: Q | None = None):
    return (
        LlmCall.objects.filter(created_at__gte=start, created_at__lt=end)
        .exclude(status=CallStatus.RUNNING)
        .annotate(service=service_expression())
        .filter(q or Q())
    )


def money(value: Any) -> float:
    """A cost to its 8 decimal places: SQLite sums decimals as floats."""
    return round(float(value or 0), 8)


def exact(calls) -> dict[str, Any]:
    found = calls.aggregate(
        n=Count("id"), errors=Count("id", filter=Q(status="error")), input=Sum("input_tokens"),
        output=Sum("output_tokens"), cost=Sum("cost"), latency=Sum("latency_ms"),
    )  # fmt: skip
    return {
        "requests": found["n"],
        "errors": found["errors"],
        "inputTokens": found["input"] or 0,
        "outputTokens": found["output"] or 0,
        "cost": money(found["cost"]),
        "latency": found["latency"],
    }


def answered(figures: dict[str, Any]) -> dict[str, Any]:
    latency = figures["avgLatency"] * figures["requests"] if figures["requests"] else None
    return {
        "requests": figures["requests"], "errors": figures["errorCount"],
        "inputTokens": figures["inputTokens"], "outputTokens": figures["outputTokens"],
        "cost": money(figures["cost"]), "latency": latency,
    }  # fmt: skip


def assert_same(figures: dict[str, Any], expected: dict[str, Any]) -> None:
    got = answered(figures)
    latency = got.pop("latency"), expected.pop("latency")
    assert got == expected
    if latency[1] is not None:
        # avgLatency is rounded to the microsecond: the sum it implies is that close.
        assert latency[0] == pytest.approx(latency[1], abs=0.0005 * got["requests"] + 1e-6)


def test_usage_series_and_totals_equal_the_raw_records(calls, viewer):
    end = datetime.now(UTC)
    start = hour_now() - timedelta(hours=HOURS, minutes=-17)  # a partial first hour
    answer = get(viewer, "usage", period="hour", startDate=iso(start), endDate=iso(end))
    assert len(answer["series"]) == HOURS + 1
    for point in answer["series"]:
        at = datetime.fromisoformat(point["period"].replace("Z", "+00:00"))
        hour_start, hour_end = max(at, start), min(at + timedelta(hours=1), end)
        assert_same(point, exact(raw_calls(hour_start, hour_end)))
    totals = answer["totals"]
    expected = exact(raw_calls(start, end))
    assert totals["totalRequests"] == expected["requests"]
    assert money(totals["totalCost"]) == expected["cost"]
    assert totals["errorCount"] == expected["errors"]
    assert totals["totalTokens"] == expected["inputTokens"] + expected["outputTokens"]
    assert totals["errorRate"] == round(expected["errors"] / expected["requests"], 6)
    assert totals["avgCostPerRequest"] == pytest.approx(expected["cost"] / expected["requests"])
    day = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    assert sum(p["requests"] for p in day["series"]) == expected["requests"]
    assert day["totals"] == totals
    # The unversioned path (/api/analytics/) answers the same.
    legacy = viewer.get("/api/analytics/usage", {"period": "day", "startDate": iso(start),
                                                 "endDate": iso(end)})  # fmt: skip
    assert legacy.status_code == 200 and legacy.json()["totals"] == totals
    # The closed hours are read from the rollups, the pending ones from the raw records.
    pending = set(PendingHour.objects.values_list("hour", flat=True))
    HourlyRollup.objects.update(requests=F("requests") + 1)
    rows = HourlyRollup.objects.filter(hour__gte=start).exclude(hour__in=pending).count()
    again = get(viewer, "usage", period="day", startDate=iso(start), endDate=iso(end))
    assert rows and again["totals"]["totalRequests"] == expected["requests"] + rows


GROUP_COLUMNS = {"model": "model_name", "provider": "provider_name", "user": "user_id",
                 "key": "api_key_id", "workspace": "workspace_id", "service": "service",
                 "end_user": "end_user"}  # fmt: skip


@pytest.mark.parametrize(
    "filters",
    [{}, {"provider": "alpha"}, {"service": "build"}, {"workspace": 21, "status": "error"},
     {"end_user": "alice"}, {"tag": "team:growth"}, {"agent": 8}],
)  # fmt: skip
def test_costs_by_every_group_equal_the_raw_records(calls, viewer, filters):
    start, end = hour_now() - timedelta(hours=HOURS + 1), datetime.now(UTC)
    q = Q()
    for name, value in filters.items():
        if name == "tag":
            key, _, tag = value.partition(":")
            q &= Q(**{f"tags__{key}": tag})
        else:
            q &= Q(**{{"provider": "provider_name", "workspace": "workspace_id",
                       "agent": "agent_id"}.get(name, name): value})  # fmt: skip
    for group, column in GROUP_COLUMNS.items():
        answer = get(viewer, "costs", groupBy=group, startDate=iso(start), endDate=iso(end),
                     **filters)  # fmt: skip
        base = raw_calls(start, end, q)
        total = exact(base)
        assert money(answer["totalCost"]) == total["cost"]
        assert answer["totalRequests"] == total["requests"]
        if group == "end_user":
            base = base.exclude(end_user="")
        expected = {
            (None if row[column] is None else str(row[column])): row
            for row in base.values(column).annotate(n=Count("id"), cost=Sum("cost")).order_by()
        }
        got = {row["key"]: row for row in answer["breakdown"]}
        assert got.keys() == expected.keys(), group
        for key, row in got.items():
            assert (row["requests"], money(row["cost"])) == (
                expected[key]["n"],
                money(expected[key]["cost"]),
            ), (group, key)
    by_tag = get(viewer, "costs", groupBy="tag", startDate=iso(start), endDate=iso(end), **filters)
    expected_tags: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for found in raw_calls(start, end, q).values("tags", "cost"):
        for pair in found["tags"].items():
            expected_tags[":".join(pair)][0] += 1
            expected_tags[":".join(pair)][1] += found["cost"]
    assert {row["key"]: (row["requests"], money(row["cost"])) for row in by_tag["breakdown"]} == {
        key: (n, money(cost)) for key, (n, cost) in expected_tags.items()
    }


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def test_performance_percentiles_are_within_the_bound_and_counts_exact(calls, viewer):
    start, end = hour_now() - timedelta(hours=HOURS + 1), datetime.now(UTC)
    answer = get(viewer, "performance", period="day", startDate=iso(start), endDate=iso(end))
    assert answer["results"]
    checked = 0
    for group in answer["results"]:
        pair = raw_calls(start, end, Q(provider_name=group["provider"],
                                       model_name=group["model"]))  # fmt: skip
        figures = exact(pair)
        assert (group["requests"], group["errorCount"]) == (figures["requests"], figures["errors"])
        assert sum(p["requests"] for p in group["series"]) == figures["requests"]
        for column, field in (
            ("latency", "latency_ms"),
            ("timeToFirstToken", "time_to_first_token_ms"),
        ):
            values = [v for v in pair.values_list(field, flat=True) if v is not None]
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                true = nearest_rank(values, q)
                if histograms.LOW_MS <= true < histograms.HIGH_MS:
                    assert abs(group[column][name] - true) / true <= histograms.ERROR_BOUND
                    checked += 1
    assert checked >= 20


def test_realtime_answers_the_last_hour_and_day(calls, viewer):
    day = get(viewer, "realtime", timeRange="day")
    end = datetime.fromisoformat(day["end"].replace("Z", "+00:00"))
    expected = exact(raw_calls(end - timedelta(days=1), end))
    assert (day["requests"], money(day["cost"])) == (expected["requests"], expected["cost"])
    assert sum(row["requests"] for row in day["byModel"]) == expected["requests"]
    hour = get(viewer, "realtime", timeRange="hour", provider="beta")
    end = datetime.fromisoformat(hour["end"].replace("Z", "+00:00"))
    expected = exact(raw_calls(end - timedelta(hours=1), end, Q(provider_name="beta")))
    assert (hour["requests"], money(hour["cost"])) == (expected["requests"], expected["cost"])


def test_export_streams_raw_records_and_rollups(calls, viewer):
    start, end = hour_now() - timedelta(hours=HOURS + 1), datetime.now(UTC)
    response = viewer.get(
        "/api/v1/analytics/export",
        {
            "format": "csv",
            "source": "raw",
            "startDate": iso(start),
            "endDate": iso(end),
            "provider": "alpha",
        },
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = LlmCall.objects.filter(created_at__gte=start, created_at__lt=end,
                                      provider_name="alpha")  # fmt: skip
    assert len(rows) == expected.count()
    assert money(sum(Decimal(r["cost"]) for r in rows)) == money(
        expected.aggregate(c=Sum("cost"))["c"]
    )
    response = viewer.get("/api/v1/analytics/export", {"format": "json", "startDate": iso(start),
                                                       "endDate": iso(end)})  # fmt: skip
    assert response["Content-Type"] == "application/json"
    rolled = json.loads(b"".join(response.streaming_content))
    assert (
        sum(r["requests"] for r in rolled) == HourlyRollup.objects.aggregate(n=Sum("requests"))["n"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "field"),
    [("usage", {"period": "year"}, "period"), ("costs", {"groupBy": "team"}, "groupBy"),
     ("costs", {"startDate": "yesterday"}, "startDate"), ("costs", {"tag": "no tag"}, "tag"),
     ("realtime", {"timeRange": "week"}, "timeRange"), ("export", {"format": "xml"}, "format"),
     ("performance", {"key": "x"}, "key"),
     ("usage", {"startDate": "2026-02-01", "endDate": "2026-01-01"}, "startDate")],
)  # fmt: skip
def test_bad_parameters_are_a_400_naming_them(viewer, path, params, field):
    response = viewer.get(f"/api/v1/analytics/{path}", params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


@pytest.mark.django_db
def test_viewers_read_analytics_and_strangers_do_not(viewer):
    for path in ("realtime", "usage", "costs", "performance", "export"):
        assert viewer.get(f"/api/v1/analytics/{path}").status_code == 200
        assert APIClient().get(f"/api/v1/analytics/{path}").status_code == 401
        assert viewer.post(f"/api/v1/analytics/{path}").status_code in (403, 405)
