"""Builds: multi-step LLM pipelines. Each step is run by an agent (or a raw model config) from a
prompt template; steps run in order on Celery and may wait for a person's approval."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from apps.agents.models import ModelConfig, RunRecord, RunStatus
from apps.approvals.models import RiskLevel

# A build's statuses are a run's (one definition, ``RunStatus``) but ``pending``: a build starts
# queued; only its later steps wait as pending.
if TYPE_CHECKING:  # django-stubs types no functional TextChoices: mypy checks them as run statuses
    BuildStatus = RunStatus
else:
    BuildStatus = models.TextChoices(
        "BuildStatus",
        [(status.name, status.value) for status in RunStatus if status != RunStatus.PENDING],
    )


BUILD_FINISHED = (BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELLED)


class BuildTemplate(models.Model):
    """A saved pipeline: its steps as they are given to ``build_create`` (``steps``)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    steps = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Build(models.Model):
    title = models.CharField(max_length=200)
    input = models.TextField(blank=True, help_text="What the build works on; {input} in prompts.")
    github_issue = models.CharField(
        "GitHub issue",
        max_length=250,
        blank=True,
        db_index=True,
        help_text="The issue the build was started from (owner/repo#number); its title, body "
        "and comments are the input.",
    )
    status = models.CharField(
        max_length=20, choices=BuildStatus.choices, default=BuildStatus.QUEUED, db_index=True
    )
    error = models.CharField(max_length=500, blank=True)
    template = models.ForeignKey(
        BuildTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="builds",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def finished(self) -> bool:
        return self.status in BUILD_FINISHED


class BuildStep(ModelConfig, RunRecord):
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    kind = models.CharField(
        max_length=50,
        default="llm",
        help_text="llm (a prompt run by a model), or a kind another app registers "
        "(github_pull_request, github_comment).",
    )
    options = models.JSONField(default=dict, blank=True, help_text="The kind's own options.")
    result_url = models.URLField(
        max_length=500, blank=True, help_text="What the step made, if anything (a pull request)."
    )
    agent = models.ForeignKey(
        "agents.Agent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="build_steps",
    )
    prompt_template = models.TextField(
        help_text="May use {input} and earlier steps' outputs: {steps.plan} or {previous}."
    )
    requires_approval = models.BooleanField(default=False)
    approval_risk = models.CharField(
        max_length=16,
        choices=RiskLevel.choices,
        default=RiskLevel.MEDIUM,
        help_text="The risk of the approval request its gate asks (with requires_approval): "
        "the policy's role for that level decides it, and with self-approval a low one may be "
        "decided by whoever started the build.",
    )
    approval = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["build", "position"]
        constraints = [
            models.UniqueConstraint(fields=["build", "position"], name="build_step_position"),
            models.UniqueConstraint(fields=["build", "name"], name="build_step_name"),
        ]

    def __str__(self) -> str:
        return f"{self.build_id}.{self.position} {self.name}"


class BuildEvent(models.Model):
    """The build's lifecycle, kept: queued, started, retried (with the count), waiting for
    approval, approved, rejected, finished — for the build and for each step."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="events")
    step = models.ForeignKey(
        BuildStep, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    event = models.CharField(max_length=32)
    status = models.CharField(max_length=20, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    detail = models.CharField(max_length=500, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.build_id} {self.event}"


__all__ = ["Build", "BuildEvent", "BuildStatus", "BuildStep", "BuildTemplate", "RunStatus"]
