"""Providers and routing, in Chromium against the real daphne and fake upstreams: circuits reset,
routing and log level changed from the page take effect (the log level in another process),
test connection says where it went and what failed, and a viewer may change nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.core.models import PlatformSettings
from apps.core.services import platform_settings_update
from apps.providers.catalog import catalog_name
from apps.providers.models import LlmModel, Provider, RoutingSettings
from apps.providers.selectors import circuit_breaker_list
from apps.providers.services import provider_create
from tests.dashboard.conftest import member, open_circuit
from tests.fake_upstream import FakeUpstream, free_port
from tests.support.browser import screenshot
from tests.support.processes import AsgiServer
from tests.support.providers import deploy, provider_for, routing

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/config/"
SECRET = "sk-config-page-never-shown-0123456789"


def circuit_of(name: str) -> str:
    return circuit_breaker_list(names=[name])[0].state


def ask(base_url: str, api_key: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=10,
    )


def test_an_operator_resets_an_open_circuit(logged_in_page, browser_errors):
    provider_create(name="beta", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
    open_circuit("beta", "connection refused by http://127.0.0.1:9/v1/chat/completions")
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    row = page.locator('tr[data-provider="beta"]')
    expect(row.locator(".circuit-state")).to_have_text("open")
    expect(row).to_contain_text("connection refused by http://127.0.0.1:9/v1/chat/completions")

    row.get_by_role("button", name="Reset circuit of beta").click()
    expect(page.get_by_text("The circuit of beta was reset: it is closed.")).to_be_visible()
    expect(row.locator(".circuit-state")).to_have_text("closed")
    expect(row.get_by_role("button", name="Reset circuit of beta")).to_have_count(0)
    assert circuit_of("beta") == "closed"
    assert browser_errors.console_errors == []


def test_a_new_strategy_routes_the_next_playground_answer_to_the_other_provider(
    logged_in_page,
    two_providers,
    operator_key,
    asgi_server,
    celery_worker,
    recorded_calls,
    browser_errors,
):
    # b is the cheaper; a comes first by priority.
    LlmModel.objects.filter(provider=two_providers["b"]).update(input_price_per_million=0.1)
    first = ask(asgi_server.url, operator_key)
    assert first.status_code == 200, first.text
    assert "Hello from a" in first.json()["choices"][0]["message"]["content"]

    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    form = page.locator("form").filter(has=page.get_by_label("Strategy"))
    expect(page.get_by_label("Strategy")).to_have_value("default")
    page.get_by_label("Strategy").select_option(label="Lowest cost")
    form.get_by_role("button", name="Save the routing settings").click()
    expect(page.get_by_text("Routing settings saved")).to_be_visible()
    expect(page.get_by_label("Strategy")).to_have_value("lowest-cost")
    assert RoutingSettings.objects.get().strategy == "lowest-cost"

    # The next answer in the Playground (WebSocket, Celery worker: another process) is b's.
    page.goto("/admin/playground/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)
    page.get_by_label("Message", exact=True).fill("Hi")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#play-status")).to_contain_text("Answered by b in", timeout=15_000)
    expect(page.locator('#play-result [data-result="provider"]')).to_have_text("b")
    calls = recorded_calls(2)
    assert [call.provider_name for call in calls] == ["a", "b"]
    assert browser_errors.console_errors == []


def test_an_invalid_routing_setting_shows_its_error_and_changes_nothing(
    logged_in_page, browser_errors
):
    routing()
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    page.get_by_label("Breaker failure threshold").fill("0")
    page.get_by_role("button", name="Save the routing settings").click()
    expect(page.get_by_text("Ensure this value is greater than or equal to 1.")).to_be_visible()
    assert RoutingSettings.objects.get().breaker_failure_threshold == 5
    assert browser_errors.console_errors == []


@pytest.fixture
def fake_401() -> Iterator[FakeUpstream]:
    with FakeUpstream(name="locked") as fake:
        fake.configure(status=401, error_message="Incorrect API key provided: sk-wr***ong.")
        yield fake


def test_test_connection_shows_the_url_tried_and_the_real_error(
    logged_in_page, fake_401, browser_errors
):
    port = free_port()
    refused = provider_create(
        name="refused", kind="openai_compatible", base_url=f"http://127.0.0.1:{port}/v1"
    )
    provider_create(
        name="locked", kind="openai_compatible", base_url=fake_401.base_url, api_key=SECRET
    )
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)

    page.get_by_role("button", name="Test the connection of refused").click()
    message = page.get_by_text("Test of refused:")
    expect(message).to_be_visible()
    expect(message).to_contain_text(f"http://127.0.0.1:{port}/v1/models failed after")
    expect(message).to_contain_text(f"connection refused by http://127.0.0.1:{port}/v1/models")

    page.get_by_role("button", name="Test the connection of locked").click()
    message = page.get_by_text("Test of locked:")
    expect(message).to_contain_text(f"{fake_401.base_url}/models failed after")
    # The platform's own words for a 401 (the upstream's may echo a piece of the key).
    expect(message).to_contain_text("the provider refused our credentials (HTTP 401)")
    screenshot(page, "config-test-connection")
    assert SECRET not in page.content()
    # A test's outcome is the provider's health; it leaves the circuit alone.
    assert Provider.objects.get(pk=refused.pk).health_status == "error"
    expect(page.locator('tr[data-provider="refused"] .provider-health')).to_have_text("error")
    assert circuit_of("refused") == "closed"
    assert browser_errors.console_errors == []


def debug_lines(server: AsgiServer) -> list[dict]:
    lines = []
    for line in server.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") == "DEBUG" and record.get("logger") == "apps.providers.llm.engine":
            lines.append(record)
    return lines


def until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def log_level_restored() -> Iterator[None]:
    """Every process of the run shares the setting: it goes back to blank at the end."""
    yield
    platform_settings_update(log_level="")


@pytest.fixture
def other_web(server_env) -> Iterator[AsgiServer]:
    """A second web process, which the page's server is not."""
    server = AsgiServer(server_env, name="daphne-log-level").start()
    yield server
    server.stop()


