"""Reads of approval requests and their audit trail."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from .models import ApprovalAuditEntry, ApprovalRequest, ApprovalStatus


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


def approval_get(*, pk: int) -> ApprovalRequest:
    """One request with its audit trail (``audit``), oldest entry first."""
    audit = ApprovalAuditEntry.objects.select_related("actor").order_by("created_at", "id")
    queryset = approval_list().prefetch_related(Prefetch("audit", queryset=audit))
    return get_object_or_404(queryset, pk=pk)
