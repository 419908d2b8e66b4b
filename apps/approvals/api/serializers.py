"""Approval requests as the API publishes them, and its writes: a request (in the request
API's words: ``action_type``, ``proposed_action``…), a decision (either shape), the policy."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.limits import TEXT_MAX_CHARS, json_size_error

from ..models import (
    ApprovalAuditEntry,
    ApprovalPolicy,
    ApprovalPolicyChange,
    ApprovalRequest,
    ApprovalStatus,
    DeciderRole,
    ExpiryOutcome,
    RiskLevel,
)
from ..services import APPROVAL_POLICY_FIELDS, DECISIONS

MAX_EXPIRY_SECONDS = 365 * 86400


class ApprovalRequestInputSerializer(serializers.Serializer):
    """``POST /approvals/request``, in the payload of the earlier approvals service:
    ``orchestration_id`` is kept as the request's ``reference``, ``approval_type`` as its
    ``kind``, ``proposed_action`` as its ``action``. The requester is the caller;
    ``requester_id``, if given, must be the caller's id."""

    orchestration_id = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="What the decision applies to (kept as reference), e.g. orch_123.",
    )
    approval_type = serializers.CharField(max_length=64, help_text="Kept as kind, e.g. financial.")
    proposed_action = serializers.CharField(
        max_length=TEXT_MAX_CHARS, help_text="Kept as action: what would be done."
    )
    risk_level = serializers.ChoiceField(choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    requester_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="Your own user id, or leave it out."
    )
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]
    expires_in_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_EXPIRY_SECONDS,
        help_text="How long it waits; the policy's default expiry when left out.",
    )

    def validate_context(self, value: dict[str, Any]) -> dict[str, Any]:
        error = json_size_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value


class DecisionInputSerializer(serializers.Serializer):
    """Ours, ``{"decision": "approved" | "rejected", "notes"}``, or the pending queue's,
    ``{"approved": true | false, "approver_id", "approval_notes"}``. The approver is the
    caller; ``approver_id``, if given, must be the caller's id."""

    decision = serializers.ChoiceField(
        choices=[(decision.value, decision.label) for decision in DECISIONS],
        required=False,
        error_messages={"invalid_choice": '"{input}" is not a decision; use approved or rejected.'},
    )
    approved = serializers.BooleanField(
        required=False, help_text="True approves, false rejects (the pending queue's payload)."
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Why; kept in the trail."
    )
    approval_notes = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Why (the pending queue's payload); kept in the trail.",
    )
    approver_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="Your own user id, or leave it out."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        decision = attrs.get("decision")
        if "approved" in attrs:
            said = ApprovalStatus.APPROVED if attrs["approved"] else ApprovalStatus.REJECTED
            if decision is not None and decision != said:
                raise serializers.ValidationError({"decision": "Contradicts approved."})
            decision = said
        if decision is None:
            raise serializers.ValidationError(
                {"decision": "Say approved or rejected (or approved: true or false)."}
            )
        notes = attrs.get("notes")
        if notes is not None and attrs.get("approval_notes") not in (None, notes):
            raise serializers.ValidationError({"notes": "Give notes or approval_notes, not both."})
        return {
            "decision": decision,
            "notes": (notes if notes is not None else attrs.get("approval_notes", "")).strip(),
            "approver_id": attrs.get("approver_id"),
        }


class AuditEntryOutputSerializer(serializers.ModelSerializer):
    actor_username = serializers.CharField(source="actor.username", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalAuditEntry
        fields = ["id", "event", "actor", "actor_username", "notes", "created_at"]


class ApprovalOutputSerializer(serializers.ModelSerializer):
    requested_by_username = serializers.CharField(
        source="requested_by.username", read_only=True, allow_null=True
    )
    decided_by_username = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "id", "kind", "action", "risk_level", "context", "reference", "status",
            "required_role", "requested_by", "requested_by_username", "created_at",
            "expires_at", "escalated_at", "decided_by", "decided_by_username", "decision_notes",
            "decided_at", "self_decided",
        ]  # fmt: skip


class ApprovalDetailOutputSerializer(ApprovalOutputSerializer):
    audit = AuditEntryOutputSerializer(many=True, read_only=True)

    class Meta(ApprovalOutputSerializer.Meta):
        fields = [*ApprovalOutputSerializer.Meta.fields, "audit"]


class ApprovalStatsOutputSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text="pending, approved, rejected, expired."
    )
    by_risk = serializers.DictField(
        child=serializers.IntegerField(), help_text="low, medium, high, critical."
    )
    decided_by_people = serializers.IntegerField(
        help_text="Requests a person approved or rejected (the median's sample)."
    )
    median_seconds_to_decision = serializers.FloatField(
        allow_null=True,
        help_text="From asking to a person's decision; null before any. Auto-approvals and "
        "expiries are not a person's decision and are left out.",
    )


class ApprovalPolicyOutputSerializer(serializers.ModelSerializer):
    updated_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="null until the policy is first changed."
    )

    class Meta:
        model = ApprovalPolicy
        fields = [*APPROVAL_POLICY_FIELDS, "updated_at"]


class ApprovalPolicyChangeOutputSerializer(serializers.ModelSerializer):
    actor_username = serializers.CharField(source="actor.username", read_only=True, allow_null=True)
    changes = serializers.DictField(
        child=serializers.ListField(), help_text="Each changed field: [before, after]."
    )

    class Meta:
        model = ApprovalPolicyChange
        fields = ["id", "actor", "actor_username", "changes", "created_at"]


class ApprovalPolicyInputSerializer(serializers.Serializer):
    """PATCH: any of the fields."""

    enabled = serializers.BooleanField(required=False)
    low_role = serializers.ChoiceField(choices=DeciderRole.choices, required=False)
    medium_role = serializers.ChoiceField(choices=DeciderRole.choices, required=False)
    high_role = serializers.ChoiceField(choices=DeciderRole.choices, required=False)
    auto_approve_enabled = serializers.BooleanField(required=False)
    auto_approve_max_risk = serializers.ChoiceField(
        choices=[c for c in RiskLevel.choices if c[0] != RiskLevel.CRITICAL], required=False
    )
    auto_approve_max_cost = serializers.DecimalField(
        max_digits=12, decimal_places=4, required=False, allow_null=True, min_value=0
    )
    self_approve_low_risk = serializers.BooleanField(required=False)
    expiry_outcome = serializers.ChoiceField(choices=ExpiryOutcome.choices, required=False)
    escalation_seconds = serializers.IntegerField(required=False, min_value=0)
    default_expiry_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class ApprovalPolicyReplaceSerializer(ApprovalPolicyInputSerializer):
    """PUT: the whole policy, every field given."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            field.required = True
        return fields