def test_the_log_level_changes_in_another_process_without_a_restart(
    logged_in_page, two_providers, operator_key, other_web, log_level_restored, browser_errors
):
    assert ask(other_web.url, operator_key).status_code == 200  # at INFO: no routing lines
    assert debug_lines(other_web) == []

    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    page.get_by_label("Log level").select_option("DEBUG")
    page.get_by_role("button", name="Save the log level").click()
    expect(page.get_by_text("Log level: DEBUG, in every process.")).to_be_visible()
    assert PlatformSettings.objects.get().log_level == "DEBUG"

    def routed_at_debug() -> bool:
        assert ask(other_web.url, operator_key).status_code == 200
        return bool(debug_lines(other_web))

    assert until(routed_at_debug), other_web.output()[-3000:]
    line = debug_lines(other_web)[-1]
    assert line["message"].startswith("routing chat (chat, default): candidates a/fake-model")

    page.get_by_label("Log level").select_option(label="As started (INFO)")
    page.get_by_role("button", name="Save the log level").click()
    reset = page.get_by_text("Log level: as each process started, in every process.")
    expect(reset).to_be_visible()

    def quiet_again() -> bool:
        before = len(debug_lines(other_web))
        assert ask(other_web.url, operator_key).status_code == 200
        time.sleep(0.3)  # the line, if any, is written before the answer; let it land
        return len(debug_lines(other_web)) == before

    assert until(quiet_again), other_web.output()[-3000:]
    assert browser_errors.console_errors == []


