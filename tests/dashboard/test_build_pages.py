"""The Build page in Chromium, against a real daphne, a real Celery worker (which runs the steps)
and the fake upstream: a three-step build composed in the form streams to success, and a step
waiting for approval is approved from another operator's browser while the first page goes on
without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.approvals.models import ApprovalStatus
from apps.builds.models import Build, BuildStatus
from apps.builds.services import build_create
from apps.core.events import events_since
from apps.core.runtime import run_sync
from tests.dashboard.build_data import (
    CODE,
    PLAN,
    REVIEW,
    finished_build,
    two_agents,
    waiting_build,
)
from tests.dashboard.conftest import member
from tests.dashboard.test_accessibility import CONTRAST, TEXT, UNLABELLED, choose_theme
from tests.support.browser import PHONE, screenshot
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

# Each change of the step cards, as the page saw it: which card, its status, how much streamed
# text it showed, and whether its output was rendered (a reload would lose this).
WATCH_STEPS = """
() => {
  window.seen = [];
  const note = () => document.querySelectorAll(".build-card").forEach((card) => {
    const stream = card.querySelector("[data-stream]");
    window.seen.push({step: card.dataset.step, status: card.dataset.status,
                      streamed: stream && !stream.hidden ? stream.textContent.length : 0,
                      rendered: Boolean(card.querySelector(".rendered-output"))});
  });
  new MutationObserver(note).observe(document.getElementById("build-steps"),
                                     {childList: true, subtree: true, characterData: true});
}
"""
STREAMING = {"chunk_delay_ms": 60}


@pytest.fixture
def agents(two_providers):
    return two_agents(two_providers)


def open_build_page(page: Page) -> None:
    page.goto("/admin/build/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def compose(page: Page, title: str, steps: list[dict]) -> None:
    page.get_by_label("Title").fill(title)
    page.get_by_label("Input", exact=True).fill("a widget app")
    for index, step in enumerate(steps):
        if index:
            page.get_by_role("button", name="Add a step").click()
        row = page.locator("[data-step-form]").nth(index)
        expect(row.locator("legend")).to_have_text(f"Step {index + 1}")
        row.get_by_label("Name").fill(step["name"])
        row.get_by_label("Agent").select_option(label=step["agent"])
        expect(row.get_by_label("Model")).to_be_disabled()  # the agent's model runs it
        row.get_by_label("Prompt").fill(step["prompt"])
        if step.get("requires_approval"):
            row.get_by_label("Requires approval").check()


def start(page: Page) -> Build:
    page.get_by_role("button", name="Start the build").click()
    expect(page).to_have_url(re.compile(r"/admin/build/\d+/$"))
    build = Build.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    expect(page.get_by_text(f"Build #{build.pk} started: {build.title}")).to_be_visible()
    return build


def card(page: Page, build: Build, name: str):
    return page.locator(f"#step-{build.steps.get(name=name).pk}")


def test_a_three_step_build_streams_from_the_form_to_success(
    logged_in_page, agents, upstream_a, celery_worker, browser_errors
):
    upstream_a.enqueue(*({"content": text, **STREAMING} for text in (PLAN, CODE, REVIEW)))
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    open_build_page(page)
    # A step removed from the middle: the others are renumbered as the server expects.
    compose(
        page,
        "Widgets",
        [
            {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
            {"name": "scrap", "agent": "planner", "prompt": "not wanted"},
            {"name": "implement", "agent": "planner", "prompt": "Implement:\n{steps.plan}"},
        ],
    )
    page.get_by_role("button", name="Remove step 2").click()
    page.get_by_role("button", name="Add a step").click()
    last = page.locator("[data-step-form]").nth(2)
    expect(last.locator("legend")).to_have_text("Step 3")
    last.get_by_label("Name").fill("review")
    last.get_by_label("Agent").select_option(label="reviewer")
    last.get_by_label("Prompt").fill("Review:\n{previous}")
    screenshot(page, "build-form")

    build = start(page)
    page.evaluate(WATCH_STEPS)
    # The history, open beside it, follows the build's status from the "builds" channel.
    history = page.context.new_page()
    open_build_page(history)
    history.evaluate("window.stayed = true")
    listed = history.locator(f'.build-history tr[data-build="{build.pk}"] .build-status')
    assert listed.text_content() in ("queued", "running"), "the build takes seconds to run"
    expect(page.locator("#build-status")).to_have_text("succeeded", timeout=45_000)
    expect(listed).to_have_text("succeeded")
    assert history.evaluate("window.stayed") is True
    history.close()

    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED, build.error
    steps = list(build.steps.order_by("position"))
    assert [(s.name, s.agent.name) for s in steps] == [
        ("plan", "planner"),
        ("implement", "planner"),
        ("review", "reviewer"),
    ]
    assert [s.output for s in steps] == [PLAN, CODE, REVIEW]
    assert upstream_a.stats()["last_request"]["body"]["messages"][-1]["content"] == (
        f"Review:\n{CODE}"
    )
    seen = page.evaluate("window.seen")
    for step in steps:
        mine = [entry for entry in seen if entry["step"] == str(step.pk)]
        streaming = [e["streamed"] for e in mine if e["status"] == "running" and e["streamed"]]
        assert len(set(streaming)) >= 3, f"{step.name}'s tokens showed as they came: {mine}"
        assert mine[-1] == {
            "step": str(step.pk),
            "status": "succeeded",
            "streamed": 0,
            "rendered": True,
        }

    # The outputs, rendered by the server: Markdown, highlighted code, nothing executable.
    plan = card(page, build, "plan")
    expect(plan.locator(".build-step-status")).to_have_text("succeeded")
    expect(plan.locator(".rendered-output h2")).to_have_text("Plan")
    expect(plan.locator(".rendered-output ol li")).to_have_count(3)
    keyword = card(page, build, "implement").locator(".rendered-output .highlight .k").first
    expect(keyword).to_have_text("class")
    assert keyword.evaluate("el => getComputedStyle(el).color") == "rgb(0, 128, 0)"
    expect(card(page, build, "review").locator(".rendered-output strong")).to_have_text("good")
    assert page.evaluate("window.pwned") is None

    summary = page.locator("#build-summary")
    expect(summary.locator('[data-figure="steps"]')).to_have_text("3 / 3")
    expect(summary.locator('[data-figure="tokens"]')).to_have_text(
        f"{build.input_tokens} / {build.output_tokens}"
    )
    assert build.output_tokens == sum(len(text.split()) for text in (PLAN, CODE, REVIEW))
    names = summary.locator(".build-artifacts li > a.dash-link:not(.build-download)")
    expect(names).to_have_text(
        ["1-plan.md", "2-implement.md", "app/models.py", "3-review.md", "change-1.patch"]
    )
    expect(page.locator("#build-cancel")).to_have_count(0)
    expect(page.locator("#build-zip")).to_have_attribute(
        "href", f"/api/v1/builds/{build.pk}/artifacts.zip"
    )
    screenshot(page, "build-detail")

    page.get_by_role("link", name="All builds").click()
    row = page.locator(f'.build-history tr[data-build="{build.pk}"]')
    expect(row.locator(".build-status")).to_have_text("succeeded")
    expect(row.locator('td[data-label="Steps"]')).to_have_text("3 / 3")
    page.get_by_role("link", name="Failed", exact=True).click()
    expect(page.locator("#no-builds")).to_have_text("No build with this status.")
    assert browser_errors.console_errors == []


def fill_notes(page: Page, text: str) -> None:
    """Type an approval's notes. The page swaps the step's card as the live events it replays
    on opening arrive, carrying typed notes over; a card swapped while Playwright fills (one
    step for it, keystrokes for a person) takes the text with it, so fill until it holds."""
    notes = page.get_by_label("Notes")

    def typed() -> bool:
        notes.fill(text)
        page.wait_for_timeout(200)
        return notes.input_value() == text

    eventually(typed, 10, "the notes typed")


def test_another_operator_approves_a_step_and_the_first_page_goes_on(
    logged_in_page, agents, upstream_a, celery_worker, browser_errors
):
    upstream_a.enqueue(*({"content": text, **STREAMING} for text in (PLAN, CODE)))
    asker = member(Role.OPERATOR, username="ann")
    page: Page = logged_in_page(user=asker)
    open_build_page(page)
    compose(
        page,
        "Gated",
        [
            {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
            {
                "name": "implement",
                "agent": "planner",
                "prompt": "Implement:\n{previous}",
                "requires_approval": True,
            },
        ],
    )
    build = start(page)
    implement = card(page, build, "implement")
    expect(implement.locator(".build-step-status")).to_have_text(
        "awaiting approval", timeout=30_000
    )
    expect(page.locator("#build-status")).to_have_text("awaiting approval")
    expect(implement).to_contain_text("another operator must approve this step")
    expect(implement.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    page.evaluate("window.stayed = true")
    screenshot(page, "build-awaiting-approval")

    approver = member(Role.OPERATOR, username="bob")
    other: Page = logged_in_page(user=approver)
    other.goto(f"/admin/build/{build.pk}/")
    fill_notes(other, "Ship it.")
    screenshot(other, "build-approve")
    other.get_by_role("button", name="Approve step implement").click()
    expect(
        other.get_by_text(f"Approved: Run step 2 (implement) of build #{build.pk}")
    ).to_be_visible()

    expect(implement.locator(".build-step-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#build-status")).to_have_text("succeeded")
    expect(implement.locator(".rendered-output .highlight")).to_be_visible()
    expect(implement.locator(".build-approval")).to_have_count(0)
    assert page.evaluate("window.stayed") is True, "the first page was not reloaded"
    approval = build.steps.get(name="implement").approval
    assert approval is not None and approval.status == ApprovalStatus.APPROVED
    assert (approval.decided_by, approval.decision_notes) == (approver, "Ship it.")
    assert browser_errors.console_errors == []


def published_text(build: Build) -> str:
    """The text of the build's tokens published so far, as the bus kept them."""
    kept = run_sync(events_since(f"build:{build.pk}", "0")).events
    return "".join(event.data["content"] for event in kept if event.event == "build.token")


