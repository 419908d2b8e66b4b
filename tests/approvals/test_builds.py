"""The build step that waits on a request: a decision, an expiry, an auto-approval or the
human-in-the-loop switch wakes it or fails it, in the transaction that settles the request.

The service-level tests run the worker's function (``build_step_run``) in the test's own
transaction (the queued task is never sent); the last one runs a whole build on a real Celery
worker against the fake upstream."""

from __future__ import annotations

import pytest

from apps.accounts.models import Role
from apps.approvals.models import ApprovalStatus
from apps.approvals.services import (
    HITL_OFF_NOTE,
    approval_decide,
    approval_policy_update,
    approvals_expire_overdue,
)
from apps.builds.models import Build, BuildStatus, BuildStep, RunStatus
from apps.builds.services import build_create, build_step_run
from tests.approvals.conftest import trail
from tests.approvals.test_expiry import until
from tests.support.factories import user_create
from tests.support.waiting import eventually

GATED = [{"name": "ship", "agent": "planner", "prompt": "Ship {input}", "requires_approval": True}]


def gated_build(by=None) -> tuple[Build, BuildStep]:
    """A build whose first step requires approval, run by the worker's function up to the
    point where it asks."""
    build = build_create(title="gated", input="it", steps=GATED, by=by)
    step = build.steps.get()
    build_step_run(step_id=step.pk, celery_task_id=step.celery_task_id)
    step.refresh_from_db()
    build.refresh_from_db()
    return build, step


def events(build: Build) -> list[str]:
    return list(build.events.order_by("id").values_list("event", flat=True))


@pytest.mark.django_db
class TestTheWaitingStep:
    def test_a_decision_wakes_it(self, planner):
        build, step = gated_build(by=user_create(role=Role.OPERATOR))
        assert step.status == RunStatus.AWAITING_APPROVAL
        assert build.status == BuildStatus.AWAITING_APPROVAL
        task_before = step.celery_task_id

        approval_decide(
            approval=step.approval,
            decision="approved",
            by=user_create(role=Role.OPERATOR),
            notes="go",
        )

        step.refresh_from_db()
        build.refresh_from_db()
        assert step.status == RunStatus.QUEUED and step.celery_task_id != task_before
        assert build.status == BuildStatus.RUNNING
        assert events(build)[-2:] == ["approved", "queued"]

    def test_expiry_fails_the_build_on_time(self, planner):
        approval_policy_update(default_expiry_seconds=1)
        build, step = gated_build()
        assert approvals_expire_overdue() == 0
        build.refresh_from_db()
        assert build.status == BuildStatus.AWAITING_APPROVAL

        until(step.approval.expires_at)
        assert approvals_expire_overdue() == 1

        build.refresh_from_db()
        step.refresh_from_db()
        assert step.approval.status == ApprovalStatus.EXPIRED
        assert build.status == BuildStatus.FAILED and step.status == RunStatus.FAILED
        assert build.error == "Step ship: Approval expired: Expired before anyone decided."

    def test_approve_on_expiry_lets_it_go_on(self, planner):
        approval_policy_update(default_expiry_seconds=1, expiry_outcome="approve")
        build, step = gated_build()
        until(step.approval.expires_at)
        assert approvals_expire_overdue() == 1
        step.refresh_from_db()
        assert step.approval.status == ApprovalStatus.APPROVED
        assert step.status == RunStatus.QUEUED

    def test_an_auto_approval_does_not_leave_it_waiting(self, planner):
        approval_policy_update(
            auto_approve_enabled=True, auto_approve_max_risk="medium", auto_approve_max_cost=None
        )
        build, step = gated_build(by=None)
        assert step.approval.status == ApprovalStatus.APPROVED
        assert step.approval.decision_notes.startswith("Auto-approved by rule: risk medium")
        assert trail(step.approval) == ["requested", "approved"]
        assert step.status == RunStatus.QUEUED and build.status == BuildStatus.RUNNING
        assert events(build)[-3:] == ["awaiting_approval", "approved", "queued"]

    def test_a_rule_never_approves_a_persons_own_step_above_low_risk(self, planner):
        approval_policy_update(
            auto_approve_enabled=True, auto_approve_max_risk="medium", auto_approve_max_cost=None
        )
        build, step = gated_build(by=user_create(role=Role.OPERATOR))
        assert step.approval.status == ApprovalStatus.PENDING
        assert trail(step.approval) == ["requested"]
        assert step.status == RunStatus.AWAITING_APPROVAL
        assert build.status == BuildStatus.AWAITING_APPROVAL

    def test_with_hitl_switched_off_nothing_waits(self, planner):
        approval_policy_update(enabled=False)
        build, step = gated_build()
        assert step.approval.status == ApprovalStatus.APPROVED
        assert step.approval.decision_notes == HITL_OFF_NOTE
        assert step.status == RunStatus.QUEUED and build.status == BuildStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_an_auto_approved_step_runs_to_the_end_on_the_worker(planner, upstream_a, celery_worker):
    approval_policy_update(
        auto_approve_enabled=True, auto_approve_max_risk="medium", auto_approve_max_cost=None
    )
    upstream_a.enqueue({"content": "shipped"})

    build = build_create(title="gated", input="it", steps=GATED, by=None)

    def finished() -> Build | None:
        build.refresh_from_db()
        return build if build.finished else None

    assert eventually(finished, 30, "the build finished").status == BuildStatus.SUCCEEDED
    step = build.steps.get()
    assert step.output == "shipped" and step.approval.status == ApprovalStatus.APPROVED
    assert step.approval.decided_by is None
    assert "awaiting_approval" in events(build) and "approved" in events(build)
