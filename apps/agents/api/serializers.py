"""Input serializers check the types of what comes in (the services' ``full_clean`` applies the
model's own rules: ranges, unique names); output serializers list every field they publish."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.limits import PROMPT_MAX_CHARS, TEXT_MAX_CHARS
from apps.providers.models import Provider

from ..models import Agent, AgentActivity, AgentTask
from ..selectors import agent_current_task, agent_performance, agent_status

TASK_FIELDS = [
    "id", "agent", "agent_name", "prompt", "status", "output", "error", "attempts",
    "celery_task_id", "queued_at", "started_at", "finished_at", "heartbeat_at", "input_tokens",
    "output_tokens", "cost", "call_id", "created_by", "created_at",
]  # fmt: skip


class AgentTaskOutputSerializer(serializers.ModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True)

    class Meta:
        model = AgentTask
        fields = TASK_FIELDS


class CurrentTaskOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentTask
        fields = ["id", "status", "prompt", "attempts", "started_at", "heartbeat_at"]


class AgentPerformanceOutputSerializer(serializers.Serializer):
    tasks_done = serializers.IntegerField(help_text="Tasks that succeeded or failed.")
    tasks_succeeded = serializers.IntegerField()
    tasks_failed = serializers.IntegerField()
    tasks_cancelled = serializers.IntegerField()
    success_rate = serializers.FloatField(
        allow_null=True, help_text="Tasks succeeded among done (0 to 1); null before any."
    )
    steps_done = serializers.IntegerField(help_text="Build steps it ran that succeeded or failed.")
    steps_succeeded = serializers.IntegerField()
    calls = serializers.IntegerField(help_text="Ended LLM calls of its tasks and build steps.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=8)
    avg_latency_ms = serializers.FloatField(allow_null=True, help_text="Of successful calls.")
    p95_latency_ms = serializers.FloatField(allow_null=True, help_text="Of successful calls.")


class AgentOutputSerializer(serializers.ModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True, default=None)
    status = serializers.SerializerMethodField(help_text="idle, busy or error.")
    current_task = serializers.SerializerMethodField()
    performance = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = [
            "id", "name", "role", "description", "system_prompt", "enabled", "model",
            "provider", "provider_name", "temperature", "max_tokens", "status",
            "current_task", "performance", "created_at", "updated_at",
        ]  # fmt: skip

    @extend_schema_field(serializers.CharField())
    def get_status(self, agent: Agent) -> str:
        return agent_status(agent)

    @extend_schema_field(CurrentTaskOutputSerializer(allow_null=True))
    def get_current_task(self, agent: Agent) -> dict[str, Any] | None:
        task = agent_current_task(agent)
        return None if task is None else CurrentTaskOutputSerializer(task).data

    @extend_schema_field(AgentPerformanceOutputSerializer)
    def get_performance(self, agent: Agent) -> dict[str, Any]:
        return AgentPerformanceOutputSerializer(agent_performance(agent)).data


class AgentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX_CHARS)
    system_prompt = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=PROMPT_MAX_CHARS
    )
    enabled = serializers.BooleanField(required=False)
    model = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="A public model name; blank: the routing settings' default model.",
    )
    provider = serializers.PrimaryKeyRelatedField(
        queryset=Provider.objects.all(),
        required=False,
        allow_null=True,
        help_text="Pin every call to this provider (its id); null: routing picks.",
    )
    temperature = serializers.FloatField(required=False, allow_null=True, help_text="0 to 2.")
    max_tokens = serializers.IntegerField(
        required=False, allow_null=True, help_text="1 to 1,000,000."
    )


class AgentTaskInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=PROMPT_MAX_CHARS, trim_whitespace=False)


class AgentActivityOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentActivity
        fields = ["id", "event", "message", "task", "build_step_id", "created_at"]