def test_a_page_opened_in_the_middle_of_a_step_shows_the_whole_step(
    logged_in_page, agents, upstream_a, celery_worker, browser_errors
):
    """The tokens published before the page opened are replayed from the step's start, then
    the live ones follow: the streamed text is the step's, from its first word."""
    upstream_a.enqueue({"content": PLAN, "chunk_delay_ms": 150})
    build = build_create(
        title="Joined late",
        input="a widget app",
        by=None,
        steps=[{"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"}],
    )
    step = build.steps.get()
    eventually(lambda: len(published_text(build).split()) >= 10, 30, "ten tokens streamed")
    before = published_text(build)

    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto(f"/admin/build/{build.pk}/")
    stream = page.locator(f"#step-{step.pk} [data-stream]")
    page.wait_for_function(
        "([selector, length]) => (document.querySelector(selector)?.textContent || '').length"
        " > length",
        arg=[f"#step-{step.pk} [data-stream]", len(before)],
    )
    shown = stream.text_content() or ""
    assert card(page, build, "plan").get_attribute("data-status") == "running"
    assert shown.startswith(before) and PLAN.startswith(shown), shown
    expect(card(page, build, "plan").locator(".build-joined")).to_be_hidden()
    screenshot(page, "build-joined-mid-step")

    expect(card(page, build, "plan").locator(".rendered-output h2")).to_have_text("Plan")
    step.refresh_from_db()
    assert step.output == PLAN
    assert browser_errors.console_errors == []


