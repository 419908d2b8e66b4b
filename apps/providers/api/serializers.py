from __future__ import annotations

from rest_framework import serializers

from ..models import LlmCall, LlmCallAttempt, LlmModel, Provider, RoutingSettings
from ..validation import ROLES

PROVIDER_FIELDS = [
    "id", "name", "kind", "base_url", "enabled", "priority", "weight", "timeout_seconds",
    "max_retries", "rpm_limit", "tpm_limit", "extra_headers",
]  # fmt: skip
HEALTH_FIELDS = ["health_status", "health_latency_ms", "health_error", "health_checked_at"]


class ProviderOutputSerializer(serializers.ModelSerializer):
    """Never the key, nor its ciphertext: only whether one is stored."""

    has_api_key = serializers.BooleanField(read_only=True)

    class Meta:
        model = Provider
        fields = [*PROVIDER_FIELDS, "has_api_key", *HEALTH_FIELDS, "created_at", "updated_at"]


class ProviderInputSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True,
        help_text="Write-only. Left out: the stored key is kept; empty: it is removed.",
    )  # fmt: skip

    class Meta:
        model = Provider
        fields = [f for f in PROVIDER_FIELDS if f != "id"] + ["api_key"]

    def validate_extra_headers(self, value):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise serializers.ValidationError("Must be an object of string header values.")
        return value


def _names(value, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise serializers.ValidationError(f"{field} must be a list of non-empty strings.")
    return [v.strip() for v in value]


class ModelOutputSerializer(serializers.ModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True)

    class Meta:
        model = LlmModel
        fields = [
            "id", "provider", "provider_name", "name", "display_name", "context_window",
            "input_price_per_million", "output_price_per_million", "enabled", "aliases",
            "fallbacks", "created_at", "updated_at",
        ]  # fmt: skip


class ModelInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = LlmModel
        fields = [
            "provider", "name", "display_name", "context_window", "input_price_per_million",
            "output_price_per_million", "enabled", "aliases", "fallbacks",
        ]  # fmt: skip

    def validate_aliases(self, value):
        return _names(value, "aliases")

    def validate_fallbacks(self, value):
        return _names(value, "fallbacks")


class RoutingSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoutingSettings
        exclude = ["id"]
        read_only_fields = ["updated_at"]

    def validate_breaker_error_rate(self, value: float) -> float:
        if not 0 < value <= 1:
            raise serializers.ValidationError("Must be above 0 and at most 1.")
        return value


class BreakerOutputSerializer(serializers.Serializer):
    provider = serializers.CharField()
    state = serializers.CharField()
    failures = serializers.IntegerField()
    opened_at = serializers.FloatField(allow_null=True, help_text="Unix time.")
    last_error = serializers.CharField()
    probing = serializers.BooleanField()


class ProviderHealthOutputSerializer(serializers.Serializer):
    provider = ProviderOutputSerializer()
    circuit = BreakerOutputSerializer()


class SyncResultOutputSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    existing = serializers.ListField(child=serializers.CharField())


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=sorted(ROLES))
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


class QueryInputSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True, required=False, allow_empty=False)
    prompt = serializers.CharField(required=False, trim_whitespace=False)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    provider = serializers.CharField(required=False, allow_blank=True, max_length=64)
    strategy = serializers.ChoiceField(
        choices=RoutingSettings._meta.get_field("strategy").choices, required=False
    )
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    stop = serializers.ListField(child=serializers.CharField(), required=False, max_length=4)

    def validate(self, attrs: dict) -> dict:
        if "messages" not in attrs and "prompt" not in attrs:
            raise serializers.ValidationError({"messages": ["Give messages or a prompt."]})
        if "messages" not in attrs:
            attrs["messages"] = [{"role": "user", "content": attrs.pop("prompt")}]
        return attrs


class UsageOutputSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    estimated = serializers.BooleanField()


class QueryOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The LLM call record.")
    content = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    finish_reason = serializers.CharField()
    usage = UsageOutputSerializer()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)
    latency_ms = serializers.FloatField()


class AttemptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = LlmCallAttempt
        exclude = ["call"]


class LlmCallOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = LlmCall
        fields = "__all__"


class LlmCallDetailOutputSerializer(LlmCallOutputSerializer):
    attempts = AttemptOutputSerializer(many=True, read_only=True)
