"""Input serializers check the types of what comes in (the services check the variants and the
steps, with messages that name the variant); output serializers list every field they publish."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.limits import PROMPT_MAX_CHARS, TEXT_MAX_CHARS

from ..models import (
    CanaryEvent,
    CanaryRollout,
    Experiment,
    ExperimentPhase,
    ExperimentSettings,
    TrackedEvent,
    Variant,
    VariantKind,
)

PERCENT: dict[str, Any] = {"max_digits": 5, "decimal_places": 2, "min_value": 0, "max_value": 100}


class VariantConfigSerializer(serializers.Serializer):
    """The overrides a variant applies to its users' requests (any left out: the request's)."""

    provider = serializers.CharField(required=False, help_text="Pin calls to this provider.")
    model = serializers.CharField(required=False, help_text="A public model name.")
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    system_prompt = serializers.CharField(
        required=False,
        max_length=PROMPT_MAX_CHARS,
        help_text="Replaces the request's system message (or comes first).",
    )


class VariantSpecSerializer(serializers.Serializer):
    """One variant as an experiment is given it (documentation: ``variants_validate`` checks
    the list, with messages that name the variant)."""

    name = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=VariantKind.choices)
    traffic_percentage = serializers.DecimalField(
        **PERCENT, help_text="Share of the experiment's users; all add up to 100."
    )
    config = VariantConfigSerializer(required=False)


@extend_schema_field(VariantSpecSerializer(many=True))
class VariantsField(serializers.JSONField):
    """The variants as JSON (a list), checked by the service."""


class ExperimentInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100,
        help_text="Requests join by it (the body's 'experiment', the "
        "X-Orchestra-Experiment header); not only digits.",
    )
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=TEXT_MAX_CHARS
    )
    hypothesis = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=TEXT_MAX_CHARS
    )
    metric = serializers.CharField(
        max_length=100,
        required=False,
        default="conversion",
        help_text="The primary metric: what a tracked conversion stands for (accuracy, …).",
    )
    user_percentage = serializers.DecimalField(
        **PERCENT,
        required=False,
        default=Decimal(100),
        help_text="Share of users in the experiment; the others get the default config.",
    )
    variants = VariantsField(help_text="A list: exactly one control, percentages adding to 100.")


class ExperimentUpdateInputSerializer(serializers.Serializer):
    """Fields left out stay. New variants or shares of a running experiment start a new phase
    (list every variant; 0% retires one)."""

    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX_CHARS)
    hypothesis = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX_CHARS)
    metric = serializers.CharField(max_length=100, required=False)
    user_percentage = serializers.DecimalField(**PERCENT, required=False)
    variants = VariantsField(required=False)


class UserIdField(serializers.CharField):
    """A user id, given as a string or a number."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=255, **kwargs)


class ConversionInputSerializer(serializers.Serializer):
    user_id = UserIdField(help_text="An assigned user (by a request or a variant lookup).")
    value = serializers.FloatField(
        required=False, allow_null=True, help_text="What the conversion was worth, if anything."
    )


class FeedbackInputSerializer(serializers.Serializer):
    user_id = UserIdField(help_text="An assigned user (by a request or a variant lookup).")
    score = serializers.FloatField(help_text="A numeric score: a rating, 1 for a thumbs up.")


class SettingsInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    significance_level = serializers.FloatField(required=False)
    error_rate_margin = serializers.FloatField(required=False)
    latency_margin = serializers.FloatField(required=False)
    cost_margin = serializers.FloatField(required=False)
    guardrail_min_calls = serializers.IntegerField(required=False)
    latency_floor_ms = serializers.FloatField(required=False)
    canary_steps = serializers.ListField(child=serializers.IntegerField(), required=False)
    canary_step_interval_seconds = serializers.IntegerField(required=False)
    canary_min_requests = serializers.IntegerField(required=False)


class CanaryInputSerializer(serializers.Serializer):
    """Left out, the experiment settings' defaults apply."""

    experiment = serializers.PrimaryKeyRelatedField(queryset=Experiment.objects.all())
    treatment = serializers.CharField(max_length=100, help_text="The treatment variant's name.")
    steps = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Rising percentages ending at 100, e.g. [5, 25, 50, 100].",
    )
    step_interval_seconds = serializers.IntegerField(required=False, min_value=1)
    error_rate_margin = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Rolled back when its error rate exceeds the control's by more (absolute).",
    )
    latency_margin = serializers.FloatField(
        required=False,
        min_value=0,
        help_text="Rolled back when its p95 latency exceeds the control's by more (a fraction).",
    )
    min_requests = serializers.IntegerField(
        required=False, min_value=1, help_text="Calls of the treatment in a step before judging."
    )


class CanaryRollbackInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")


# --- outputs -----------------------------------------------------------------------------------


class VariantOutputSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="kind")
    traffic_percentage = serializers.FloatField()
    config = serializers.SerializerMethodField()

    class Meta:
        model = Variant
        fields = ["id", "name", "type", "traffic_percentage", "config", "position"]

    @extend_schema_field(VariantConfigSerializer)
    def get_config(self, variant: Variant) -> dict[str, Any]:
        return variant.config


class PhaseOutputSerializer(serializers.ModelSerializer):
    user_percentage = serializers.FloatField()

    class Meta:
        model = ExperimentPhase
        fields = [
            "number",
            "seed",
            "user_percentage",
            "allocation",
            "reason",
            "started_at",
            "ended_at",
        ]


class ExperimentOutputSerializer(serializers.ModelSerializer):
    user_percentage = serializers.FloatField()
    winner = serializers.CharField(source="winner.name", allow_null=True, read_only=True)
    created_by_username = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    variants = VariantOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id", "name", "description", "hypothesis", "metric", "user_percentage", "status",
            "phase", "winner", "conclusion", "variants", "created_by", "created_by_username",
            "created_at", "updated_at", "started_at", "stopped_at",
        ]  # fmt: skip


class ExperimentDetailOutputSerializer(ExperimentOutputSerializer):
    phases = PhaseOutputSerializer(many=True, read_only=True)

    class Meta(ExperimentOutputSerializer.Meta):
        fields = [*ExperimentOutputSerializer.Meta.fields, "phases"]


class VariantAssignmentOutputSerializer(serializers.Serializer):
    """The assignment as the earlier experiments service answered it, with the variant's id, the
    phase and why a user is not assigned."""

    experiment_id = serializers.IntegerField()
    experiment_name = serializers.CharField()
    user_id = serializers.CharField()
    variant_id = serializers.IntegerField(allow_null=True)
    variant_name = serializers.CharField(allow_null=True)
    variant_config = VariantConfigSerializer()
    assigned = serializers.BooleanField()
    phase = serializers.IntegerField()
    reason = serializers.CharField(help_text="Why not assigned (the default config applies).")


class TrackedEventOutputSerializer(serializers.ModelSerializer):
    variant_name = serializers.CharField(source="variant.name", read_only=True)

    class Meta:
        model = TrackedEvent
        fields = [
            "id",
            "experiment",
            "phase",
            "variant",
            "variant_name",
            "user_id",
            "kind",
            "value",
            "created_at",
        ]


class ExperimentSettingsOutputSerializer(serializers.ModelSerializer):
    updated_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="null until the settings are first saved."
    )

    class Meta:
        model = ExperimentSettings
        fields = [
            "enabled", "significance_level", "error_rate_margin", "latency_margin",
            "cost_margin", "guardrail_min_calls", "latency_floor_ms", "canary_steps",
            "canary_step_interval_seconds", "canary_min_requests", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


# --- statistics ----------------------------------------------------------------------------


class CallFiguresSerializer(serializers.Serializer):
    """The variant's LLM calls in the phase (from the call records)."""

    requests = serializers.IntegerField()
    successes = serializers.IntegerField()
    # A field called "errors" (the metaclass takes it out of the class; Serializer.errors stays).
    errors = serializers.IntegerField()  # type: ignore[assignment]
    success_rate = serializers.FloatField(allow_null=True)
    error_rate = serializers.FloatField(allow_null=True)
    latency_p50_ms = serializers.FloatField(allow_null=True, help_text="Of successful calls.")
    latency_p95_ms = serializers.FloatField(allow_null=True, help_text="Of successful calls.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=8)
    cost_per_success = serializers.DecimalField(
        max_digits=20, decimal_places=8, allow_null=True, help_text="Cost per successful answer."
    )


class GuardrailCheckSerializer(serializers.Serializer):
    treatment = serializers.FloatField(allow_null=True)
    control = serializers.FloatField(allow_null=True)
    limit = serializers.FloatField(
        allow_null=True,
        help_text="The control's value plus margin (latency: at least plus the latency floor).",
    )
    sample = serializers.IntegerField(
        help_text="The smaller arm's calls (successful ones for latency and cost)."
    )
    judged = serializers.BooleanField(
        help_text="False until both arms have the settings' guardrail_min_calls."
    )
    breached = serializers.BooleanField(help_text="Judged and worse than the limit.")


class GuardrailsSerializer(serializers.Serializer):
    error_rate = GuardrailCheckSerializer()
    latency_p95_ms = GuardrailCheckSerializer()
    cost_per_success = GuardrailCheckSerializer()


class VersusControlSerializer(serializers.Serializer):
    difference = serializers.FloatField(
        allow_null=True, help_text="Conversion rate minus the control's."
    )
    difference_interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Wald interval of the difference at 1 - significance level.",
    )
    relative_lift = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(
        allow_null=True, help_text="Two-sided, pooled two-proportion z-test."
    )
    significant = serializers.BooleanField(
        help_text="p below the significance level divided by the number of treatments."
    )
    chance_to_beat_control = serializers.FloatField(
        help_text="P(rate > control's), Beta(1 + conversions, 1 + others) posteriors."
    )
    feedback_p_value = serializers.FloatField(
        allow_null=True, help_text="Welch's t-test of the feedback scores."
    )
    guardrails = GuardrailsSerializer()
    guardrails_breached = serializers.ListField(child=serializers.CharField())


class VariantStatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()
    traffic_percentage = serializers.FloatField(help_text="Planned share in the phase.")
    config = VariantConfigSerializer()
    users = serializers.IntegerField(help_text="Users assigned in the phase.")
    user_share = serializers.FloatField(allow_null=True, help_text="Observed share of users.")
    converted_users = serializers.IntegerField()
    conversions = serializers.IntegerField()
    conversion_value = serializers.FloatField()
    conversion_rate = serializers.FloatField(allow_null=True, help_text="Converted users/users.")
    conversion_rate_interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Wilson score interval at 1 - significance level.",
    )
    feedback_count = serializers.IntegerField()
    feedback_mean = serializers.FloatField(allow_null=True)
    feedback_stddev = serializers.FloatField(
        allow_null=True, help_text="Sample standard deviation; null below two scores."
    )
    calls = CallFiguresSerializer()
    versus_control = VersusControlSerializer(allow_null=True)


