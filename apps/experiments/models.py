"""A/B tests and canary rollouts of model configurations.

An ``Experiment`` splits the users who ask to join it between ``Variant`` rows: a control and one
or more treatments, each with a share of the traffic and the model config it overrides
(provider, model, temperature, max tokens, system prompt). The split of a running experiment is
fixed for an ``ExperimentPhase``: changing its variants or weights starts a new phase, whose
assignments, call records and tracked events are counted apart from the earlier ones.

An ``Assignment`` says which variant a user got in a phase (the hash of experiment, phase seed
and user decides it; the row records it); ``TrackedEvent`` rows are the conversions and feedback
scores callers report. A ``CanaryRollout`` ramps one treatment through traffic steps on a
schedule and rolls it back when it is worse than the control; each move is a ``CanaryEvent``.
``ExperimentSettings`` (one row) switches the feature and holds its defaults.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

PERCENT_VALIDATORS = [MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))]


def percent_field(**extra: Any) -> models.DecimalField:
    return models.DecimalField(
        max_digits=5, decimal_places=2, validators=PERCENT_VALIDATORS, **extra
    )


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class VariantKind(models.TextChoices):
    CONTROL = "control", "Control"
    TREATMENT = "treatment", "Treatment"


class Experiment(models.Model):
    name = models.CharField(
        max_length=100,
        unique=True,
        help_text="Requests join by this name (or the id): the body's 'experiment' or the "
        "X-Orchestra-Experiment header.",
    )
    description = models.TextField(blank=True)
    hypothesis = models.TextField(blank=True)
    metric = models.CharField(
        max_length=100,
        default="conversion",
        help_text="The primary metric: what a tracked conversion stands for (accuracy, a "
        "sign-up); the experiment compares the variants' conversion rates.",
    )
    user_percentage = percent_field(
        default=Decimal(100),
        help_text="Share of users in the experiment (0-100); the others get the default config.",
    )
    status = models.CharField(
        max_length=16,
        choices=ExperimentStatus.choices,
        default=ExperimentStatus.DRAFT,
        db_index=True,
    )
    phase = models.PositiveIntegerField(default=0, help_text="The current phase; 0 before start.")
    winner = models.ForeignKey(
        "Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conclusion = models.TextField(blank=True, help_text="What stopping concluded.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm of an experiment and the model config it applies (blank: the request's own)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=VariantKind.choices)
    traffic_percentage = percent_field(help_text="Share of the experiment's users (0-100).")
    position = models.PositiveSmallIntegerField(default=0)
    provider = models.CharField(max_length=64, blank=True, help_text="Pin calls to this provider.")
    model = models.CharField(max_length=200, blank=True, help_text="A public model name.")
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(2)]
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(2**31 - 1)]
    )
    system_prompt = models.TextField(
        blank=True, help_text="Replaces the request's system message (or comes first)."
    )

    class Meta:
        ordering = ["experiment", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="unique_variant_name")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name}/{self.name}"

    @property
    def config(self) -> dict[str, Any]:
        """The overrides it applies, as the API shows them (only those set)."""
        values = {
            "provider": self.provider, "model": self.model, "temperature": self.temperature,
            "max_tokens": self.max_tokens, "system_prompt": self.system_prompt,
        }  # fmt: skip
        return {name: value for name, value in values.items() if value not in (None, "")}


class ExperimentPhase(models.Model):
    """A period of a running experiment with one split. ``seed`` enters the assignment hash:
    a new split of the variants re-randomises (a new seed), a canary's next step keeps the seed,
    so the users already on the treatment stay on it."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveIntegerField()
    seed = models.CharField(max_length=64)
    user_percentage = percent_field()
    allocation = models.JSONField(
        default=list, help_text="[{variant, name, kind, traffic_percentage}] of this phase."
    )
    reason = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="unique_phase_number")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name} phase {self.number}"


