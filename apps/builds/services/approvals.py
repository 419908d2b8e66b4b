"""A step's approval gate: the step waits for an approval request (of kind ``build_step``) and
goes on, or fails its build, once the request is decided or expires."""

from __future__ import annotations

from typing import Any

from apps.approvals.models import ApprovalRequest, ApprovalStatus
from apps.approvals.services import approval_request_create

from ..models import Build, BuildStatus, BuildStep, RunStatus
from .transitions import announce_build, announce_step, build_fail_at, event_record, step_enqueue

APPROVAL_KIND = "build_step"


def step_approved(step: BuildStep) -> bool:
    return step.approval is not None and step.approval.status == ApprovalStatus.APPROVED


def step_await_approval(step: BuildStep) -> None:
    build = step.build
    approval = approval_request_create(
        kind=APPROVAL_KIND,
        action=f"Run step {step.position} ({step.name}) of build #{build.pk}: {build.title}",
        reference=f"build_step:{step.pk}",
        risk_level=step.approval_risk,
        context={"build": build.pk, "step": step.pk, "title": build.title, "step_name": step.name},
        requested_by=build.created_by,
    )
    step.approval = approval
    step.status = RunStatus.AWAITING_APPROVAL
    step.save(update_fields=["approval", "status"])
    event_record(build, step, "awaiting_approval", detail=f"Approval request #{approval.pk}")
    announce_step(step)
    build.status = BuildStatus.AWAITING_APPROVAL
    build.save(update_fields=["status"])
    announce_build(build)
    if approval.status != ApprovalStatus.PENDING:  # approved at once by the approval policy
        approval_decided_receiver(sender=ApprovalRequest, approval=approval)


def approval_decided_receiver(sender: type, approval: ApprovalRequest, **kwargs: Any) -> None:
    """An approval a step waits for was decided or expired: go on, or fail the build."""
    if approval.kind != APPROVAL_KIND:
        return
    step = (
        BuildStep.objects.select_for_update(of=("self",))
        .select_related("build", "agent")
        .filter(approval=approval, status=RunStatus.AWAITING_APPROVAL)
        .first()
    )
    if step is None:
        return
    build = Build.objects.select_for_update().get(pk=step.build_id)
    if approval.status == ApprovalStatus.APPROVED:
        event_record(build, step, "approved", detail=approval.decision_notes)
        build.status = BuildStatus.RUNNING
        build.save(update_fields=["status"])
        announce_build(build)
        step_enqueue(step)
        return
    reason = approval.decision_notes or ""
    what = "Rejected" if approval.status == ApprovalStatus.REJECTED else "Approval expired"
    event_record(build, step, approval.status, detail=reason)
    build_fail_at(step, f"{what}: {reason}" if reason else f"{what}.")
