"""The Analytics page: viewers read it; its totals, series, top lists and CSV are the analytics
API's figures for the same range and filters."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.accounts.services import api_key_create
from apps.analytics.services import ROLL_DELAY, rollups_roll_pending
from tests.dashboard.conftest import member
from tests.support.factories import api_key_issue, bearer

from .generated import call, generate, hour_now, store

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/usage-analytics/"


@pytest.fixture
def calls() -> None:
    """600 calls over the last 30 hours, the closed ones rolled up, and a few in the open hour."""
    store(generate(600, hours=30))
    rollups_roll_pending(now=hour_now() + ROLL_DELAY)
    rng = random.Random(3)
    store([call(rng, timezone.now() - timedelta(seconds=30)) for _ in range(5)])


@pytest.fixture
def viewer() -> Client:
    client = Client()
    client.force_login(member(Role.VIEWER))
    return client


def api(path: str, **params: Any) -> dict[str, Any]:
    client = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
    response = client.get(f"/api/v1/analytics/{path}", params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def chart_of(content: bytes) -> dict[str, Any]:
    text = content.decode()
    start = text.index('<script id="analytics-chart-data" type="application/json">')
    body = text[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_anonymous_is_sent_to_the_login():
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_a_viewer_reads_the_figures_of_the_api(viewer, calls):
    response = viewer.get(PAGE, {"range": "24h"})
    assert response.status_code == 200
    overview = response.context["overview"]
    start, end = overview["start"], overview["end"]
    usage = api("usage", period="hour", startDate=start, endDate=end)
    assert overview["totals"]["totalRequests"] == usage["totals"]["totalRequests"] > 0
    assert overview["totals"]["totalCost"] == pytest.approx(usage["totals"]["totalCost"])
    chart = chart_of(response.content)
    assert sum(chart["requests"]) == usage["totals"]["totalRequests"]
    assert sum(chart["errors"]) == usage["totals"]["errorCount"]
    assert any(p is not None for p in chart["p95"])
    costs = api("costs", groupBy="model", startDate=start, endDate=end)
    shown = [(row["key"], row["cost"]) for row in overview["top"]["model"]]
    assert shown == [(row["key"], row["cost"]) for row in costs["breakdown"]][:10]
    text = response.content.decode()
    for title in ("Models", "Providers", "Users", "End users", "API keys", "Workspaces"):
        assert f"<h3>{title}</h3>" in text
    assert "alice" in text  # an end user among the top ones
    assert 'src="/static/analytics/analytics.js"' in text


def test_a_filter_narrows_every_figure(viewer, calls):
    response = viewer.get(PAGE, {"range": "7d", "provider": "beta", "tag": "team:growth"})
    assert response.status_code == 200
    overview = response.context["overview"]
    usage = api(
        "usage", period="day", startDate=overview["start"], endDate=overview["end"],
        provider="beta", tag="team:growth",
    )  # fmt: skip
    assert 0 < overview["totals"]["totalRequests"] == usage["totals"]["totalRequests"]
    assert [row["key"] for row in overview["top"]["provider"]] == ["beta"]
    assert overview["period"] == "day"


def test_the_csv_holds_the_shown_series(viewer, calls):
    response = viewer.get(PAGE, {"range": "24h", "provider": "alpha", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    shown = viewer.get(PAGE, {"range": "24h", "provider": "alpha"}).context["overview"]["totals"]
    assert sum(int(r["requests"]) for r in rows) == shown["totalRequests"] > 0
    assert sum(int(r["total_tokens"]) for r in rows) == shown["totalTokens"]
    assert sum(Decimal(r["cost"]) for r in rows) == pytest.approx(Decimal(str(shown["cost"])))


def test_the_fragment_is_the_part_that_updates(viewer, calls):
    page = viewer.get(PAGE, {"range": "1h"})
    before = page.context["overview"]["totals"]["requests"]
    assert 'data-fragment-url="?range=1h&amp;fragment=1"' in page.content.decode()
    rng = random.Random(4)
    store([call(rng, timezone.now() - timedelta(seconds=5), status="success") for _ in range(3)])
    fragment = viewer.get(PAGE, {"range": "1h", "fragment": "1"})
    assert fragment.status_code == 200
    assert fragment.context["overview"]["totals"]["requests"] == before + 3
    assert b"analytics-filters" not in fragment.content
    assert b"analytics-chart-data" in fragment.content


def test_a_custom_range_includes_its_last_day_and_does_not_refresh(viewer, calls):
    today = timezone.now().date()
    response = viewer.get(
        PAGE,
        {"range": "custom", "startDate": str(today - timedelta(days=2)), "endDate": str(today)},
    )
    assert response.status_code == 200
    overview = response.context["overview"]
    assert overview["end"].startswith(str(today + timedelta(days=1)))
    assert overview["period"] == "day"
    assert "data-fragment-url" not in response.content.decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "2y"}, "range"),
        ({"key": "abc"}, "key"),
        ({"tag": "no-colon"}, "tag"),
        ({"range": "custom", "startDate": "2026-02-01", "endDate": "2026-01-01"}, "startDate"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(viewer, params, field):
    response = viewer.get(PAGE, params)
    assert response.status_code == 400
    assert field in response.context["errors"]
    assert f"<strong>{field}</strong>" in response.content.decode()


def test_the_key_and_user_pages_show_their_spend_this_month():
    person = member(Role.VIEWER, username="mia")
    key, _ = api_key_create(user=person, name="laptop")
    now = timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(6)
    mine = {"api_key_id": key.pk, "user_id": person.pk, "status": "success"}
    store(
        [
            call(rng, now - timedelta(seconds=20), cost="0.25", **mine),
            call(rng, month, cost="1.5", **mine),  # the month's first moment counts
            call(rng, month - timedelta(seconds=1), cost="7", **mine),  # last month's does not
            call(rng, now - timedelta(seconds=20), cost="3", api_key_id=None, user_id=None),
        ]
    )
    admin = Client()
    admin.force_login(member(Role.ADMIN))
    for url in (
        f"/admin/accounts/apikey/{key.pk}/change/",
        f"/admin/auth/user/{person.pk}/change/",
    ):
        response = admin.get(url)
        assert response.status_code == 200
        assert "Spend this month: $1.7500" in response.content.decode(), url
    assert "Figures" not in admin.get("/admin/accounts/apikey/add/").content.decode()


def test_the_series_has_a_point_for_every_period_of_the_range(viewer, calls):
    chart = chart_of(viewer.get(PAGE, {"range": "7d"}).content)
    assert len(chart["labels"]) == 8  # 7 days from now: today and 7 days back, by day
    assert chart["labels"] == sorted(chart["labels"])
    assert chart["requests"][0] == 0  # no calls a week ago
    assert chart["p50"][0] is None
