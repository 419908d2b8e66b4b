"""The Alerts page and Home's open alerts, in Chromium against a real daphne: alerts arrive
live, an operator acknowledges one, a resolved one leaves Home."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.alerts.services import alert_raise, alert_resolve
from tests.dashboard.conftest import member
from tests.support.browser import PHONE, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def live(page: Page) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)


def test_alerts_arrive_live_are_acknowledged_and_leave_home_when_resolved(
    logged_in_page, browser_errors
):
    first, _ = alert_raise(
        cause="health:disk",
        kind="health",
        title="Health check Disk: degraded",
        detail="var has 4% free (less than 10%)",
    )
    operator = member(Role.OPERATOR)
    page: Page = logged_in_page(user=operator)
    page.goto("/admin/alert-list/")
    live(page)
    row = page.locator(f"#alert-{first.pk}")
    expect(row).to_contain_text("var has 4% free")

    second, _ = alert_raise(
        cause="circuit_open:a",
        kind="circuit_open",
        severity="critical",
        title="Circuit of a open for 6 min",
        detail="connection refused",
    )
    expect(page.locator(f"#alert-{second.pk}")).to_contain_text("Circuit of a open for 6 min")
    expect(page.locator("#alerts-open-count")).to_have_text("2")

    row.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Acknowledged: Health check Disk: degraded")).to_be_visible()
    expect(page.locator(f"#alert-{first.pk}")).to_contain_text("Acknowledged")
    expect(page.locator(f"#alert-{first.pk}")).to_contain_text(f"by {operator.username}")
    screenshot(page, "alerts-page")
    page.set_viewport_size(PHONE)
    wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1], f"the Alerts page sticks out sideways at phone width: {wide}"

    home = logged_in_page(user=member(Role.VIEWER))
    home.goto("/admin/")
    live(home)
    opened = home.locator("#open-alerts > li")
    expect(opened).to_have_count(2)
    expect(home.locator(f'#open-alerts [data-alert="{first.pk}"]')).to_contain_text("acknowledged")
    alert_resolve(cause="circuit_open:a")
    expect(opened).to_have_count(1)
    expect(home.locator("#recent-alerts > li").first).to_contain_text(
        "Resolved: Circuit of a open for 6 min"
    )
    screenshot(home, "alerts-home")
    viewer = logged_in_page(user=member(Role.VIEWER))
    viewer.goto("/admin/alert-list/?status=")
    expect(viewer.locator("#alerts-list-part")).to_contain_text("Circuit of a open")
    expect(viewer.get_by_role("button", name="Acknowledge")).to_have_count(0)
    assert browser_errors.console_errors == []
