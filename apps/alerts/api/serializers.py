from __future__ import annotations

from rest_framework import serializers

from ..models import Alert, NotificationChannel, NotificationDelivery, Severity


class AlertOutputSerializer(serializers.ModelSerializer):
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", default=None, read_only=True
    )

    class Meta:
        model = Alert
        fields = [
            "id", "cause", "kind", "title", "detail", "severity", "status", "data",
            "occurrences", "raised_at", "last_seen_at", "acknowledged_at", "acknowledged_by",
            "resolved_at",
        ]  # fmt: skip


class NotificationChannelInputSerializer(serializers.Serializer):
    """``url`` is write-only: it is never returned, and a change without it keeps it."""

    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=2000, write_only=True)
    min_severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.WARNING)
    notify_resolved = serializers.BooleanField(default=True)
    enabled = serializers.BooleanField(default=True)


class NotificationChannelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationChannel
        fields = [
            "id", "name", "service", "min_severity", "notify_resolved", "enabled", "created_at",
            "updated_at",
        ]  # fmt: skip


class NotificationDeliveryOutputSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name", read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = [
            "id", "channel", "alert", "event", "title", "body", "severity", "status", "attempts",
            "next_attempt_at", "error", "created_at", "sent_at",
        ]  # fmt: skip
