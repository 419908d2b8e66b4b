"""The Build, Artifact browser, Agent board and Approval queue pages, server side: what each role
may do (the server refuses whatever the page shows), the forms and what they create, the parts
the pages fetch again, the filters. Browser tests: test_build_pages.py and the others."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.agents.models import Agent, AgentTask, RunStatus
from apps.approvals.models import ApprovalRequest, ApprovalStatus
from apps.approvals.services import approval_request_create
from apps.artifacts.models import Artifact
from apps.builds.models import Build, BuildStatus, BuildTemplate
from apps.builds.services import build_create
from apps.core.events import event_id_at
from tests.dashboard.build_data import finished_build, three_steps, two_agents
from tests.dashboard.conftest import member
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db


@pytest.fixture
def agents(two_providers):
    return two_agents(two_providers)


def logged_in(role: Role) -> tuple[Client, object]:
    user = member(role)
    client = Client()
    client.force_login(user)
    return client, user


def start_data(**fields) -> dict:
    """The Build page's form: title, input and the composed steps (``steps-<n>-<field>``)."""
    steps = fields.pop("steps", three_steps())
    data = {"title": "Widgets", "input": "a widget app", "template": "",
            "steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": "0",
            "steps-MIN_NUM_FORMS": "1", "steps-MAX_NUM_FORMS": "20"}  # fmt: skip
    for index, step in enumerate(steps):
        for name, value in step.items():
            if name == "agent" and isinstance(value, str) and value:
                value = Agent.objects.get(name=value).pk  # the form's select sends ids
            data[f"steps-{index}-{name}"] = value
    data.update(fields)
    return data


def sidebar(client: Client) -> dict[str, list[str]]:
    groups = client.get("/admin/").context["sidebar_navigation"]
    return {group["title"]: [item["title"] for item in group["items"]] for group in groups}


def test_every_role_finds_the_pages_and_a_viewer_may_only_read(agents):
    viewer, _ = logged_in(Role.VIEWER)
    builds = sidebar(viewer)["Builds"]
    for title in ("Build", "Agent board", "Artifact browser", "Approval queue"):
        assert title in builds
    assert builds.index("Build") < builds.index("Agent board") < builds.index("Artifact browser")
    build = finished_build()
    for url in (
        "/admin/build/",
        f"/admin/build/{build.pk}/",
        "/admin/artifact-browser/",
        f"/admin/artifact-browser/{build.artifacts.first().pk}/",
        "/admin/agent-board/",
        "/admin/approval-queue/",
    ):
        assert viewer.get(url).status_code == 200, url
    page = viewer.get("/admin/build/").content.decode()
    assert 'id="build-not-allowed"' in page and re.search(r"<fieldset[^>]*disabled", page)
    assert 'id="build-cancel"' not in viewer.get(f"/admin/build/{build.pk}/").content.decode()

    assert viewer.post("/admin/build/", start_data()).status_code == 403
    assert viewer.post(f"/admin/build/{build.pk}/", {"action": "retry"}).status_code == 403
    assert (
        viewer.post(
            "/admin/agent-board/", {"agent": agents["planner"].pk, "prompt": "hi"}
        ).status_code
        == 403
    )
    assert viewer.post("/admin/approval-queue/", {"approval": 1}).status_code == 403
    assert Build.objects.count() == 1 and not AgentTask.objects.exclude(prompt="Say hello")
    assert Client().get("/admin/build/")["Location"].startswith("/admin/login/")


