"""The Agent board in Chromium, against a real daphne, a real Celery worker (which runs tasks) and
the fake upstream: a task run from the board streams in, then shows rendered; the agent's card
follows it (busy, then idle, a task done, its activity)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.agents.models import AgentTask, RunStatus
from apps.builds.models import Build, BuildStep
from apps.core.events import event_id_at
from tests.dashboard.build_data import two_agents
from tests.dashboard.conftest import member
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Each change of the task's answer, as the page saw it.
WATCH_ANSWER = """
() => {
  window.answer = [];
  new MutationObserver(() => {
    const output = document.getElementById("task-output");
    if (output) window.answer.push([output.tagName, output.textContent.length]);
  }).observe(document.getElementById("task-panel"),
             {childList: true, subtree: true, characterData: true});
}
"""


@pytest.fixture
def agents(two_providers):
    return two_agents(two_providers)


def test_an_operator_runs_a_task_and_watches_it_stream(
    logged_in_page, agents, upstream_a, celery_worker, browser_errors
):
    upstream_a.configure(chunk_delay_ms=60, tokens=30)
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    frames: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda p: frames.append(json.loads(p))))
    page.goto("/admin/agent-board/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    reviewer = page.locator(f"#agent-{agents['reviewer'].pk}")
    expect(reviewer.locator(".agent-status")).to_have_text("idle")
    page.evaluate(WATCH_ANSWER)

    reviewer.get_by_role("button", name="Give reviewer a task").click()
    expect(page.get_by_label("Agent", exact=True)).to_have_value(str(agents["reviewer"].pk))
    expect(page.get_by_label("Prompt")).to_be_focused()
    page.get_by_label("Prompt").fill("Review this,\nplease.")
    page.get_by_role("button", name="Run").click()

    expect(page.locator("#task-state")).to_have_text("succeeded", timeout=30_000)
    task = AgentTask.objects.get()
    assert (task.agent, task.prompt, task.status) == (
        agents["reviewer"],
        "Review this,\nplease.",
        RunStatus.SUCCEEDED,
    )
    expect(page.locator("#task-output")).to_have_text(task.output)
    assert task.output.startswith("Hello from a") and len(task.output.split()) == 30
    expect(page.locator("#task-status")).to_have_text(f"Task #{task.pk} succeeded.")
    answer = page.evaluate("window.answer")
    streamed = [length for tag, length in answer if tag == "PRE" and length]
    assert len(set(streamed)) >= 5, f"the answer came word by word: {answer}"
    assert answer[-1][0] == "DIV"  # then rendered by the server
    # From the task's creation on, so no token published before the socket listened is missed.
    assert {
        "type": "subscribe",
        "channel": f"agent_task:{task.pk}",
        "since": event_id_at(task.created_at),
    } in frames
    messages = upstream_a.stats()["last_request"]["body"]["messages"]
    assert messages == [
        {"role": "system", "content": "You are the reviewer."},
        {"role": "user", "content": "Review this,\nplease."},
    ]

    # The card followed: idle again, a task done, its activity listed.
    expect(reviewer.locator(".agent-status")).to_have_text("idle")
    expect(reviewer.locator(".agent-figures div").first).to_have_text("Tasks done1")
    expect(reviewer.locator(".agent-activity li").first).to_contain_text("succeeded")
    expect(page.locator(f"#agent-{agents['planner'].pk} .agent-figures dd").first).to_have_text("0")
    screenshot(page, "agent-board-task-run")
    assert browser_errors.console_errors == []


def test_a_viewer_watches_the_board_but_may_not_run_tasks(logged_in_page, agents, browser_errors):
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/agent-board/")
    expect(page.locator("#agents-not-allowed")).to_contain_text("not give them tasks")
    expect(page.get_by_role("button", name="Run")).to_be_disabled()
    expect(page.get_by_role("button", name="Give reviewer a task")).to_have_count(0)
    status = page.evaluate(
        """() => fetch("/admin/agent-board/", {method: "POST", body: new FormData(
              document.getElementById("task-form")), headers: {Accept: "application/json"}})
              .then((response) => response.status)"""
    )
    assert status == 403 and not AgentTask.objects.exists()
    (refused,) = browser_errors.console_errors  # the browser reports the refusal itself
    assert "status of 403" in refused


def test_the_board_counts_the_build_steps_an_agent_ran(logged_in_page, agents, browser_errors):
    agent = agents["planner"]
    build = Build.objects.create(title="with a step")
    BuildStep.objects.create(
        build=build,
        position=0,
        name="plan",
        agent=agent,
        prompt_template="x",
        status=RunStatus.SUCCEEDED,
    )
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/agent-board/")
    card = page.locator(f'[data-agent="{agent.pk}"]')
    expect(card.locator('[data-figure="steps_done"]')).to_have_text("1")
    expect(card.locator('[data-figure="tasks_done"]')).to_have_text("0")
    expect(card).to_contain_text("Task success rate")
    screenshot(page, "agent-board-build-steps")
    assert browser_errors.console_errors == []
