"""Output serializers: every published field listed. Artifacts are produced by builds, never
written through the API."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Artifact


class ArtifactOutputSerializer(serializers.ModelSerializer):
    step_name = serializers.CharField(source="step.name", read_only=True, allow_null=True)
    step_position = serializers.IntegerField(
        source="step.position", read_only=True, allow_null=True
    )
    agent_name = serializers.CharField(source="agent.name", read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField(help_text="The file, as an attachment.")

    class Meta:
        model = Artifact
        fields = [
            "id", "build", "step", "step_name", "step_position", "agent", "agent_name", "name",
            "kind", "language", "content_type", "size", "checksum", "note", "created_at",
            "download_url",
        ]  # fmt: skip

    @extend_schema_field(serializers.CharField())
    def get_download_url(self, artifact: Artifact) -> str:
        return reverse("artifact-download", kwargs={"pk": artifact.pk})


class ArtifactDetailOutputSerializer(ArtifactOutputSerializer):
    class Meta(ArtifactOutputSerializer.Meta):
        fields = [*ArtifactOutputSerializer.Meta.fields, "content"]