# The form lists the models of the routing config, which is read on a connection of its own:
# it sees committed data only.
@pytest.mark.django_db(transaction=True)
def test_an_operator_starts_a_build_of_composed_steps(agents, celery_worker):
    operator, user = logged_in(Role.OPERATOR)
    steps = three_steps()
    steps[0]["agent"] = agents["planner"].pk
    steps[1] |= {"agent": agents["planner"].pk, "requires_approval": "on", "max_tokens": "300"}
    steps[2] = {
        "name": "review",
        "agent": "",
        "model": "chat",
        "provider": "b",
        "temperature": "0.3",
        "prompt": "Review:\n{previous}",
    }

    response = operator.post("/admin/build/", start_data(steps=steps))

    build = Build.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/build/{build.pk}/"
    assert (build.title, build.input, build.created_by) == ("Widgets", "a widget app", user)
    plan, implement, review = build.steps.order_by("position")
    assert (plan.name, plan.agent, plan.prompt_template) == (
        "plan",
        agents["planner"],
        "Plan this: {input}",
    )
    assert implement.requires_approval and implement.max_tokens == 300
    assert not plan.requires_approval and implement.prompt_template == "Implement:\n{steps.plan}"
    assert review.agent is None and (review.model, review.provider.name) == ("chat", "b")
    assert review.temperature == 0.3
    page = operator.get(response["Location"]).content.decode()
    assert f"Build #{build.pk} started: Widgets" in page
    assert 'id="build-cancel"' in page and 'id="build-retry"' not in page
    # The worker runs the plan and stops at the gate; waiting for that leaves no worker writing
    # while the test's tables are emptied (a deadlock otherwise).
    eventually(
        lambda: ApprovalRequest.objects.filter(reference=f"build_step:{implement.pk}").first(),
        what="the gate's approval request",
    )


def test_a_refused_build_says_why_and_keeps_what_was_typed(agents):
    operator, _ = logged_in(Role.OPERATOR)
    steps = three_steps()
    steps[0]["prompt"] = "Plan {steps.nothing}"
    response = operator.post("/admin/build/", start_data(steps=steps, title="Kept"))
    assert response.status_code == 200 and not Build.objects.exists()
    page = response.content.decode()
    assert "Step 1: prompt: {steps.nothing} names no earlier step." in page
    assert 'value="Kept"' in page and "Plan {steps.nothing}</textarea>" in page

    response = operator.post("/admin/build/", start_data(title="  "))
    assert "Give the build a title (or pick a template)." in response.content.decode()
    response = operator.post("/admin/build/", start_data(steps=[{"name": "x", "prompt": ""}]))
    assert 'id="id_steps-0-prompt_error"' in response.content.decode()
    assert not Build.objects.exists()


def test_a_build_from_a_template_takes_its_steps_and_name(agents):
    operator, _ = logged_in(Role.OPERATOR)
    template = BuildTemplate.objects.create(name="Ship it", steps=three_steps())
    data = start_data(title="", template=str(template.pk), steps=[])
    response = operator.post("/admin/build/", data)
    build = Build.objects.get()
    assert response.status_code == 302
    assert (build.title, build.template) == ("Ship it", template)
    assert list(build.steps.values_list("name", flat=True)) == ["plan", "implement", "review"]
    page = operator.get("/admin/build/").content.decode()
    assert f'data-template="{template.pk}"' in page and "plan → implement → review" in page


def test_cancel_and_retry_from_the_build_page(agents):
    operator, user = logged_in(Role.OPERATOR)
    build = build_create(title="t", steps=three_steps(), by=user)
    url = f"/admin/build/{build.pk}/"

    response = operator.post(url, {"action": "cancel"}, follow=True)
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED
    assert f"Build #{build.pk} cancelled." in response.content.decode()
    assert 'id="build-retry"' in response.content.decode()

    response = operator.post(url, {"action": "cancel"}, follow=True)
    assert "The build already cancelled." in response.content.decode()
    operator.post(url, {"action": "retry"})
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
    assert build.steps.get(name="plan").status == RunStatus.QUEUED


def awaiting(build: Build, requested_by) -> object:
    """The build's second step waiting for an approval, as the worker leaves it."""
    step = build.steps.get(position=2)
    step.approval = approval_request_create(
        kind="build_step",
        action=f"Run step 2 (implement) of build #{build.pk}",
        reference=f"build_step:{step.pk}",
        context={"build": build.pk, "step": step.pk},
        requested_by=requested_by,
    )
    step.status = RunStatus.AWAITING_APPROVAL
    step.save()
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.AWAITING_APPROVAL)
    return step


