"""The site's pages carry a Content-Security-Policy they work under, in Chromium against the real
daphne: the dashboard (unfold's Alpine.js, the live WebSocket) and the API docs run without a
violation, and a script the policy does not allow is refused. Every other browser test fails on
a violation too (``tests/support/browser.py``)."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.core.middleware import csp_header
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

INJECT_INLINE_SCRIPT = """() => new Promise(resolve => {
    document.addEventListener("securitypolicyviolation",
        event => resolve(event.effectiveDirective), {once: true});
    const script = document.createElement("script");
    script.textContent = "window.injected = true";
    document.body.appendChild(script);
    setTimeout(() => resolve(null), 2000);
})"""


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/"])
def test_pages_carry_the_policy_and_its_companions(asgi_server, path):
    response = httpx.get(f"{asgi_server.url}{path}", timeout=10)

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy == csp_header(settings.SECURE_CSP)
    assert "script-src 'self' 'unsafe-eval';" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_api_docs_start_up_script_is_a_file_not_inline(asgi_server):
    page = httpx.get(f"{asgi_server.url}/api/docs/", timeout=10).text
    script = httpx.get(f"{asgi_server.url}/api/docs/?script=", timeout=10)

    assert "<script>" not in page
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.text


def test_an_injected_inline_script_is_refused_and_fails_the_browser_check(
    logged_in_page, browser_errors
):
    page: Page = logged_in_page(Role.OPERATOR, staff=True)
    page.goto("/admin/")

    directive = page.evaluate(INJECT_INLINE_SCRIPT)

    assert directive == "script-src-elem"
    assert page.evaluate("window.injected === undefined")
    assert any("script-src" in line for line in browser_errors.csp_violations)
    browser_errors.csp_violations.clear()  # expected here; any other test would fail on it


def test_a_connection_to_another_origin_is_refused(logged_in_page, browser_errors):
    page: Page = logged_in_page(Role.OPERATOR, staff=True)
    page.goto("/admin/")

    outcome = page.evaluate(
        """() => fetch("http://127.0.0.2:9/").then(() => "sent", error => error.name)"""
    )

    assert outcome == "TypeError"
    assert any("connect-src" in line for line in browser_errors.csp_violations)
    browser_errors.csp_violations.clear()


def test_home_runs_alpine_and_its_websocket_under_the_policy(logged_in_page, browser_errors):
    page: Page = logged_in_page(Role.OPERATOR, staff=True)
    page.goto("/admin/")

    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    # Alpine (x-data on <html>) evaluated its expressions: it removes x-cloak once it has.
    expect(page.locator("html")).not_to_have_attribute("x-cloak", "")
    screenshot(page, "home-csp")
    assert browser_errors.csp_violations == []


def test_the_api_docs_render_under_the_policy(page: Page, browser_errors):
    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    screenshot(page, "api-docs-csp")
    assert browser_errors.csp_violations == []
