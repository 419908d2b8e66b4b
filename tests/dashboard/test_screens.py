"""Every page of the dashboard in Chromium, at desktop and phone width, screenshotted into
``var/screenshots/`` (look at them), with no JavaScript error and no provider key anywhere."""

from __future__ import annotations

import logging
import re
import time
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import ApiKey, Role
from apps.accounts.services import api_key_create
from apps.core.logging import live_log_key, live_log_recent
from apps.core.redis import redis_client
from apps.providers.models import CallRecordDeadLetter, CallStatus, LlmCall, LlmModel
from apps.providers.services import provider_create
from tests.dashboard.build_data import finished_build, waiting_build
from tests.dashboard.conftest import call_record, member, open_circuit
from tests.dashboard.test_experiment_page import canary_experiment
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-never-shown-0123456789abcdef"


@pytest.fixture
def platform_data():
    """A small platform: two providers (one with a key, one with an open circuit), models,
    call records with attempts, a refused record, an API key."""
    alpha = provider_create(name="alpha", kind="openai", api_key=SECRET)
    beta = provider_create(name="beta", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
    for provider in (alpha, beta):
        LlmModel.objects.create(
            provider=provider,
            name="fake-model",
            input_price_per_million=Decimal("1.5"),
            output_price_per_million=Decimal("6"),
            aliases=["chat"],
        )
    calls = [call_record(latency_ms=120 + i * 40, cost="0.0021") for i in range(12)]
    calls += [call_record(status=CallStatus.ERROR, provider_name="beta", latency_ms=2000)]
    LlmCall.objects.bulk_create(calls)
    CallRecordDeadLetter.objects.create(reason="value too long for type", payload="{}")
    open_circuit("beta", "connection refused: http://127.0.0.1:9/v1/chat/completions")
    log_lines()
    build = finished_build()
    waiting = waiting_build()
    return {
        "alpha": alpha,
        "beta": beta,
        "call": calls[0],
        "build": build,
        "waiting": waiting,
        "artifact": build.artifacts.get(kind="report", step__name="plan"),
        "experiment": canary_experiment(),
    }


def log_lines() -> None:
    """A few kept log lines for the Logs page, one with a traceback and one with a secret."""
    redis_client().delete(live_log_key())
    logger = logging.getLogger("apps.providers.llm.engine")
    logger.warning("deployment beta/fake-model rests for 30 s after a 429")
    logger.warning("calling alpha with Authorization: Bearer %s failed", SECRET)
    try:
        raise ConnectionError("connection refused: http://127.0.0.1:9/v1/chat/completions")
    except ConnectionError:
        logger.exception("provider beta failed; trying the next deployment")
    logging.getLogger("django.request").warning("Not Found: /favicon.ico")
    for _ in range(100):
        if len(live_log_recent()) >= 4:
            return
        time.sleep(0.05)
    raise AssertionError("the log lines were not kept")


def pages(data) -> list[tuple[str, str]]:
    call = data["call"]
    return [
        ("home", "/admin/"),
        ("playground", "/admin/playground/"),
        ("circuits", "/admin/circuits/"),
        ("config", "/admin/config/"),
        ("providers", "/admin/providers/provider/"),
        ("provider", f"/admin/providers/provider/{data['alpha'].pk}/change/"),
        ("provider-add", "/admin/providers/provider/add/"),
        ("models", "/admin/providers/llmmodel/"),
        ("routing-settings", "/admin/providers/routingsettings/"),
        ("llm-calls", "/admin/providers/llmcall/"),
        ("calls-filtered", "/admin/providers/llmcall/?provider_name=beta&status__exact=error"),
        ("llm-call", f"/admin/providers/llmcall/{call.pk}/change/"),
        ("refused-records", "/admin/providers/callrecorddeadletter/"),
        ("api-keys", "/admin/accounts/apikey/"),
        ("users", "/admin/auth/user/"),
        ("groups", "/admin/auth/group/"),
        ("scheduled-tasks", "/admin/django_celery_beat/periodictask/"),
        ("logs", "/admin/logs/"),
        ("build", "/admin/build/"),
        ("build-succeeded", f"/admin/build/{data['build'].pk}/"),
        ("build-waiting", f"/admin/build/{data['waiting'].pk}/"),
        ("agent-board", "/admin/agent-board/"),
        ("artifact-browser", "/admin/artifact-browser/"),
        ("artifact-report", f"/admin/artifact-browser/{data['artifact'].pk}/"),
        ("approval-queue", "/admin/approval-queue/"),
        ("experiment-board", "/admin/experiment-board/"),
        ("experiment", f"/admin/experiment-board/{data['experiment'].pk}/"),
        ("github-off", "/admin/github-issues/"),
        ("analytics", "/admin/usage-analytics/"),
    ]


def test_every_page_at_desktop_and_phone_width(
    logged_in_page, platform_data, browser_errors, celery_worker
):
    admin = member(Role.ADMIN, username="ada")
    api_key_create(user=admin, name="laptop")
    page: Page = logged_in_page(user=admin)
    for name, url in pages(platform_data):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        expect(page.locator("#content")).to_be_visible()
        assert SECRET not in page.content(), url
        screenshot(page, name)
    assert ApiKey.objects.count() == 1
    assert browser_errors.console_errors == []


def test_home_for_a_viewer_in_the_dark_and_the_phone_menu(
    logged_in_page, platform_data, browser_errors
):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    screenshot(page, "home-viewer")
    page.goto(f"/admin/providers/provider/{platform_data['alpha'].pk}/change/")
    screenshot(page, "provider-viewer")
    page.goto("/admin/circuits/")
    screenshot(page, "circuits-viewer")
    page.goto("/admin/")

    page.get_by_role("button", name=re.compile("^Account of")).click()
    page.get_by_role("button", name="Dark").click()
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    page.keyboard.press("Escape")
    screenshot(page, "home-dark")
    page.goto("/admin/config/")
    screenshot(page, "config-dark")
    page.goto(f"/admin/build/{platform_data['waiting'].pk}/")
    screenshot(page, "build-dark")
    page.goto("/admin/agent-board/")
    screenshot(page, "agent-board-dark")
    page.goto(f"/admin/artifact-browser/{platform_data['build'].artifacts.get(kind='code').pk}/")
    screenshot(page, "artifact-dark")
    page.goto("/admin/providers/provider/")
    screenshot(page, "providers-dark")

    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Menu").click()
    sidebar_link = page.locator("#nav-sidebar").get_by_role("link", name="Providers", exact=True)
    expect(sidebar_link).to_be_visible()
    expect(sidebar_link).to_have_attribute("aria-current", "page")
    page.screenshot(path="var/screenshots/menu-open-phone.png")
    page.keyboard.press("Escape")
    expect(sidebar_link).to_be_hidden()
    expect(page.get_by_role("button", name="Menu")).to_be_focused()
    assert browser_errors.console_errors == []
