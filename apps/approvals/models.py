"""Human-in-the-loop approval requests: a risky action waits here until a person decides.

This is the part the build approval gate needs; the policy (who may decide what, auto-approval,
escalation) and the dashboard's queue belong to the approvals issue.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RiskLevel(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRequest(models.Model):
    """One decision asked of a person. Once decided (or expired) it never changes again."""

    kind = models.CharField(max_length=64, help_text="What asks, e.g. build_step.")
    action = models.TextField(help_text="The proposed action, as the decider reads it.")
    risk_level = models.CharField(
        max_length=16, choices=RiskLevel.choices, default=RiskLevel.MEDIUM
    )
    context = models.JSONField(default=dict, blank=True)
    reference = models.CharField(
        max_length=200, blank=True, db_index=True,
        help_text="What the decision applies to, e.g. build_step:42 or an external id.",
    )  # fmt: skip
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="approval_requests",
    )  # fmt: skip
    status = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING,
        db_index=True,
    )  # fmt: skip
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="approval_decisions",
    )  # fmt: skip
    decision_notes = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class ApprovalAuditEntry(models.Model):
    """The append-only trail of what happened to a request: asked, approved, rejected, expired."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="audit")
    event = models.CharField(max_length=16)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "approval audit entries"

    def __str__(self) -> str:
        return f"{self.approval_id} {self.event}"
