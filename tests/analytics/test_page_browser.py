"""The Analytics page in Chromium, as a viewer uses it: opens it from the sidebar, picks a
range, narrows it to a provider, sees the charts drawn, downloads the CSV (its rows add up to
the shown totals), sees the open hour update without a reload, and reads it on a phone."""

from __future__ import annotations

import csv
import random
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.analytics.services import ROLL_DELAY, rollups_roll_pending
from apps.providers.models import Provider
from tests.support.browser import PHONE, screenshot

from .generated import PROVIDERS, call, generate, hour_now, store

pytestmark = pytest.mark.django_db(transaction=True)

# Chart.js draws on the canvas: count its painted pixels.
PAINTED = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
  return painted;
}"""


@pytest.fixture
def calls() -> None:
    for name in PROVIDERS:
        Provider.objects.create(
            name=name, kind="openai_compatible", base_url="http://127.0.0.1:9/v1"
        )
    store(generate(800, hours=150))
    rollups_roll_pending(now=hour_now() + ROLL_DELAY)


def shown(page: Page, name: str) -> str:
    return page.locator(f'#analytics-totals [data-total="{name}"]').inner_text().strip()


def test_a_viewer_reads_spend_over_a_range(logged_in_page, calls, browser_errors, tmp_path):
    page: Page = logged_in_page(Role.VIEWER, staff=True)
    page.clock.install()  # the 30-second refresh, fast-forwarded below
    page.goto("/admin/")
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics")).to_be_visible()

    page.get_by_label("7 days").check()  # submits the form
    page.wait_for_url("**range=7d**")
    page.get_by_label("Provider").select_option("alpha")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_url("**provider=alpha**")
    expect(page.locator('[data-group="provider"] tbody tr')).to_have_count(1)
    expect(page.locator('[data-group="provider"] tbody')).to_contain_text("alpha")

    page.wait_for_function("window.OrchestraAnalytics && window.OrchestraAnalytics.charts.cost")
    for name in ("requests", "tokens", "cost", "latency"):
        canvas = page.locator(f'canvas[data-chart="{name}"]')
        assert page.evaluate(PAINTED, canvas.element_handle()) > 500, name
    requests = int(shown(page, "requests"))
    assert requests > 0
    cost = Decimal(shown(page, "cost").lstrip("$"))

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= 7  # one a day
    assert sum(int(row["requests"]) for row in rows) == requests
    assert sum(int(row["total_tokens"]) for row in rows) == int(shown(page, "tokens"))
    assert round(sum(Decimal(row["cost"]) for row in rows), 4) == cost

    # The open hour: three more calls of alpha show without a reload.
    rng = random.Random(5)
    more = [call(rng, timezone.now() - timedelta(seconds=5), provider_name="alpha",
                 model_name="gpt-a", status="success") for _ in range(3)]  # fmt: skip
    store(more)
    page.clock.fast_forward("00:31")
    expect(page.locator('#analytics-totals [data-total="requests"]')).to_have_text(
        str(requests + 3)
    )
    assert page.evaluate("window.OrchestraAnalytics.refreshed") >= 1

    page.clock.resume()  # Chart.js resizes its charts on animation frames
    page.set_viewport_size(PHONE)
    page.wait_for_function(f"document.documentElement.scrollWidth <= {PHONE['width']}")
    page.wait_for_timeout(300)  # the charts redrawn at their new size
    screenshot(page, "analytics-7d-alpha")
    assert shown(page, "requests") == str(requests + 3)
    assert browser_errors.console_errors == []


def test_an_anonymous_visitor_is_sent_to_log_in(page: Page):
    page.goto("/admin/usage-analytics/")
    expect(page).to_have_url(re.compile(r"/login/"))
