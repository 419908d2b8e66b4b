"""The GitHub page in Chromium, against the real daphne, a real Celery worker, the fake LLM
upstream (which writes the patch) and the fake GitHub: an operator starts a build from an issue
with a template whose last step publishes a pull request once approved, another operator
approves it on the build's page, and the pull request's link appears on the build's page and
on the GitHub page. A viewer sees the issues without the action."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.builds.models import Build, BuildStatus
from apps.builds.services import build_template_create
from apps.github.models import BuildPullRequest
from apps.github.services import github_settings_update
from tests.dashboard.conftest import member
from tests.dashboard.test_accessibility import CONTRAST, TEXT, UNLABELLED
from tests.github.conftest import REPO
from tests.github.test_publish import CODE
from tests.support.browser import PHONE, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/github-issues/"
STEPS = [
    {"name": "implement", "model": "chat", "prompt": "Fix this issue with unified diffs:\n{input}"},
    {
        "name": "publish",
        "kind": "github_pull_request",
        "requires_approval": True,
        "options": {"labels": ["orchestra"]},
    },
]


@pytest.fixture
def templates(two_providers):
    build_template_create(by=None, name="plan only", steps=STEPS[:1])
    return build_template_create(by=None, name="fix and open a pull request", steps=STEPS)


def fits_a_phone(page: Page) -> None:
    before = page.viewport_size
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} sticks out sideways at phone width: {width}"
    if before:
        page.set_viewport_size(before)


def test_an_operator_builds_an_issue_into_a_pull_request(
    logged_in_page, issues, templates, upstream_a, celery_worker, browser_errors
):
    upstream_a.enqueue({"content": CODE})
    page: Page = logged_in_page(user=member(Role.OPERATOR, username="ann"))
    page.goto(PAGE)
    expect(page.get_by_role("heading", name="GitHub", exact=True)).to_be_visible()
    expect(
        page.locator("#nav-sidebar").get_by_role("link", name="GitHub", exact=True)
    ).to_be_visible()
    expect(page.locator("#github-connection")).to_contain_text("Connected as octocat")
    expect(page.locator("#github-connection")).to_contain_text("acme/gears")
    row = page.locator('#github-issue-list tr[data-issue="1"]')
    expect(row.get_by_role("link", name="#1 The home page has no route")).to_have_attribute(
        "href", f"https://github.com/{REPO}/issues/1"
    )
    expect(page.locator("#github-issue-list tbody tr")).to_have_count(2)
    expect(page.locator("#github-no-pulls")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(CONTRAST, TEXT) == []
    fits_a_phone(page)
    screenshot(page, "github")

    row.get_by_label("Template for issue #1").select_option(label="fix and open a pull request")
    row.get_by_role("button", name="Start a build from this issue").click()

    build = Build.objects.get()
    expect(page).to_have_url(re.compile(rf"/admin/build/{build.pk}/$"))
    expect(page.get_by_text(f"Build #{build.pk} started from {REPO}#1")).to_be_visible()
    assert build.github_issue == f"{REPO}#1" and build.title == "The home page has no route"
    publish = page.locator(".build-card", has_text="publish").last
    expect(page.locator("#build-status")).to_have_text("awaiting approval", timeout=30_000)

    approver: Page = logged_in_page(user=member(Role.OPERATOR, username="bob"))
    approver.goto(f"/admin/build/{build.pk}/")
    approver.get_by_role("button", name="Approve step publish").click()
    expect(
        approver.get_by_text(f"Approved: Run step 2 (publish) of build #{build.pk}")
    ).to_be_visible()

    expect(page.locator("#build-status")).to_have_text("succeeded", timeout=30_000)
    pull = BuildPullRequest.objects.get()
    link = publish.locator("[data-result]")
    expect(link).to_have_attribute("href", pull.url)
    assert pull.url == f"https://github.com/{REPO}/pull/{pull.number}"
    assert issues.pull(REPO, pull.number)["head"]["ref"] == f"orchestra/build-{build.pk}"
    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED
    screenshot(page, "github-build-published")

    page.goto(PAGE)
    pulls = page.locator(f'#github-pull-list tr[data-build="{build.pk}"]')
    expect(pulls.get_by_role("link", name=f"{REPO}#{pull.number}")).to_have_attribute(
        "href", pull.url
    )
    expect(pulls.locator(".pill")).to_have_text("Open")
    expect(
        pulls.get_by_role("link", name=f"#{build.pk} The home page has no route")
    ).to_be_visible()
    fits_a_phone(page)
    screenshot(page, "github-pulls")
    assert browser_errors.console_errors == []


def test_a_viewer_sees_the_issues_without_the_action(
    logged_in_page, issues, templates, browser_errors
):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto(PAGE)
    expect(page.locator("#github-issue-list tbody tr")).to_have_count(2)
    expect(page.locator("#github-not-allowed")).to_be_visible()
    expect(page.get_by_role("button", name="Start a build from this issue")).to_have_count(0)
    fits_a_phone(page)
    screenshot(page, "github-viewer")
    assert browser_errors.console_errors == []


def test_a_disabled_connection_reads_clearly(logged_in_page, issues, browser_errors):
    github_settings_update(enabled=False)
    page: Page = logged_in_page(user=member(Role.ADMIN))
    page.goto(PAGE)
    expect(page.locator("#github-error")).to_have_text("The GitHub connection is disabled.")
    expect(page.get_by_role("link", name="GitHub settings")).to_be_visible()
    assert page.evaluate(CONTRAST, TEXT) == []
    fits_a_phone(page)
    screenshot(page, "github-disabled")
    assert browser_errors.console_errors == []
