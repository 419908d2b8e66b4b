"""Builds running on a real Celery worker against the fake upstreams: steps in order, prompts
from earlier outputs, approvals, cancel, failure and retry, the sweep, idempotent redelivery."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from unidiff import PatchSet

from apps.accounts.models import Role
from apps.accounts.services import workspace_create
from apps.agents.models import AgentActivity
from apps.approvals.models import ApprovalStatus
from apps.approvals.services import approval_decide, approvals_expire_overdue
from apps.artifacts.models import Artifact, ArtifactKind
from apps.builds.models import Build, BuildStatus, BuildStep, RunStatus
from apps.builds.services import (
    build_cancel,
    build_create,
    build_retry,
    build_step_run,
    builds_sweep,
)
from apps.providers.models import CallStatus, EntryPoint, LlmCall
from tests.support.factories import user_create
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = "## Plan\n1. Add a model.\n2. Add a view."
CODE = (
    "Here it is.\n\n```python app/models.py\nclass Widget:\n    pass\n```\n\n"
    "File: app/views.py\n```python\ndef index(request):\n    return None\n```\n\n"
    "Patch for `app/urls.py`:\n```diff\n--- a/app/urls.py\n+++ b/app/urls.py\n"
    "@@ -1,2 +1,3 @@\n urlpatterns = [\n"
    "+    path('', index),\n ]\n```\n"
)
REVIEW = "Looks good."


def three_steps(approval: bool = False) -> list[dict]:
    return [
        {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
        {
            "name": "implement",
            "agent": "planner",
            "prompt": "Implement:\n{steps.plan}",
            "requires_approval": approval,
        },
        {"name": "review", "agent": "reviewer", "prompt": "Review:\n{previous}"},
    ]


def finished(build: Build, timeout: float = 30.0) -> Build:
    def done() -> Build | None:
        build.refresh_from_db()
        return build if build.finished else None

    return eventually(done, timeout, f"build {build.pk} finished")


def step_status(build: Build, name: str, status: str, timeout: float = 20.0) -> BuildStep:
    def reached() -> BuildStep | None:
        step = build.steps.get(name=name)
        return step if step.status == status else None

    return eventually(reached, timeout, f"step {name} {status}")


def test_three_steps_run_in_order(agents, upstream_a, celery_worker, recorded_calls):
    upstream_a.enqueue({"content": PLAN}, {"content": CODE}, {"content": REVIEW})
    user = user_create(role=Role.OPERATOR)
    workspace = workspace_create(name="widgets-team", members=[user])
    build = build_create(title="Widgets", input="a widget app", steps=three_steps(), by=user)

    build = finished(build)

    assert build.status == BuildStatus.SUCCEEDED, build.error
    steps = list(build.steps.order_by("position"))
    assert [s.output for s in steps] == [PLAN, CODE, REVIEW]
    assert all(s.status == RunStatus.SUCCEEDED and s.attempts == 1 for s in steps)
    assert all(s.celery_task_id for s in steps)
    calls = recorded_calls(3)
    by_step = {c.build_step_id: c for c in calls}
    for step in steps:
        call = by_step[step.pk]
        assert call.build_id == build.pk and call.agent_id == step.agent_id
        assert call.entry_point == EntryPoint.BUILD and call.status == CallStatus.SUCCESS
        assert (call.user_id, call.workspace_id) == (user.pk, workspace.pk)
        assert (call.input_tokens, call.output_tokens, call.cost) == (
            step.input_tokens,
            step.output_tokens,
            step.cost,
        )
    assert build.input_tokens == sum(c.input_tokens for c in calls)
    assert build.output_tokens == sum(c.output_tokens for c in calls)
    assert build.cost == sum((c.cost for c in calls), Decimal(0)) > 0
    events = list(build.events.values_list("step__name", "event"))
    assert events[:2] == [(None, "queued"), ("plan", "queued")]
    assert events[-1] == (None, "succeeded")
    for name in ("plan", "implement", "review"):
        assert [e for s, e in events if s == name] == ["queued", "started", "succeeded"]
    assert (
        AgentActivity.objects.filter(agent=agents["reviewer"], event="step_succeeded").count() == 1
    )
    artifacts = {(a.step.name, a.name): a for a in Artifact.objects.filter(build=build)}
    assert set(artifacts) == {
        ("plan", "1-plan.md"),
        ("implement", "2-implement.md"),
        ("review", "3-review.md"),
        ("implement", "app/models.py"),
        ("implement", "app/views.py"),
        ("implement", "app/urls.py.patch"),
    }
    assert artifacts[("implement", "app/models.py")].kind == ArtifactKind.CODE
    assert artifacts[("implement", "app/models.py")].language == "python"
    patch = artifacts[("implement", "app/urls.py.patch")]
    assert patch.kind == ArtifactKind.PATCH and not patch.note
    assert PatchSet(patch.file.open().read().decode())[0].path == "app/urls.py"
    assert artifacts[("plan", "1-plan.md")].content == PLAN


def test_prompts_carry_the_input_and_earlier_outputs(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": PLAN}, {"content": CODE}, {"content": REVIEW})
    build = finished(build_create(title="t", input="a widget app", steps=three_steps(), by=None))
    assert build.status == BuildStatus.SUCCEEDED
    review_request = upstream_a.stats()["last_request"]["body"]
    assert review_request["messages"][-1]["content"] == "Review:\n" + CODE
    assert "system" not in [m["role"] for m in review_request["messages"]]


def test_an_approved_step_continues(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": PLAN}, {"content": CODE}, {"content": REVIEW})
    requester, approver = user_create(role=Role.OPERATOR), user_create(role=Role.OPERATOR)
    build = build_create(title="gated", input="x", steps=three_steps(approval=True), by=requester)

    step = step_status(build, "implement", RunStatus.AWAITING_APPROVAL)
    build.refresh_from_db()
    assert build.status == BuildStatus.AWAITING_APPROVAL
    assert step.approval.status == ApprovalStatus.PENDING
    assert step.approval.reference == f"build_step:{step.pk}"
    assert upstream_a.stats()["requests"] == 1  # only the plan ran

    approval_decide(approval=step.approval, decision="approved", by=approver, notes="go")

    assert finished(build).status == BuildStatus.SUCCEEDED
    assert upstream_a.stats()["requests"] == 3
    assert "approved" in build.events.values_list("event", flat=True)


def test_a_rejected_step_fails_the_build_with_the_reason(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": PLAN})
    build = build_create(
        title="gated", steps=three_steps(approval=True), by=user_create(role=Role.OPERATOR)
    )
    step = step_status(build, "implement", RunStatus.AWAITING_APPROVAL)

    approval_decide(
        approval=step.approval,
        decision="rejected",
        by=user_create(role=Role.OPERATOR),
        notes="too risky",
    )

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED and "too risky" in build.error
    assert build.steps.get(name="review").status == RunStatus.PENDING


def test_an_expired_approval_fails_the_build(agents, upstream_a, celery_worker):
    upstream_a.enqueue({"content": PLAN})
    build = build_create(title="gated", steps=three_steps(approval=True), by=None)
    step = step_status(build, "implement", RunStatus.AWAITING_APPROVAL)
    type(step.approval).objects.filter(pk=step.approval_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert approvals_expire_overdue() == 1

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED and "expired" in build.error.lower()


def test_nobody_approves_their_own_step(agents, upstream_a, celery_worker):
    from django.core.exceptions import PermissionDenied

    upstream_a.enqueue({"content": PLAN})
    user = user_create(role=Role.OPERATOR)
    build = build_create(title="gated", steps=three_steps(approval=True), by=user)
    step = step_status(build, "implement", RunStatus.AWAITING_APPROVAL)
    with pytest.raises(PermissionDenied):
        approval_decide(approval=step.approval, decision="approved", by=user)


def test_cancel_stops_the_running_stream(agents, upstream_a, celery_worker, recorded_calls):
    upstream_a.configure(chunk_delay_ms=200, tokens=200)
    build = build_create(title="slow", steps=three_steps(), by=None)
    step_status(build, "plan", RunStatus.RUNNING)
    eventually(lambda: upstream_a.stats()["requests"] >= 1, what="the upstream asked")

    build_cancel(build=build)

    (call,) = recorded_calls(1, timeout=15)
    assert call.status == CallStatus.CANCELLED and call.build_step_id
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED
    assert set(build.steps.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    eventually(lambda: upstream_a.stats()["client_disconnects"] >= 1, 10, "the upstream closed")


def test_a_failed_step_fails_the_build_and_retry_goes_on(
    agents, upstream_a, upstream_b, celery_worker
):
    upstream_a.configure(status=500)
    upstream_b.configure(status=500)
    build = finished(build_create(title="t", steps=three_steps(), by=None))
    assert build.status == BuildStatus.FAILED and build.error.startswith("Step plan:")
    assert build.steps.get(name="plan").status == RunStatus.FAILED

    upstream_a.reset()
    upstream_b.reset()
    build_retry(build=build)

    build = finished(build)
    assert build.status == BuildStatus.SUCCEEDED
    assert build.steps.get(name="plan").attempts == 2
    assert "retried" in build.events.values_list("event", flat=True)


def test_a_redelivered_step_does_not_run_twice(agents, upstream_a, celery_worker):
    build = finished(build_create(title="t", steps=three_steps()[:1], by=None))
    step = build.steps.get()
    requests = upstream_a.stats()["requests"]

    build_step_run(step_id=step.pk, celery_task_id=step.celery_task_id)

    assert upstream_a.stats()["requests"] == requests
    step.refresh_from_db()
    assert step.attempts == 1


def test_a_step_found_running_without_a_heartbeat_runs_again_as_a_new_attempt(agents, upstream_a):
    """Its worker died before acknowledging; the message comes again. The lost attempt is kept
    in the "retried" event, the step's clock restarts with the new attempt."""
    upstream_a.enqueue({"content": REVIEW})
    silent_since = timezone.now() - timedelta(seconds=300)
    build = Build.objects.create(title="lost", status=BuildStatus.RUNNING, started_at=silent_since)
    step = BuildStep.objects.create(
        build=build,
        position=1,
        name="review",
        prompt_template="Review",
        agent=agents["reviewer"],
        status=RunStatus.RUNNING,
        attempts=1,
        celery_task_id="lost-worker",
        started_at=silent_since,
        heartbeat_at=silent_since,
    )

    build_step_run(step_id=step.pk, celery_task_id="lost-worker")

    step.refresh_from_db()
    assert step.status == RunStatus.SUCCEEDED and step.output == REVIEW
    assert step.attempts == 2 and step.started_at > silent_since
    assert list(step.events.values_list("event", "attempt")) == [
        ("retried", 1),
        ("started", 2),
        ("succeeded", 2),
    ]
    assert Build.objects.get(pk=build.pk).status == BuildStatus.SUCCEEDED