class SrmSerializer(serializers.Serializer):
    chi2 = serializers.FloatField(allow_null=True, help_text="Null: infinite (a 0% arm has users).")
    p_value = serializers.FloatField()
    threshold = serializers.FloatField()
    mismatch = serializers.BooleanField()


class DecisionSerializer(serializers.Serializer):
    winner = serializers.CharField(allow_null=True)
    significant = serializers.BooleanField()
    message = serializers.CharField()


class ExperimentStatsOutputSerializer(serializers.Serializer):
    experiment_id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    metric = serializers.CharField()
    phase = serializers.IntegerField()
    phase_started_at = serializers.DateTimeField(allow_null=True)
    phase_ended_at = serializers.DateTimeField(allow_null=True)
    phases = PhaseOutputSerializer(
        many=True, help_text="Every phase, oldest first: ?phase=<number> gives its figures."
    )
    significance_level = serializers.FloatField()
    comparison_significance_level = serializers.FloatField()
    guardrail_min_calls = serializers.IntegerField(
        help_text="Calls each arm needs before its guardrails are judged."
    )
    users = serializers.IntegerField()
    srm = SrmSerializer(allow_null=True, help_text="Chi-square against the planned split.")
    healthy = serializers.BooleanField(help_text="False on a sample ratio mismatch.")
    variants = VariantStatsSerializer(many=True)
    winner = serializers.CharField(allow_null=True)
    conclusion = serializers.CharField(allow_blank=True)
    decision = DecisionSerializer(help_text="What stopping now would decide.")


class RunningSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phase = serializers.IntegerField()
    users = serializers.IntegerField()
    conversions = serializers.IntegerField()
    requests = serializers.IntegerField()
    healthy = serializers.BooleanField()
    decision = serializers.CharField()


class ExperimentSummaryOutputSerializer(serializers.Serializer):
    total_experiments = serializers.IntegerField()
    draft_experiments = serializers.IntegerField()
    running_experiments = serializers.IntegerField()
    stopped_experiments = serializers.IntegerField()
    with_winner = serializers.IntegerField()
    total_assignments = serializers.IntegerField()
    total_conversions = serializers.IntegerField()
    running_canaries = serializers.IntegerField()
    running = RunningSummarySerializer(many=True)


class UnhealthySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class ExperimentHealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "unhealthy", "disabled"])
    service = serializers.CharField()
    storage = serializers.CharField()
    enabled = serializers.BooleanField()
    total_experiments = serializers.IntegerField()
    running_experiments = serializers.IntegerField()
    running_canaries = serializers.IntegerField()
    unhealthy_experiments = UnhealthySerializer(many=True)


# --- canaries ------------------------------------------------------------------------------


class CanaryEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = CanaryEvent
        fields = ["id", "kind", "percentage", "phase", "message", "figures", "created_at"]


class CanaryOutputSerializer(serializers.ModelSerializer):
    experiment_name = serializers.CharField(source="experiment.name", read_only=True)
    treatment_name = serializers.CharField(source="treatment.name", read_only=True)
    percentage = serializers.IntegerField(read_only=True, help_text="The treatment's share now.")

    class Meta:
        model = CanaryRollout
        fields = [
            "id", "experiment", "experiment_name", "treatment", "treatment_name", "steps",
            "current_step", "percentage", "step_interval_seconds", "error_rate_margin",
            "latency_margin", "min_requests", "status", "step_started_at", "finished_at",
            "reason", "created_by", "created_at",
        ]  # fmt: skip


class CanaryDetailOutputSerializer(CanaryOutputSerializer):
    log = CanaryEventOutputSerializer(many=True, read_only=True)

    class Meta(CanaryOutputSerializer.Meta):
        fields = [*CanaryOutputSerializer.Meta.fields, "log"]
