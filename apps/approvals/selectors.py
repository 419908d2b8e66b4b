"""Reads of approval requests, their audit trail, their figures, the policy and its changes."""

from __future__ import annotations

from statistics import median
from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from .models import (
    ApprovalAuditEntry,
    ApprovalPolicy,
    ApprovalPolicyChange,
    ApprovalRequest,
    ApprovalStatus,
    RiskLevel,
)


def approval_policy() -> ApprovalPolicy:
    """The policy in force: the stored row, or the defaults (unsaved) before anyone set it.
    A read only (the feature status calls it)."""
    return ApprovalPolicy.objects.filter(pk=ApprovalPolicy.SINGLETON_PK).first() or (
        ApprovalPolicy(pk=ApprovalPolicy.SINGLETON_PK)
    )


def approval_policy_changes() -> QuerySet[ApprovalPolicyChange]:
    """Every change of the policy with who made it, the latest first."""
    return ApprovalPolicyChange.objects.select_related("actor").order_by("-created_at", "-id")


def hitl_enabled() -> bool:
    """Whether human-in-the-loop is on (the ``hitl`` feature)."""
    return approval_policy().enabled


def approval_list() -> QuerySet[ApprovalRequest]:
    """Requests, newest first, with who asked and who decided."""
    return ApprovalRequest.objects.select_related("requested_by", "decided_by")


def approval_pending_list() -> QuerySet[ApprovalRequest]:
    """The queue: requests still waiting for a decision, the one that expires first first
    (those without a deadline last), then the oldest."""
    return (
        approval_list()
        .filter(status=ApprovalStatus.PENDING)
        .order_by("expires_at", "created_at", "id")
    )


def approval_decided_list() -> QuerySet[ApprovalRequest]:
    """The history: requests decided or expired, the latest decision first."""
    return approval_list().exclude(status=ApprovalStatus.PENDING).order_by("-decided_at", "-id")


def approval_pending_count() -> int:
    return ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()


def approval_get(*, pk: int) -> ApprovalRequest:
    """One request with its audit trail (``audit``), oldest entry first."""
    queryset = approval_list().prefetch_related(Prefetch("audit", queryset=approval_audit()))
    return get_object_or_404(queryset, pk=pk)


def approval_audit() -> QuerySet[ApprovalAuditEntry]:
    return ApprovalAuditEntry.objects.select_related("actor").order_by("created_at", "id")


def approval_history(*, pk: int) -> QuerySet[ApprovalAuditEntry]:
    """The audit trail of request ``pk`` (404 when there is no such request), oldest first."""
    approval = get_object_or_404(ApprovalRequest.objects.only("pk"), pk=pk)
    return approval_audit().filter(approval=approval)


def approval_stats(queryset: QuerySet[ApprovalRequest] | None = None) -> dict[str, Any]:
    """Counts by status and by risk level (every choice present, zeros too), and the median
    time from asking to a person's decision, in seconds (None before any).

    The median is taken in Python over the decided requests' durations, so PostgreSQL and
    SQLite give the same figure; decisions the platform made (auto-approval, expiry) are not
    a person's and are left out of it."""
    requests = ApprovalRequest.objects.all() if queryset is None else queryset
    by_status = dict.fromkeys(ApprovalStatus.values, 0)
    by_risk = dict.fromkeys(RiskLevel.values, 0)
    for row in requests.order_by().values("status", "risk_level").annotate(n=Count("id")):
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        by_risk[row["risk_level"]] = by_risk.get(row["risk_level"], 0) + row["n"]
    decided = requests.filter(
        status__in=(ApprovalStatus.APPROVED, ApprovalStatus.REJECTED),
        decided_by__isnull=False,
        decided_at__isnull=False,
    ).values_list("created_at", "decided_at")
    durations = [
        (decided_at - created_at).total_seconds()
        for created_at, decided_at in decided
        if decided_at is not None
    ]
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_risk": by_risk,
        "decided_by_people": len(durations),
        "median_seconds_to_decision": round(median(durations), 3) if durations else None,
    }
