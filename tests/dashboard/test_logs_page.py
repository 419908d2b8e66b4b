"""The Logs page in Chromium against the real daphne: the kept lines on opening, a line the
server logs afterwards appears without a reload, the filters hide and show lines, pausing holds
new lines back until Resume, INFO lines shown on demand from every process, the lines shown
exported. Only operators and admins may read it."""

from __future__ import annotations

import logging
import re
import time
import uuid

import httpx
import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.core.logging import live_log_key, live_log_recent
from apps.core.redis import redis_client
from apps.core.services import platform_settings_update
from tests.dashboard.conftest import member
from tests.dashboard.test_live import live, mark_the_page, same_page
from tests.support.browser import screenshot
from tests.support.processes import AsgiServer

URL = "/admin/logs/"


@pytest.fixture(autouse=True)
def no_kept_lines():
    redis_client().delete(live_log_key())
    yield
    redis_client().delete(live_log_key())


def server_warns(server: AsgiServer, words: str, request_id: str | None = None) -> str:
    """Make the server log a WARNING line of its own: Django logs each 404 as "Not Found"."""
    path = f"/no-such-page/{words}/"
    headers = {"X-Request-ID": request_id} if request_id else {}
    assert httpx.get(f"{server.url}{path}", headers=headers).status_code == 404
    return path


def kept(words: str, timeout: float = 10.0) -> dict:
    """The kept line saying ``words``, once the server shipped it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in live_log_recent():
            if words in line["message"]:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no kept log line says {words!r}")


def line(page: Page, words: str):
    return page.locator("#log-lines > li", has_text=words)


@pytest.mark.django_db
def test_only_operators_and_admins_may_read_the_logs(client_as):
    assert client_as(Role.VIEWER).get(URL).status_code == 403
    assert client_as(Role.OPERATOR).get(URL).status_code == 200
    assert client_as(Role.ADMIN).get(URL).status_code == 200
    viewer = client_as(Role.VIEWER).get("/admin/").content.decode()
    assert URL not in viewer


@pytest.mark.django_db
def test_the_page_shows_the_kept_lines_oldest_first_even_without_redis(monkeypatch):
    logger = logging.getLogger("tests.logs_page")
    logger.warning("first kept line")
    logger.error("second kept line")
    kept("second kept line")
    client = Client()
    client.force_login(member(Role.OPERATOR))
    html = client.get(URL).content.decode()
    assert html.index("first kept line") < html.index("second kept line")

    def down():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("apps.core.redis.redis_client", down)
    response = client.get(URL)
    assert response.status_code == 200
    assert "No log lines yet" in response.content.decode()


def test_a_celery_worker_ships_its_lines_too(celery_worker):
    """The worker replaces the root logger's handlers with its own; the live log joins them."""
    from orchestra.celery import app

    name = f"tests.no-such-task-{uuid.uuid4().hex[:8]}"
    app.send_task(name)  # the worker logs an ERROR: an unregistered task
    # Once, under a full parallel run, the worker received the message only 20 s after it
    # was sent (its log says when); the wait is for the shipping, not for the broker.
    line = kept(name, timeout=60)
    assert line["level"] == "ERROR" and line["logger"].startswith("celery.worker")


