"""Approval requests as the API publishes them, and the one write: a decision."""

from __future__ import annotations

from rest_framework import serializers

from ..models import ApprovalAuditEntry, ApprovalRequest
from ..services import DECISIONS


class DecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=[(decision.value, decision.label) for decision in DECISIONS],
        error_messages={"invalid_choice": '"{input}" is not a decision; use approved or rejected.'},
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why; kept in the audit trail."
    )


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
            "requested_by", "requested_by_username", "created_at", "expires_at",
            "decided_by", "decided_by_username", "decision_notes", "decided_at",
        ]  # fmt: skip


class ApprovalDetailOutputSerializer(ApprovalOutputSerializer):
    audit = AuditEntryOutputSerializer(many=True, read_only=True)

    class Meta(ApprovalOutputSerializer.Meta):
        fields = [*ApprovalOutputSerializer.Meta.fields, "audit"]
