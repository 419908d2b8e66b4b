"""Output serializers: every published field listed. A backup is started with an empty POST."""

from __future__ import annotations

from rest_framework import serializers

from ..models import Backup


class BackupOutputSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(
        source="requested_by.username", read_only=True, allow_null=True
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Backup
        fields = [
            "id",
            "status",
            "trigger",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "name",
            "location",
            "size",
            "sha256",
            "encrypted",
            "database_vendor",
            "summary",
            "error",
            "celery_task_id",
        ]


class BackupDetailOutputSerializer(BackupOutputSerializer):
    class Meta(BackupOutputSerializer.Meta):
        fields = [*BackupOutputSerializer.Meta.fields, "log"]