class Assignment(models.Model):
    """The variant a user got in a phase (the hash decides; the row records it)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    phase = models.PositiveIntegerField()
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="assignments")
    user_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "phase", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "phase", "user_id"], name="unique_assignment"
            )
        ]
        indexes = [models.Index(fields=["experiment", "phase", "variant"])]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.variant_id} (phase {self.phase})"


class TrackedEventKind(models.TextChoices):
    CONVERSION = "conversion", "Conversion"
    FEEDBACK = "feedback", "Feedback score"


class TrackedEvent(models.Model):
    """A conversion (with an optional value) or a numeric feedback score of an assigned user."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    phase = models.PositiveIntegerField()
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="tracked_events")
    user_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=TrackedEventKind.choices)
    value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["experiment", "phase", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.user_id}"


def default_canary_steps() -> list[int]:
    return [5, 25, 50, 100]


class ExperimentSettings(models.Model):
    """One row: the feature's switch, the significance level, the guardrails' margins, minimum
    sample and latency floor (also a new canary's defaults). Every process follows it within
    seconds."""

    enabled = models.BooleanField(
        default=True,
        help_text="Off: requests naming an experiment get the default config, nothing starts.",
    )
    significance_level = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.2)],
        help_text="Two-sided level a difference must reach to pick a winner (0.0001-0.2).",
    )
    error_rate_margin = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Guardrail: a treatment's error rate may exceed the control's by this much "
        "(absolute, 0.05 = 5 points).",
    )
    latency_margin = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Guardrail: a treatment's p95 latency may exceed the control's by this "
        "fraction (0.5 = 50%).",
    )
    cost_margin = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Guardrail: a treatment's cost per successful answer may exceed the "
        "control's by this fraction.",
    )
    guardrail_min_calls = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Guardrails are judged once the control and the treatment each have this "
        "many calls (successful ones for latency and cost); before, they wait.",
    )
    latency_floor_ms = models.FloatField(
        default=100,
        validators=[MinValueValidator(0), MaxValueValidator(600_000)],
        help_text="Guardrail and canaries: a p95 latency within this many milliseconds of the "
        "control's never breaches, whatever the ratio (2 ms against 3 ms is noise).",
    )
    canary_steps = models.JSONField(
        default=default_canary_steps, help_text="A new canary's traffic steps, in percent."
    )
    canary_step_interval_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(1), MaxValueValidator(7 * 86400)]
    )
    canary_min_requests = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="A new canary's requests per step before it is judged.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "experiment settings"

    def __str__(self) -> str:
        return "Experiment settings"


class CanaryStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class CanaryRollout(models.Model):
    """A treatment ramped through ``steps`` (percent of the experiment's users), one step per
    ``step_interval_seconds`` once it has ``min_requests`` calls in the step, and rolled back
    when its error rate exceeds the control's by ``error_rate_margin`` (absolute) or its p95
    latency the control's by ``latency_margin`` (a fraction)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="canaries")
    treatment = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="canaries")
    steps = models.JSONField(default=default_canary_steps)
    step_interval_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(1), MaxValueValidator(7 * 86400)]
    )
    error_rate_margin = models.FloatField(
        default=0.05, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    latency_margin = models.FloatField(
        default=0.5, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    min_requests = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    status = models.CharField(
        max_length=16, choices=CanaryStatus.choices, default=CanaryStatus.RUNNING, db_index=True
    )
    current_step = models.PositiveSmallIntegerField(default=0, help_text="Index into steps.")
    step_started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it ended.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment"],
                condition=models.Q(status="running"),
                name="one_running_canary_per_experiment",
            )
        ]

    def __str__(self) -> str:
        return f"Canary #{self.pk} of {self.treatment}"

    @property
    def percentage(self) -> int:
        """The treatment's share now (0 once rolled back)."""
        if self.status == CanaryStatus.ROLLED_BACK:
            return 0
        return int(self.steps[self.current_step])


class CanaryEventKind(models.TextChoices):
    STARTED = "started", "Started"
    ADVANCED = "advanced", "Advanced"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class CanaryEvent(models.Model):
    """The log of a canary: each step taken and the rollback, with the figures that decided."""

    rollout = models.ForeignKey(CanaryRollout, on_delete=models.CASCADE, related_name="log")
    kind = models.CharField(max_length=16, choices=CanaryEventKind.choices)
    percentage = models.PositiveSmallIntegerField(help_text="The treatment's share after it.")
    phase = models.PositiveIntegerField()
    message = models.CharField(max_length=500)
    figures = models.JSONField(default=dict, help_text="Control's and treatment's figures.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.percentage}%"