def test_a_viewer_sees_the_page_without_write_controls_and_every_write_is_refused(
    logged_in_page, browser_errors
):
    beta = provider_create(
        name="beta", kind="openai_compatible", base_url="http://127.0.0.1:9/v1", api_key=SECRET
    )
    open_circuit("beta")
    routing()
    page: Page = logged_in_page(user=member(Role.VIEWER))
    response = page.goto(URL)
    assert response is not None and response.status == 200
    expect(page.locator('tr[data-provider="beta"] .circuit-state')).to_have_text("open")
    content = page.locator("#content")
    expect(content.locator("button")).to_have_count(0)
    editable = "input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea"
    expect(content.locator(editable)).to_have_count(0)
    expect(page.get_by_label("Strategy")).to_be_disabled()
    expect(page.get_by_label("Log level")).to_be_disabled()
    assert SECRET not in page.content()
    screenshot(page, "config-viewer")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")

    def post(form: dict) -> int:
        return page.request.post(
            URL,
            form={"csrfmiddlewaretoken": token, **form},
            headers={"X-CSRFToken": token},
            max_redirects=0,
        ).status

    for action in ("reset", "enable", "disable", "sync", "test"):
        assert post({"action": action, "provider_name": "beta"}) == 403, action
    assert post({"action": "routing", "strategy": "random", "breaker_failure_threshold": 9}) == 403
    assert post({"action": "platform", "log_level": "DEBUG"}) == 403
    assert post({"action": "nonsense"}) == 400  # past the CSRF check: 403s above are refusals

    assert circuit_of("beta") == "open"
    assert Provider.objects.get(pk=beta.pk).enabled
    assert RoutingSettings.objects.get().strategy == "default"
    assert not PlatformSettings.objects.filter(log_level="DEBUG").exists()
    assert browser_errors.console_errors == []


def test_an_operator_disables_and_enables_a_provider_and_syncs_its_models(
    logged_in_page, upstream_a, browser_errors
):
    upstream_a.configure(models=["fake-model", "fake-large"])
    provider = provider_for(upstream_a)
    deploy(provider)
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    row = page.locator('tr[data-provider="a"]')

    row.get_by_role("button", name="Disable a").click()
    expect(page.get_by_text("a is disabled")).to_be_visible()
    expect(row).to_contain_text("disabled")
    assert not Provider.objects.get(pk=provider.pk).enabled
    row.get_by_role("button", name="Enable a").click()
    expect(page.get_by_text("a is enabled")).to_be_visible()
    assert Provider.objects.get(pk=provider.pk).enabled

    row.get_by_role("button", name="Sync models of a").click()
    expect(page.get_by_text("a: new models fake-large")).to_be_visible()
    models = page.locator("table.config-models")
    expect(models).to_contain_text("fake-large")
    expect(models).to_contain_text("$1.5")
    expect(models).to_contain_text("chat")
    screenshot(page, "config-operator")
    assert browser_errors.console_errors == []


def test_synced_models_show_the_catalog_s_prices_and_where_each_comes_from(
    logged_in_page, upstream_a, browser_errors
):
    upstream_a.configure(models=["gpt-4o-mini", "fake-model"])
    provider_for(upstream_a, kind="openai")
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto(URL)
    page.locator('tr[data-provider="a"]').get_by_role("button", name="Sync models of a").click()
    expect(page.get_by_text("prices from genai-prices")).to_be_visible()
    known = page.locator("table.config-models tr").filter(has_text="gpt-4o-mini")
    expect(known).to_contain_text("$0.15")
    expect(known).to_contain_text("$0.6")
    source = known.locator('td[data-label="Prices from"]')
    expect(source).to_have_text("Catalog")
    expect(source).to_have_attribute("title", f"{catalog_name()}: openai/gpt-4o-mini")
    unknown = page.locator("table.config-models tr").filter(has_text="fake-model")
    expect(unknown.locator('td[data-label="Prices from"]')).to_have_text("Unknown")
    screenshot(page, "config-prices")
    assert browser_errors.console_errors == []
