"""Asking for a decision, deciding, expiring. Decisions are final, each kept in the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import user_role
from apps.core.events import publish_on_commit

from .models import ApprovalAuditEntry, ApprovalRequest, ApprovalStatus, RiskLevel
from .signals import approval_decided

DECISIONS = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)


def approval_request_create(
    *,
    kind: str,
    action: str,
    reference: str = "",
    risk_level: str = RiskLevel.MEDIUM,
    context: dict[str, Any] | None = None,
    requested_by: User | None = None,
    expires_in_seconds: float | None = None,
) -> ApprovalRequest:
    if risk_level not in RiskLevel.values:
        raise ValidationError({"risk_level": f"One of: {', '.join(RiskLevel.values)}."})
    expires_at = (
        timezone.now() + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
    )
    with transaction.atomic():
        approval = ApprovalRequest.objects.create(
            kind=kind, action=action, reference=reference, risk_level=risk_level,
            context=context or {}, requested_by=requested_by, expires_at=expires_at,
        )  # fmt: skip
        ApprovalAuditEntry.objects.create(approval=approval, event="requested", actor=requested_by)
        _announce(approval)
    return approval


def approval_decide(
    *, approval: ApprovalRequest, decision: str, by: User, notes: str = ""
) -> ApprovalRequest:
    """Approve or reject. Nobody decides their own request; a critical one only an admin."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": "Either approved or rejected."})
    if approval.requested_by_id is not None and approval.requested_by_id == by.pk:
        raise PermissionDenied("Nobody may decide their own request.")
    if approval.risk_level == RiskLevel.CRITICAL and user_role(user=by) != Role.ADMIN:
        raise PermissionDenied("Only an admin may decide a critical request.")
    with transaction.atomic():
        approval = ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
        _settle(approval, decision, by, notes)
    return approval


def approvals_expire_overdue() -> int:
    """Expire every pending request past its time (run by Celery beat); their waiters fail."""
    expired = 0
    overdue = ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING, expires_at__lte=timezone.now()
    ).values_list("pk", flat=True)
    for pk in overdue:
        with transaction.atomic():
            approval = ApprovalRequest.objects.select_for_update().get(pk=pk)
            if approval.status == ApprovalStatus.PENDING:
                _settle(approval, ApprovalStatus.EXPIRED, None, "Expired before anyone decided.")
                expired += 1
    return expired


def _settle(approval: ApprovalRequest, status: str, by: User | None, notes: str) -> None:
    if approval.status != ApprovalStatus.PENDING:
        raise ValidationError(f"This request was already {approval.status}.")
    approval.status = status
    approval.decided_by = by
    approval.decision_notes = notes
    approval.decided_at = timezone.now()
    approval.save(update_fields=["status", "decided_by", "decision_notes", "decided_at"])
    ApprovalAuditEntry.objects.create(approval=approval, event=status, actor=by, notes=notes)
    approval_decided.send(sender=ApprovalRequest, approval=approval)
    _announce(approval)


def _announce(approval: ApprovalRequest) -> None:
    publish_on_commit(
        "approvals", "approval.updated",
        {"id": approval.pk, "kind": approval.kind, "status": approval.status,
         "risk_level": approval.risk_level, "reference": approval.reference},
    )  # fmt: skip