def test_only_another_operator_approves_a_step_and_a_refusal_is_a_message(agents):
    requester, asker = logged_in(Role.OPERATOR)
    build = build_create(title="t", steps=three_steps(), by=asker)
    step = awaiting(build, asker)
    url = f"/admin/build/{build.pk}/"
    decide = {"action": "decide", "step": step.pk, "decision": "approved", "notes": "fine"}

    own = requester.get(url).content.decode()
    assert "another operator must approve this step" in own and 'value="approved"' not in own
    response = requester.post(url, decide, follow=True)
    assert "Not decided: Nobody may decide their own request." in response.content.decode()
    step.approval.refresh_from_db()
    assert step.approval.status == ApprovalStatus.PENDING

    other, approver = logged_in(Role.OPERATOR)
    card = other.get(f"/admin/build/{build.pk}/steps/{step.pk}/").content.decode()
    assert "awaiting approval" in card and 'value="approved"' in card
    response = other.post(url, decide, follow=True)
    assert "Approved: Run step 2 (implement)" in response.content.decode()
    step.refresh_from_db()
    step.approval.refresh_from_db()
    assert step.approval.status == ApprovalStatus.APPROVED
    assert (step.approval.decided_by, step.approval.decision_notes) == (approver, "fine")
    assert step.status == RunStatus.QUEUED  # enqueued again, to run now

    response = other.post(url, decide | {"decision": "rejected"}, follow=True)
    assert "waits for no approval" in response.content.decode() or "already" in (
        response.content.decode()
    )


def test_the_approval_queue_lists_and_decides(agents):
    _, asker = logged_in(Role.OPERATOR)
    build = build_create(title="t", steps=three_steps(), by=asker)
    step = awaiting(build, asker)
    admin, _ = logged_in(Role.ADMIN)
    page = admin.get("/admin/approval-queue/").content.decode()
    assert f'id="approval-{step.approval.pk}"' in page and f"/admin/build/{build.pk}/" in page
    assert sidebar(admin)["Builds"]  # the badge counts the pending request
    items = {
        i["title"]: i
        for g in admin.get("/admin/").context["sidebar_navigation"]
        for i in g["items"]
    }
    assert items["Approval queue"]["badge"] == "1"
    response = admin.post(
        "/admin/approval-queue/",
        {"approval": step.approval.pk, "decision": "rejected", "notes": "not now"},
        follow=True,
    )
    assert "Rejected: Run step 2" in response.content.decode()
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED and "Rejected: not now" in build.error


def test_the_parts_a_build_page_fetches_are_rendered_and_sanitised(agents):
    viewer, _ = logged_in(Role.VIEWER)
    build = finished_build(agents=agents)
    steps = {step.name: step for step in build.steps.all()}
    plan = viewer.get(f"/admin/build/{build.pk}/steps/{steps['plan'].pk}/").content.decode()
    assert "<h2>Plan</h2>" in plan and "<code>Widget</code>" in plan
    assert 'data-status="succeeded"' in plan and "<html" not in plan
    code = viewer.get(f"/admin/build/{build.pk}/steps/{steps['implement'].pk}/").content.decode()
    assert '<div class="highlight">' in code and '<span class="k">class</span>' in code
    review = viewer.get(f"/admin/build/{build.pk}/steps/{steps['review'].pk}/").content.decode()
    assert "<strong>good</strong>" in review and "<script" not in review

    summary = viewer.get(f"/admin/build/{build.pk}/summary/").content.decode()
    assert "succeeded" in summary and "120 / 96" in summary and "$0.000756" in summary
    assert f"/api/v1/builds/{build.pk}/artifacts.zip" in summary
    for artifact in build.artifacts.all():
        assert f"/api/v1/artifacts/{artifact.pk}/download" in summary
    assert viewer.get(f"/admin/build/{build.pk}/nothing/").status_code == 404
    assert viewer.get(f"/admin/build/{build.pk}/steps/999999/").status_code == 404


def test_the_history_filters_by_status(agents):
    viewer, _ = logged_in(Role.VIEWER)
    done = finished_build(agents=agents, title="done one")
    failed = Build.objects.create(title="broken one", status=BuildStatus.FAILED)
    running = Build.objects.create(title="busy one", status=BuildStatus.RUNNING)

    def listed(query: str) -> set[int]:
        page = viewer.get(f"/admin/build/{query}").content.decode()
        return {int(pk) for pk in re.findall(r'<tr data-build="(\d+)"', page)}

    assert listed("") == {done.pk, failed.pk, running.pk}
    assert listed("?status=failed") == {failed.pk}
    assert listed("?status=active") == {running.pk}
    assert listed("?status=nonsense") == {done.pk, failed.pk, running.pk}
    page = viewer.get("/admin/build/?status=failed").content.decode()
    assert re.search(r'href="\?status=failed" aria-current="page"', page)


