"""One truth about a provider, in Chromium against the real daphne and fake upstreams: a circuit
opened by real failures makes the provider unhealthy on Home, the Circuits page and the
Providers page alike; resetting it is announced on Home; a Test sets the health badge."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.providers.models import HealthStatus, Provider
from apps.providers.selectors import circuit_breaker_list
from apps.providers.services import provider_probe
from tests.dashboard.conftest import member
from tests.support.browser import screenshot
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def circuit_of(name: str) -> str:
    return circuit_breaker_list(names=[name])[0].state


@pytest.fixture
def a_open(two_providers, gateway, upstream_a):
    """Both providers probed healthy, then a's circuit opened by its own 500s."""
    routing(breaker_failure_threshold=3, breaker_cooldown_seconds=300, breaker_min_requests=1000)
    two_providers["a"].max_retries = 0
    two_providers["a"].save()
    for provider in two_providers.values():
        assert provider_probe(provider=provider).health_status == HealthStatus.OK
    upstream_a.configure(status=500)
    for _ in range(3):
        gateway.chat.completions.create(model="chat", messages=HELLO)  # b answers
    assert circuit_of("a") == "open"
    return two_providers


def test_an_open_circuit_is_unhealthy_on_every_page_and_its_reset_is_announced(
    a_open, logged_in_page, browser_errors
):
    home: Page = logged_in_page(user=member(Role.VIEWER))
    home.goto("/admin/")
    card = home.locator('[data-health="providers"]')
    expect(card.locator(".pill")).to_have_text("degraded")
    expect(card).to_contain_text("1/2 providers healthy; failing: a (circuit open)")
    screenshot(home, "provider-state-home-circuit-open")

    page: Page = logged_in_page(user=member(Role.OPERATOR))
    for url, name in (("/admin/circuits/", "circuits"), ("/admin/config/", "config")):
        page.goto(url)
        expect(page.locator('tr[data-provider="a"] .circuit-state')).to_have_text("open")
        expect(page.locator('tr[data-provider="a"] .provider-health')).to_have_text("circuit open")
        expect(page.locator('tr[data-provider="a"] .provider-health')).to_have_attribute(
            "data-status", "error"
        )
        expect(page.locator('tr[data-provider="b"] .provider-health')).to_have_text("ok")
        screenshot(page, f"provider-state-{name}-circuit-open")

    expect(home.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)
    page.goto("/admin/circuits/")
    page.get_by_role("button", name="Reset the circuit of a").click()
    expect(page.get_by_text("The circuit of a was reset: it is closed.")).to_be_visible()
    expect(page.locator('tr[data-provider="a"] .provider-health')).to_have_text("ok")
    latest = home.locator("#recent-alerts > li").nth(0)
    expect(latest).to_contain_text("Circuit closed: a")
    screenshot(home, "provider-state-home-circuit-closed")
    assert browser_errors.console_errors == []


def test_a_successful_test_sets_the_health_badge(two_providers, logged_in_page, browser_errors):
    assert Provider.objects.get(name="a").health_status == HealthStatus.UNKNOWN
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto("/admin/config/")
    badge = page.locator('tr[data-provider="a"] .provider-health')
    expect(badge).to_have_text("unknown")

    page.get_by_role("button", name="Test the connection of a").click()
    expect(page.get_by_text("Test of a:")).to_contain_text("answered in")
    expect(badge).to_have_text("ok")
    expect(badge).to_have_attribute("data-status", "ok")
    screenshot(page, "provider-state-config-tested")
    tested = Provider.objects.get(name="a")
    assert tested.health_status == HealthStatus.OK and tested.health_checked_at is not None
    assert circuit_of("a") == "closed"
    assert browser_errors.console_errors == []
