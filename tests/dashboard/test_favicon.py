"""The favicon: linked from every page and answered at /favicon.ico, so no page load logs a
``Not Found`` warning (which reached the live log on every page)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_favicon_ico_redirects_to_a_served_icon_and_logs_no_warning(asgi_server):
    logged_before = asgi_server.output().count("Not Found: /favicon.ico")

    first = httpx.get(f"{asgi_server.url}/favicon.ico", timeout=10)
    icon = httpx.get(f"{asgi_server.url}/favicon.ico", timeout=10, follow_redirects=True)

    assert first.status_code == 301
    assert first.headers["location"].endswith("/dashboard/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")
    assert asgi_server.output().count("Not Found: /favicon.ico") == logged_before


def test_every_page_links_the_icon(page: Page, browser_errors):
    page.goto("/admin/login/")
    href = page.locator('link[rel="icon"]').get_attribute("href")

    assert href and href.endswith("/dashboard/favicon.svg")
    assert page.request.get(href).status == 200
    screenshot(page, "login-favicon")
    assert browser_errors.console_errors == []