def test_the_artifact_browser_filters_searches_and_sorts(agents):
    viewer, _ = logged_in(Role.VIEWER)
    build = finished_build(agents=agents)
    other = finished_build(agents=agents, title="Other")
    Artifact.objects.filter(build=other).update(created_at=timezone.now() - timedelta(days=3))

    def names(query: str) -> list[str]:
        page = viewer.get(f"/admin/artifact-browser/{query}").content.decode()
        return re.findall(r'<a href="/admin/artifact-browser/\d+/">([^<]+)</a>', page)

    everything = names("")
    assert len(everything) == 2 * Artifact.objects.filter(build=build).count()
    assert set(names("?kind=code")) == {"app/models.py"}
    assert len(names(f"?build={build.pk}")) == len(everything) // 2
    assert names(f"?build={build.pk}&kind=report") == ["3-review.md", "2-implement.md", "1-plan.md"]
    assert names(f"?build={build.pk}&kind=report&ordering=name") == [
        "1-plan.md",
        "2-implement.md",
        "3-review.md",
    ]
    assert set(names("?q=cog")) == {"3-review.md", "change-1.patch"}
    assert names(f"?agent={agents['reviewer'].pk}&build={build.pk}") == [
        "change-1.patch",
        "3-review.md",
    ]
    today = timezone.localdate()
    assert len(names(f"?since={today}")) == len(everything) // 2
    assert len(names(f"?until={today - timedelta(days=1)}")) == len(everything) // 2
    page = viewer.get("/admin/artifact-browser/?build=x").content.decode()
    assert "Build #: Enter a whole number." in page

    code = Artifact.objects.get(build=build, kind="code")
    preview = viewer.get(f"/admin/artifact-browser/{code.pk}/").content.decode()
    assert '<span class="k">def</span>' in preview and "highlight" in preview
    assert f"/api/v1/artifacts/{code.pk}/download" in preview
    assert f"/api/v1/builds/{build.pk}/artifacts.zip" in preview


def test_the_agent_board_runs_and_stops_a_task_for_its_script(agents):
    operator, user = logged_in(Role.OPERATOR)
    board = operator.get("/admin/agent-board/").content.decode()
    assert 'id="agent-{}"'.format(agents["planner"].pk) in board

    response = operator.post(
        "/admin/agent-board/",
        {"agent": agents["planner"].pk, "prompt": "Say hello"},
        HTTP_ACCEPT="application/json",
    )
    task = AgentTask.objects.get()
    assert response.status_code == 201
    assert response.json() == {
        "task": task.pk,
        "agent": agents["planner"].pk,
        "status": "queued",
        "channel": f"agent_task:{task.pk}",
        "panel_url": f"/admin/agent-board/tasks/{task.pk}/",
        "since": event_id_at(task.created_at),
    }
    assert (task.prompt, task.created_by, task.status) == ("Say hello", user, RunStatus.QUEUED)
    panel = operator.get(f"/admin/agent-board/tasks/{task.pk}/").content.decode()
    assert "data-stream" in panel and f'data-cancel-task="{task.pk}"' in panel

    refused = operator.post(
        "/admin/agent-board/",
        {"agent": agents["planner"].pk, "prompt": ""},
        HTTP_ACCEPT="application/json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"prompt": ["This field is required."]}

    stopped = operator.post(
        "/admin/agent-board/", {"action": "cancel", "task": task.pk}, HTTP_ACCEPT="application/json"
    )
    assert stopped.json() == {"task": task.pk, "status": "cancelled"}
    again = operator.post(
        "/admin/agent-board/", {"action": "cancel", "task": task.pk}, HTTP_ACCEPT="application/json"
    )
    assert again.status_code == 409

    # Without the script: a redirect to the board showing the task.
    response = operator.post(
        "/admin/agent-board/", {"agent": agents["reviewer"].pk, "prompt": "And you?"}
    )
    second = AgentTask.objects.get(prompt="And you?")
    assert response["Location"] == f"/admin/agent-board/?task={second.pk}#task-result"
    shown = operator.get(f"/admin/agent-board/?task={second.pk}").content.decode()
    assert f'data-task="{second.pk}"' in shown and f"agent_task:{second.pk}" in shown
