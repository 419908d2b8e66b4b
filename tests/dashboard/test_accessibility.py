"""Accessibility in Chromium: keyboard use (skip link, menus, theme), labels on every control,
visible focus, and text contrast (WCAG AA, 4.5:1) in the light and the dark theme."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.builds.models import BuildTemplate
from apps.core.logging import live_log_recent
from apps.github.models import BuildPullRequest
from apps.github.services import github_settings_update
from apps.providers.services import provider_create
from tests.dashboard.build_data import finished_build, waiting_build
from tests.dashboard.conftest import member, open_circuit
from tests.dashboard.test_experiment_page import canary_experiment
from tests.fake_github.server import FakeGitHub

pytestmark = pytest.mark.django_db(transaction=True)

GITHUB_TOKEN = "ghp_accessibilityToken0123456789abcdef"
CONTRAST = (Path(__file__).parent / "contrast.js").read_text()

TEXT = (
    "#content dt, #content dd, #content h2, #content h3, #content p, #content .pill, "
    "#content .health-message, #content .dash-time, #content .alert-title, #content td, "
    "#content th, #nav-sidebar a span, #nav-sidebar h2, .live-text, #content .dash-note"
)

UNLABELLED = """
() => Array.from(document.querySelectorAll(
    "#content input, #content select, #content textarea, #content button"))
  .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby") && !el.textContent.trim() && !el.title)
  .map((el) => el.outerHTML.slice(0, 120))
"""


# The Logs page, with a line of each level it shows, and the Calls page.
LIVE_LOG = ("/admin/logs/", "/admin/providers/llmcall/")


@pytest.fixture
def github_page() -> Iterator[str]:
    """The GitHub page, connected to the fake GitHub: an issue to build (with a template) and a
    pull request a build opened."""
    fake = FakeGitHub(GITHUB_TOKEN).start()
    fake.add_repo("acme", "widgets")
    fake.add_issue("acme/widgets", "The home page has no route", "Opening / answers 404.")
    github_settings_update(
        enabled=True, token=GITHUB_TOKEN, owner="acme", repo="widgets", api_url=fake.url
    )
    BuildTemplate.objects.create(name="fix an issue", steps=[{"name": "fix", "prompt": "{input}"}])
    yield "/admin/github-issues/"
    fake.stop()


@pytest.fixture
def build_pages(github_page: str) -> tuple[str, ...]:
    """The Build, Agent board, Artifact browser, Approval queue, Experiments and GitHub pages,
    with a build whose second step waits for an approval (its form in view), its artifacts and
    agents, an experiment whose canary was rolled back, and a pull request a build opened."""
    build, waiting = finished_build(), waiting_build()
    code = build.artifacts.get(kind="code")
    BuildPullRequest.objects.create(
        build=build,
        repository="acme/widgets",
        number=2,
        url="https://github.com/acme/widgets/pull/2",
        head_branch=f"orchestra/build-{build.pk}",
        base_branch="main",
    )
    return (
        "/admin/build/",
        f"/admin/build/{build.pk}/",
        f"/admin/build/{waiting.pk}/",
        "/admin/agent-board/",
        "/admin/artifact-browser/",
        f"/admin/artifact-browser/{code.pk}/",
        f"/admin/artifact-browser/{build.artifacts.get(step__name='plan').pk}/",
        "/admin/approval-queue/",
        "/admin/experiment-board/",
        f"/admin/experiment-board/{canary_experiment().pk}/",
        github_page,
    )


@pytest.fixture
def an_open_circuit():
    provider_create(name="beta", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
    open_circuit("beta")
    logger = logging.getLogger("tests.accessibility")
    logger.warning("a warning for request %s", "abc")
    logger.error("an error")
    logger.critical("a critical line")
    for _ in range(100):
        if len(live_log_recent()) >= 3:
            break
        time.sleep(0.05)


def choose_theme(page: Page, name: str) -> None:
    page.get_by_role("button", name=re.compile("^Account of")).click()
    page.get_by_role("button", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_text_has_enough_contrast_in_both_themes(
    logged_in_page, an_open_circuit, build_pages, browser_errors
):
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    dark = re.compile(r"\bdark\b")
    for theme in ("Light", "Dark"):
        page.goto("/admin/")
        choose_theme(page, theme)
        for url in (
            "/admin/",
            "/admin/playground/",
            "/admin/circuits/",
            "/admin/providers/provider/",
            "/admin/usage-analytics/",
            *LIVE_LOG,
            *build_pages,
        ):
            page.goto(url)
            html = expect(page.locator("html"))
            html.to_have_class(dark) if theme == "Dark" else html.not_to_have_class(dark)
            expect(page.locator("#content")).to_be_visible()
            assert page.evaluate(CONTRAST, TEXT) == [], (theme, url)
    assert browser_errors.console_errors == []


def test_every_control_has_a_name(logged_in_page, an_open_circuit, build_pages):
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    for url in (
        "/admin/",
        "/admin/playground/",
        "/admin/circuits/",
        "/admin/providers/provider/add/",
        "/admin/usage-analytics/",
        *LIVE_LOG,
        *build_pages,
    ):
        page.goto(url)
        assert page.evaluate(UNLABELLED) == [], url


def test_the_keyboard_reaches_content_menus_and_the_theme(logged_in_page, browser_errors):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/")

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible

    account = page.get_by_role("button", name=re.compile("^Account of"))
    account.focus()
    page.keyboard.press("Enter")
    expect(account).to_have_attribute("aria-expanded", "true")
    dark = page.get_by_role("button", name="Dark")
    dark.focus()
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    expect(dark).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Escape")
    expect(account).to_have_attribute("aria-expanded", "false")

    page.set_viewport_size({"width": 390, "height": 844})
    menu = page.get_by_role("button", name="Menu", exact=True)
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.wait_for_function(
        "document.getElementById('nav-sidebar').contains(document.activeElement)"
    )
    expect(page.locator("#nav-sidebar a[aria-current=page]")).to_have_text(re.compile("Home"))
    page.keyboard.press("Escape")
    expect(menu).to_be_focused()
    assert browser_errors.console_errors == []
