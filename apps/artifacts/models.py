"""Artifacts: the files a build produces (a report per step, code files, patches), kept through
Django's storage API with their size, checksum and language."""

from __future__ import annotations

from django.db import models


class ArtifactKind(models.TextChoices):
    REPORT = "report"
    CODE = "code"
    PATCH = "patch"


def artifact_path(artifact: Artifact, filename: str) -> str:
    return f"artifacts/build-{artifact.build_id or 0}/step-{artifact.step_id or 0}/{filename}"


class Artifact(models.Model):
    build = models.ForeignKey(
        "builds.Build", null=True, blank=True, on_delete=models.CASCADE, related_name="artifacts"
    )
    step = models.ForeignKey(
        "builds.BuildStep",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="artifacts",
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    name = models.CharField(max_length=255, db_index=True)
    kind = models.CharField(max_length=16, choices=ArtifactKind.choices, db_index=True)
    language = models.CharField(max_length=32, blank=True)
    file = models.FileField(upload_to=artifact_path, max_length=500)
    content = models.TextField(blank=True, help_text="The text, for search and preview.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the file.")
    note = models.CharField(
        max_length=500,
        blank=True,
        help_text="Why the artifact is not what its block claimed (a diff that does not parse).",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["step", "name"], name="artifact_name_per_step")
        ]

    def __str__(self) -> str:
        return self.name
