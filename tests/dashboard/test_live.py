"""Home is live, in Chromium against a real daphne and a real Celery worker: alerts and figures
arrive over the WebSocket without a reload, and the client outlives the server going away."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.core.events import publish
from apps.dashboard.tasks import publish_figures
from apps.providers.models import LlmCall
from tests.dashboard.conftest import call_record, member
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)


def raise_alert(title: str, severity: str = "warning") -> None:
    publish("alerts", "alert.raised", {"title": title, "severity": severity})


def live(page: Page) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)


def mark_the_page(page: Page) -> None:
    """A reload would lose this: it proves what follows happened in the same page."""
    page.evaluate("window.sameDocument = true")


def same_page(page: Page) -> bool:
    return bool(page.evaluate("window.sameDocument === true"))


def test_a_new_alert_appears_on_home_without_a_reload(logged_in_page, browser_errors):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")
    expect(page.get_by_text("No alerts yet")).to_be_visible()
    live(page)
    mark_the_page(page)

    raise_alert("Budget of team A is 90% spent")
    publish("alerts", "circuit.opened", {"provider": "beta", "error": "connection refused"})

    alerts = page.locator("#recent-alerts > li")
    expect(alerts).to_have_count(2)
    expect(alerts.nth(0)).to_contain_text("Circuit opened: beta")
    expect(alerts.nth(0)).to_contain_text("connection refused")
    expect(alerts.nth(1)).to_contain_text("Budget of team A is 90% spent")
    expect(alerts.nth(1).locator(".pill")).to_have_text("warning")
    expect(page.get_by_text("No alerts yet")).to_be_hidden()
    assert same_page(page)
    assert browser_errors.console_errors == []


def test_figures_update_live_and_alerts_are_kept_for_the_next_visit(
    logged_in_page, celery_worker, browser_errors
):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")
    live(page)
    requests = page.locator('[data-figure="hour.requests"]')
    expect(requests).to_have_text("0")
    mark_the_page(page)

    LlmCall.objects.bulk_create([call_record(latency_ms=200) for _ in range(3)])
    publish_figures.delay()  # what beat does every 5 s, in the real worker
    expect(requests).to_have_text("3", timeout=15_000)
    expect(page.locator('[data-figure="hour.p50"]')).to_have_text("200 ms")
    expect(page.locator('[data-health="celery"] .pill')).to_have_text("ok")
    assert same_page(page)

    # The worker now keeps the alerts channel: a page opened later lists what it missed.
    raise_alert("Kept for later", "critical")
    expect(page.locator("#recent-alerts")).to_contain_text("Kept for later")
    later = logged_in_page(user=member(Role.OPERATOR))
    for _ in range(50):
        later.goto("/admin/")
        if later.locator("#recent-alerts").get_by_text("Kept for later").count():
            break
        later.wait_for_timeout(200)
    expect(later.locator("#recent-alerts > li").first).to_contain_text("Kept for later")
    assert browser_errors.console_errors == []


@pytest.fixture
def own_daphne(server_env):
    """A daphne of this test's own, which it may kill; and a way to start another on its port."""
    servers: list[AsgiServer] = []

    def start(port: int | None = None) -> AsgiServer:
        server = AsgiServer(server_env, name="daphne-killed")
        if port is not None:
            server.port = port
            server.command[server.command.index("-p") + 1] = str(port)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def test_the_client_reconnects_and_subscribes_again_when_the_server_dies(
    logged_in_page, own_daphne, browser_errors
):
    server = own_daphne()
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto(f"{server.url}/admin/")
    live(page)
    mark_the_page(page)
    raise_alert("Before the crash")
    expect(page.locator("#recent-alerts")).to_contain_text("Before the crash")

    server.kill()  # SIGKILL: the connection drops with no goodbye
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_contain_text(re.compile(r"Reconnecting \(attempt \d of 5\)"))
    raise_alert("While the page was away")

    own_daphne(server.port)
    live(page)
    # Subscribed again from the last alert it got: the one it missed comes first.
    expect(page.locator("#recent-alerts")).to_contain_text("While the page was away")
    raise_alert("After the restart")
    expect(page.locator("#recent-alerts")).to_contain_text("After the restart")
    expect(page.locator("#recent-alerts > li").first).to_contain_text("After the restart")
    assert same_page(page)
    # The page lost its server for a while: that is expected, nothing else went wrong.
    # What the killed server left unanswered: the socket, and a file it was sending (the icon).
    assert all(
        "WebSocket" in error or "net::ERR_CONNECTION" in error
        for error in browser_errors.console_errors
    )


def test_after_five_failed_attempts_it_says_disconnected_and_retry_reconnects(
    logged_in_page, own_daphne, browser_errors
):
    server = own_daphne()
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.add_init_script("window.OrchestraLiveSettings = {baseDelay: 100}")
    attempts = []
    page.on("websocket", lambda socket: attempts.append(socket.url))
    page.goto(f"{server.url}/admin/")
    live(page)
    attempts.clear()

    server.kill()
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "disconnected", timeout=15_000)
    expect(status.get_by_role("status")).to_have_text("Disconnected")
    retry = status.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    assert len(attempts) == 5, attempts
    page.wait_for_timeout(1000)
    assert len(attempts) == 5, "no attempt after giving up"
    page.screenshot(path="var/screenshots/home-disconnected-desktop.png")

    own_daphne(server.port)
    retry.focus()
    page.keyboard.press("Enter")  # reachable and usable by keyboard
    live(page)
    expect(retry).to_be_hidden()
    raise_alert("Back after Retry")
    expect(page.locator("#recent-alerts")).to_contain_text("Back after Retry")
    # What the killed server left unanswered: the socket, and a file it was sending (the icon).
    assert all(
        "WebSocket" in error or "net::ERR_CONNECTION" in error
        for error in browser_errors.console_errors
    )
