"""Human-in-the-loop approval requests: a risky action waits here until a person decides.

``ApprovalRequest`` is one decision asked of a person; ``ApprovalAuditEntry`` the append-only
trail of what happened to it; ``ApprovalPolicy`` the one row of runtime settings that says who
decides what, which requests approve themselves, what expiry means and when to escalate;
``ApprovalPolicyChange`` the append-only trail of who changed the policy and how.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.accounts.models import Role


class RiskLevel(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISK_ORDER = list(RiskLevel)


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class DeciderRole(models.TextChoices):
    """The roles that may decide (viewers never do), weakest first."""

    OPERATOR = Role.OPERATOR.value, "Operator"
    ADMIN = Role.ADMIN.value, "Admin"


class ApprovalRequest(models.Model):
    """One decision asked of a person. Once decided (or expired) it never changes again."""

    kind = models.CharField(max_length=64, help_text="What asks, e.g. build_step.")
    action = models.TextField(help_text="The proposed action, as the decider reads it.")
    risk_level = models.CharField(
        max_length=16, choices=RiskLevel.choices, default=RiskLevel.MEDIUM
    )
    context = models.JSONField(default=dict, blank=True)
    reference = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        help_text="What the decision applies to, e.g. build_step:42 or an external id.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approval_requests",
    )
    required_role = models.CharField(
        max_length=16,
        choices=DeciderRole.choices,
        default=DeciderRole.OPERATOR,
        help_text="The weakest role that may decide: the policy's for the risk level when "
        "asked, raised by escalation.",
    )
    status = models.CharField(
        max_length=16,
        choices=ApprovalStatus.choices,
        default=ApprovalStatus.PENDING,
        db_index=True,
    )
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approval_decisions",
    )
    decision_notes = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    self_decided = models.BooleanField(
        default=False,
        help_text="Decided by its own requester, as the policy's self-approval option allows "
        "for a low-risk request.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class AuditEvent(models.TextChoices):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ESCALATED = "escalated"


class ApprovalAuditEntry(models.Model):
    """The append-only trail of what happened to a request: asked, escalated, approved,
    rejected, expired. An entry is written once and never changed nor deleted on its own."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="audit")
    event = models.CharField(max_length=16, choices=AuditEvent.choices)
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("An audit entry is never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("An audit entry is never deleted.")


class ExpiryOutcome(models.TextChoices):
    REJECT = "reject", "Reject (status expired; what waits on it fails)"
    APPROVE = "approve", "Approve (what waits on it goes on)"


class ApprovalPolicy(models.Model):
    """The approvals' runtime settings: one row (pk 1), read on each request and decision.

    A critical request is always an admin's to decide; the other levels name the weakest role
    that may decide them, never a weaker one for a riskier level."""

    SINGLETON_PK = 1

    enabled = models.BooleanField(
        default=True,
        help_text="Human-in-the-loop (the 'hitl' feature). Off: every new request is approved "
        "at once by the platform (noted in its trail), so nothing waits for a person.",
    )
    low_role = models.CharField(
        max_length=16,
        choices=DeciderRole.choices,
        default=DeciderRole.OPERATOR,
        help_text="Who may decide a low-risk request.",
    )
    medium_role = models.CharField(
        max_length=16,
        choices=DeciderRole.choices,
        default=DeciderRole.OPERATOR,
        help_text="Who may decide a medium-risk request.",
    )
    high_role = models.CharField(
        max_length=16,
        choices=DeciderRole.choices,
        default=DeciderRole.OPERATOR,
        help_text="Who may decide a high-risk request. Critical ones: always an admin.",
    )
    auto_approve_enabled = models.BooleanField(
        default=False,
        help_text="Approve a new request at once when it is at most the risk below and its "
        "context's cost is at most the threshold.",
    )
    auto_approve_max_risk = models.CharField(
        max_length=16,
        choices=[(level.value, level.label) for level in RISK_ORDER[:-1]],
        default=RiskLevel.LOW,
        help_text="The riskiest level approved automatically (never critical).",
    )
    auto_approve_max_cost = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="The highest 'cost' in a request's context approved automatically; a request "
        "without a cost is then left to a person. Blank: no cost condition.",
    )
    self_approve_low_risk = models.BooleanField(
        default=False,
        help_text="Let a requester decide their own low-risk requests (a team of one); the "
        "decision is recorded as self-approved. Medium risk and above: never.",
    )
    expiry_outcome = models.CharField(
        max_length=16,
        choices=ExpiryOutcome.choices,
        default=ExpiryOutcome.REJECT,
        help_text="What a request nobody decided in time becomes.",
    )
    escalation_seconds = models.PositiveIntegerField(
        default=3600,
        validators=[MaxValueValidator(30 * 86400)],
        help_text="A request still pending after this long is announced once more, to the next "
        "role up (an admin), who then alone decides it. 0: never.",
    )
    default_expiry_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(365 * 86400)],
        help_text="How long a request that says nothing waits; blank: APPROVAL_TIMEOUT_SECONDS "
        "from the environment.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "approval policy"
        verbose_name_plural = "approval policy"

    def __str__(self) -> str:
        return "Approval policy"

    def clean(self) -> None:
        order = DeciderRole.values
        roles = (self.low_role, self.medium_role, self.high_role)
        if not all(role in order for role in roles):
            return  # the field's own choices say what is wrong
        low, medium, high = (order.index(role) for role in roles)
        weaker = "A riskier level may not need a weaker role than a safer one."
        if medium < low:
            raise ValidationError({"medium_role": weaker})
        if high < medium:
            raise ValidationError({"high_role": weaker})
        if (
            self.auto_approve_enabled
            and self.auto_approve_max_risk in RiskLevel.values
            and self.role_for(self.auto_approve_max_risk) == DeciderRole.ADMIN
        ):
            raise ValidationError(
                {
                    "auto_approve_max_risk": (
                        f"{RiskLevel(self.auto_approve_max_risk).label}-risk requests are an "
                        "admin's to decide: auto-approval goes no further than the levels "
                        "operators decide."
                    )
                }
            )

    def role_for(self, risk_level: str) -> DeciderRole:
        """The weakest role that may decide a request of ``risk_level``."""
        roles = {
            RiskLevel.LOW: self.low_role,
            RiskLevel.MEDIUM: self.medium_role,
            RiskLevel.HIGH: self.high_role,
            RiskLevel.CRITICAL: DeciderRole.ADMIN,
        }
        return DeciderRole(roles[RiskLevel(risk_level)])

    @property
    def expiry_seconds(self) -> int:
        return self.default_expiry_seconds or settings.APPROVAL_TIMEOUT_SECONDS


class ApprovalPolicyChange(models.Model):
    """One change of the policy: who made it and each field's value before and after
    (``{"enabled": [true, false]}``). Written once and never changed nor deleted."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who changed it; none: the platform (a script, a migration).",
    )
    changes = models.JSONField(help_text="Each changed field: [before, after].")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "approval policy change"

    def __str__(self) -> str:
        return f"Policy change #{self.pk}: {', '.join(self.changes)}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("A policy change is never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("A policy change is never deleted.")