@pytest.mark.django_db(transaction=True)
def test_lines_arrive_live_and_filter_and_pause(logged_in_page, asgi_server, browser_errors):
    token = uuid.uuid4().hex[:8]
    server_warns(asgi_server, f"before-{token}")
    kept(f"before-{token}")

    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto("/admin/")
    page.locator("#nav-sidebar").get_by_role("link", name="Logs", exact=True).click()
    expect(line(page, f"before-{token}")).to_be_visible()
    expect(line(page, f"before-{token}").locator(".log-level")).to_have_text("WARNING")
    live(page)
    mark_the_page(page)

    # A new line, logged by the server process on a request of its own.
    request_id = f"req-{token}"
    server_warns(asgi_server, f"live-{token}", request_id=request_id)
    fresh = line(page, f"live-{token}")
    expect(fresh).to_be_visible(timeout=15_000)
    expect(fresh).to_contain_text("django.request")
    expect(fresh.locator(".log-request-id")).to_have_text(request_id)
    expect(page.locator("#log-lines > li").last).to_contain_text(f"live-{token}")

    # An ERROR line, from this process, for the level filter.
    logging.getLogger("tests.logs_page").error("the database is on fire %s", token)
    burning = line(page, f"on fire {token}")
    expect(burning).to_be_visible(timeout=15_000)

    level = page.get_by_label("Level")
    level.select_option("ERROR")
    expect(burning).to_be_visible()
    expect(fresh).to_be_hidden()
    expect(line(page, f"before-{token}")).to_be_hidden()
    level.select_option("")
    expect(fresh).to_be_visible()

    search = page.get_by_role("searchbox", name="Search", exact=True)
    search.fill(f"live-{token}")
    expect(fresh).to_be_visible()
    expect(burning).to_be_hidden()
    expect(page.locator("#logs-count")).to_contain_text("1 of")
    search.fill("")
    expect(burning).to_be_visible()

    fresh.locator(".log-request-id").click()  # shows that request's lines only
    expect(page.get_by_label("Request id")).to_have_value(request_id)
    expect(fresh).to_be_visible()
    expect(burning).to_be_hidden()
    page.get_by_label("Request id").fill("")
    expect(burning).to_be_visible()

    pause = page.get_by_role("button", name="Pause")
    pause.click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    server_warns(asgi_server, f"paused-{token}")
    kept(f"paused-{token}")
    expect(page.locator("#logs-count")).to_contain_text("paused, 1 new held back")
    expect(line(page, f"paused-{token}")).to_have_count(0)

    page.get_by_role("button", name="Resume").click()
    expect(line(page, f"paused-{token}")).to_be_visible()
    expect(page.locator("#logs-count")).not_to_contain_text(re.compile("paused"))
    assert same_page(page)
    assert browser_errors.console_errors == []


@pytest.fixture
def live_level_restored():
    """Every process follows the live log's level: it must not stay at INFO for later tests."""
    yield
    platform_settings_update(live_log_level="")


@pytest.mark.django_db(transaction=True)
def test_info_lines_on_demand_from_every_process_and_export_of_the_lines_shown(
    logged_in_page, asgi_server, celery_worker, browser_errors, live_level_restored
):
    from orchestra.celery import app

    token = uuid.uuid4().hex[:8]
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    live(page)
    expect(page.locator(".dash-intro")).to_contain_text("Lines at WARNING and above")

    # A task's INFO lines ("received", "succeeded") are not published at WARNING.
    app.send_task("dashboard.publish_figures", task_id=f"before-{token}")
    server_warns(asgi_server, f"marker-{token}")
    expect(line(page, f"marker-{token}")).to_be_visible(timeout=15_000)
    assert not [x for x in live_log_recent() if f"before-{token}" in x["message"]]

    page.get_by_role("button", name="Show INFO lines too").click()
    expect(page.locator(".dash-intro")).to_contain_text("Lines at INFO and above")
    expect(page.get_by_role("button", name="Stop showing INFO lines")).to_be_visible()
    live(page)
    # The worker (another process) follows at once: its INFO lines arrive live.
    deadline = time.monotonic() + 20
    while not line(page, f"after-{token}").count() and time.monotonic() < deadline:
        app.send_task("dashboard.publish_figures", task_id=f"after-{token}-{time.monotonic()}")
        time.sleep(1)
    info = line(page, f"after-{token}").first
    expect(info).to_be_visible()
    expect(info.locator(".log-level")).to_have_text("INFO")
    expect(page.get_by_label("Level")).to_contain_text("Warning and above")
    screenshot(page, "logs-info")

    # Export: the lines shown, and only those.
    page.get_by_role("searchbox", name="Search", exact=True).fill(token)
    page.get_by_label("Level").select_option("WARNING")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    download = download_info.value
    assert download.suggested_filename.startswith("orchestra-logs-")
    exported = download.path().read_text(encoding="utf-8").splitlines()
    assert len(exported) == 1 and f"marker-{token}" in exported[0], exported
    assert " WARNING django.request " in exported[0]

    page.get_by_role("button", name="Stop showing INFO lines").click()
    expect(page.locator(".dash-intro")).to_contain_text("Lines at WARNING and above")
    assert browser_errors.console_errors == []


@pytest.mark.django_db
def test_only_those_who_may_change_the_platform_settings_show_info_lines(client_as):
    assert client_as(Role.VIEWER).post(URL, {"live_log_level": "INFO"}).status_code == 403
    operator = client_as(Role.OPERATOR)
    assert operator.post(URL, {"live_log_level": "DEBUG"}).status_code == 400
    assert operator.post(URL, {"live_log_level": "INFO"}).status_code == 302
    assert "Lines at INFO and above" in operator.get(URL).content.decode()
    assert operator.post(URL, {"live_log_level": ""}).status_code == 302
    assert "Lines at WARNING and above" in operator.get(URL).content.decode()
