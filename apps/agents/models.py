"""Agents: a named model configuration with a role and a system prompt, and the tasks they run."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.dispatch import stale_before


class ModelConfig(models.Model):
    """What an LLM call is made with: a public model name, an optional provider pin, sampling.

    Shared by agents and by build steps that run without an agent.
    """

    model = models.CharField(max_length=200, blank=True, help_text="Public model name.")
    provider = models.ForeignKey(
        "providers.Provider",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Pin every call to this provider (no fallback to others).",
    )
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )

    class Meta:
        abstract = True


class Agent(ModelConfig):
    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=100, help_text="What the agent does: planner, reviewer…")
    description = models.TextField(blank=True)
    system_prompt = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    """The life of one unit of LLM work (an agent task, a build step)."""

    PENDING = "pending"  # a build step not reached yet
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunRecord(models.Model):
    """The lifecycle and outcome of one run on Celery, kept from the moment it is enqueued."""

    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    output = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started it.")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    call_id = models.UUIDField(null=True, blank=True, help_text="The LLM call record.")

    class Meta:
        abstract = True

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def heartbeat_fresh(self) -> bool:
        """Its worker reported within ``BUILD_STEP_STALE_SECONDS`` (so it still runs it)."""
        return self.heartbeat_at is not None and self.heartbeat_at >= stale_before()


class AgentTask(RunRecord):
    """A single prompt run by one agent, queued on Celery."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agent_tasks",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.agent} task #{self.pk} ({self.status})"


class AgentActivity(models.Model):
    """The agent's activity log: tasks and build steps it queued, started, finished."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="activity")
    event = models.CharField(max_length=32)
    message = models.CharField(max_length=500, blank=True)
    task = models.ForeignKey(
        AgentTask, null=True, blank=True, on_delete=models.CASCADE, related_name="activity"
    )
    build_step_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "agent activity"

    def __str__(self) -> str:
        return f"{self.agent} {self.event}"