def test_a_viewer_watches_but_may_not_start(logged_in_page, agents, browser_errors):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    open_build_page(page)
    expect(page.locator("#build-not-allowed")).to_contain_text("not start one")
    expect(page.get_by_role("button", name="Start the build")).to_be_disabled()
    expect(page.get_by_role("button", name="Add a step")).to_be_disabled()
    screenshot(page, "build-viewer")
    assert not Build.objects.exists()
    assert browser_errors.console_errors == []


# Beyond what test_accessibility.py checks everywhere: the forms' labels and the rendered
# outputs (highlighted code, diffs, lists).
MORE_TEXT = (
    ", #content label, #content legend, #content summary, #content li, #content .rendered-output "
    "span, #content .build-facts dt, #content .agent-figures dt, #content .artifact-facts dt"
)


@pytest.mark.parametrize("theme", ["Light", "Dark"])
def test_the_new_pages_read_well_and_fit_a_phone(logged_in_page, theme, browser_errors):
    build, waiting = finished_build(), waiting_build()
    code = build.artifacts.get(kind="code")
    patch = build.artifacts.get(kind="patch")
    urls = ["/admin/build/", f"/admin/build/{build.pk}/", f"/admin/build/{waiting.pk}/",
            "/admin/agent-board/", "/admin/artifact-browser/",
            f"/admin/artifact-browser/{code.pk}/", f"/admin/artifact-browser/{patch.pk}/",
            "/admin/approval-queue/"]  # fmt: skip
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto("/admin/")
    choose_theme(page, theme)
    for url in urls:
        page.goto(url)
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate(CONTRAST, TEXT + MORE_TEXT) == [], (theme, url)
        assert page.evaluate(UNLABELLED) == [], url
    page.set_viewport_size(PHONE)
    for url in urls:
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{url} sticks out sideways at phone width: {width}"
    assert browser_errors.console_errors == []