def test_the_sweep_fails_a_step_whose_worker_vanished(agents, settings):
    build = Build.objects.create(title="orphan", status=BuildStatus.RUNNING)
    step = BuildStep.objects.create(
        build=build,
        position=1,
        name="plan",
        prompt_template="x",
        status=RunStatus.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(seconds=300),
    )
    settings.BUILD_STEP_STALE_SECONDS = 60

    assert builds_sweep() == 1

    build.refresh_from_db()
    step.refresh_from_db()
    assert step.status == RunStatus.FAILED and build.status == BuildStatus.FAILED
    assert "worker" in build.error


def test_bad_steps_are_refused(agents):
    from django.core.exceptions import ValidationError

    for steps in (
        [],
        "plan",
        [{"name": "a"}],
        [{"name": "a", "prompt": "x", "agent": "nobody"}],
        [{"name": "a", "prompt": "{steps.b}"}],
        [{"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}],
        [{"name": "a b", "prompt": "x"}],
        [{"name": "a", "prompt": "x", "temperature": 9}],
        [{"name": "a", "prompt": "x", "colour": "red"}],
    ):
        with pytest.raises(ValidationError):
            build_create(title="t", steps=steps, by=None)
    assert not Build.objects.exists() and not LlmCall.objects.exists()


def test_a_step_past_its_time_limit_fails(agents, upstream_a, server_env, settings):
    from tests.support.processes import CeleryWorker

    settings.BUILD_TASK_QUEUE = "builds-limit-test"
    env = {**server_env, "BUILD_TASK_QUEUE": "builds-limit-test", "BUILD_STEP_TIME_LIMIT": "2"}
    upstream_a.configure(chunk_delay_ms=200, tokens=200)
    worker = CeleryWorker(env, name="limited", queues="builds-limit-test").start()
    try:
        build = finished(build_create(title="slow", steps=three_steps()[:1], by=None))
    finally:
        worker.stop()
    assert build.status == BuildStatus.FAILED and "Time limit of 2 s" in build.error
    eventually(lambda: upstream_a.stats()["client_disconnects"] >= 1, 10, "the upstream closed")
