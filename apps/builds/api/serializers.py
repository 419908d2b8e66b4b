"""Input serializers check the types of what comes in (the services check the steps themselves,
so their messages name the step); output serializers list every field they publish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.approvals.models import RiskLevel
from apps.core.limits import PROMPT_MAX_CHARS, TEXT_MAX_CHARS

from ..models import Build, BuildEvent, BuildStep, BuildTemplate, RunStatus


class StepSpecSerializer(serializers.Serializer):
    """One step as a build or template is given it (documentation: ``build_steps_validate``
    checks the steps, with messages that name the step)."""

    name = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,100}$", help_text="Unique within the build; later prompts use it."
    )
    kind = serializers.CharField(
        required=False,
        help_text="llm (the default: the prompt run by a model), github_pull_request (the "
        "build's patches opened as a pull request, the prompt its body) or github_comment (the "
        "prompt posted as a comment on the build's issue).",
    )
    options = serializers.DictField(
        required=False,
        help_text="A kind other than llm's options: github_pull_request takes title, labels, "
        "base, repository, draft; github_comment takes issue.",
    )
    prompt = serializers.CharField(
        max_length=PROMPT_MAX_CHARS,
        help_text="May use {input}, an earlier step's output as {steps.<name>}, and the step "
        "just before's as {previous}; other braces are left as written. Required for an llm "
        "step; for another kind its text, {previous} when left out.",
    )
    agent = serializers.JSONField(
        required=False, help_text="An enabled agent's id or name; its model and system prompt."
    )
    model = serializers.CharField(
        required=False, allow_blank=True, help_text="A public model name (or the agent's)."
    )
    provider = serializers.CharField(
        required=False, allow_blank=True, help_text="Pin the step's calls to this provider."
    )
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    requires_approval = serializers.BooleanField(
        required=False, default=False, help_text="Wait for a person's approval before it runs."
    )
    approval_risk = serializers.ChoiceField(
        choices=RiskLevel.choices,
        required=False,
        help_text="With requires_approval: the risk level of the approval request (medium when "
        "left out). The policy's role for that level decides it; with the policy's "
        "self_approve_low_risk, whoever started the build may approve a low one.",
    )


@extend_schema_field(StepSpecSerializer(many=True))
class StepsField(serializers.JSONField):
    """The steps as JSON, checked by the service (``build_steps_validate``)."""


class BuildInputSerializer(serializers.Serializer):
    title = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Required with steps; with a template, its name when left out or blank.",
    )
    input = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="What the build works on: {input} in the prompts.",
    )
    steps = StepsField(required=False, help_text="The steps, in order (or give a template).")
    template = serializers.PrimaryKeyRelatedField(
        queryset=BuildTemplate.objects.all(),
        required=False,
        help_text="Run a template's steps (instead of steps).",
    )
    github_issue = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=250,
        help_text="Start from a GitHub issue (owner/repo#123, or #123 in the default "
        "repository): its title, body and comments are the input (followed by input, if "
        "given), its title the build's when none is given.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("steps" in data) == ("template" in data):
            raise serializers.ValidationError("Give either steps or a template, not both.")
        if (
            "steps" in data
            and not data.get("title", "").strip()
            and not data.get("github_issue", "").strip()
        ):
            raise serializers.ValidationError({"title": "A build with steps needs a title."})
        return data


class TemplateRunInputSerializer(serializers.Serializer):
    title = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="The build's title; the template's name when left out (the issue's title "
        "with github_issue).",
    )
    input = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="What the build works on: {input} in the prompts.",
    )
    github_issue = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=250,
        help_text="Start from a GitHub issue (owner/repo#123 or #123): see the build's input.",
    )


class TemplateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX_CHARS)
    steps = StepsField(help_text="The steps, in order, as a build takes them.")


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 3)


class StepSummaryOutputSerializer(serializers.ModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True, allow_null=True)

    class Meta:
        model = BuildStep
        fields = [
            "id", "position", "name", "kind", "agent", "agent_name", "status", "attempts",
            "input_tokens", "output_tokens", "cost", "approval", "result_url",
        ]  # fmt: skip


class StepOutputSerializer(StepSummaryOutputSerializer):
    provider = serializers.CharField(source="provider.name", read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()

    class Meta(StepSummaryOutputSerializer.Meta):
        fields = [
            "id", "position", "name", "kind", "options", "agent", "agent_name", "model",
            "provider", "temperature", "max_tokens", "prompt_template", "requires_approval",
            "approval_risk", "status", "attempts", "output", "error", "input_tokens",
            "output_tokens", "cost", "call_id", "celery_task_id", "approval", "result_url",
            "queued_at", "started_at", "finished_at", "heartbeat_at", "duration_seconds",
        ]  # fmt: skip

    def get_duration_seconds(self, step: BuildStep) -> float | None:
        return _seconds(step.started_at, step.finished_at)


class TotalsOutputSerializer(serializers.Serializer):
    steps = serializers.IntegerField()
    steps_succeeded = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)
    duration_seconds = serializers.FloatField(
        allow_null=True, help_text="From the first step's start to the end; null while it runs."
    )


class BuildOutputSerializer(serializers.ModelSerializer):
    """A build with its steps in brief (the list); the detail adds everything about each step."""

    created_by_username = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    steps = StepSummaryOutputSerializer(many=True, read_only=True)
    totals = serializers.SerializerMethodField()

    class Meta:
        model = Build
        fields = [
            "id", "title", "input", "github_issue", "status", "error", "template", "created_by",
            "created_by_username", "created_at", "started_at", "finished_at", "totals", "steps",
        ]  # fmt: skip

    @extend_schema_field(TotalsOutputSerializer)
    def get_totals(self, build: Build) -> dict[str, Any]:
        steps = list(build.steps.all())  # prefetched by the selectors
        totals = {
            "steps": len(steps),
            "steps_succeeded": sum(1 for step in steps if step.status == RunStatus.SUCCEEDED),
            "input_tokens": build.input_tokens,
            "output_tokens": build.output_tokens,
            "tokens": build.input_tokens + build.output_tokens,
            "cost": build.cost,
            "duration_seconds": _seconds(build.started_at, build.finished_at),
        }
        return TotalsOutputSerializer(totals).data


class BuildDetailOutputSerializer(BuildOutputSerializer):
    steps = StepOutputSerializer(many=True, read_only=True)

    class Meta(BuildOutputSerializer.Meta):
        pass


class BuildEventOutputSerializer(serializers.ModelSerializer):
    step_name = serializers.CharField(source="step.name", read_only=True, allow_null=True)

    class Meta:
        model = BuildEvent
        fields = [
            "id", "step", "step_name", "event", "status", "attempt", "detail", "celery_task_id",
            "created_at",
        ]  # fmt: skip


class TemplateOutputSerializer(serializers.ModelSerializer):
    steps = StepsField(read_only=True)

    class Meta:
        model = BuildTemplate
        fields = ["id", "name", "description", "steps", "created_by", "created_at", "updated_at"]
