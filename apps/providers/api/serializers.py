"""Input serializers check the types of what comes in (the services' ``full_clean`` applies the
model's own rules); output serializers list every field they publish, so a new column is never
published unreviewed."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import (
    LlmCall,
    LlmCallAttempt,
    LlmModel,
    ModelMode,
    PriceSource,
    Provider,
    ProviderKind,
    RoutingSettings,
    RoutingStrategy,
)

PROVIDER_FIELDS = [
    "id", "name", "kind", "base_url", "enabled", "priority", "weight", "timeout_seconds",
    "max_retries", "rpm_limit", "tpm_limit", "extra_headers", "responses_api",
]  # fmt: skip
HEALTH_FIELDS = ["health_status", "health_latency_ms", "health_error", "health_checked_at"]
MASK = "********"


class ProviderOutputSerializer(serializers.ModelSerializer):
    """Never the key, nor its ciphertext: only whether one is stored. Extra headers are secrets
    too (they often carry credentials): their names, each value masked."""

    has_api_key = serializers.BooleanField(read_only=True)
    extra_headers = serializers.SerializerMethodField(
        help_text=f"Header names; every value reads {MASK!r} (write-only)."
    )

    class Meta:
        model = Provider
        fields = [*PROVIDER_FIELDS, "has_api_key", *HEALTH_FIELDS, "created_at", "updated_at"]

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_extra_headers(self, provider: Provider) -> dict[str, str]:
        return dict.fromkeys(provider.extra_headers, MASK)


class ProviderInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(
        choices=ProviderKind.choices,
        required=False,
        error_messages={
            "invalid_choice": f'"{{input}}" is not a kind of provider; use one of: '
            f"{', '.join(ProviderKind.values)}."
        },
    )
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    priority = serializers.IntegerField(required=False)
    weight = serializers.IntegerField(required=False)
    timeout_seconds = serializers.FloatField(required=False)
    max_retries = serializers.IntegerField(required=False)
    rpm_limit = serializers.IntegerField(required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(required=False, allow_null=True)
    extra_headers = serializers.JSONField(
        required=False,
        help_text="Write-only: replaces every extra header. Left out: they are kept; changing "
        "base_url or kind without them removes them.",
    )
    responses_api = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text=Provider._meta.get_field("responses_api").help_text,
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        help_text="Write-only. Left out: the stored key is kept (but removed when base_url or "
        "kind changes); empty: it is removed.",
    )


def _names(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise serializers.ValidationError(f"{field} must be a list of non-empty strings.")
    return [v.strip() for v in value]


class ModelOutputSerializer(serializers.ModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True)

    class Meta:
        model = LlmModel
        fields = [
            "id", "provider", "provider_name", "name", "display_name", "mode", "context_window",
            "input_price_per_million", "output_price_per_million", "price_source",
            "price_catalog", "prices_valid_from", "enabled", "aliases", "fallbacks", "owned_by",
            "upstream_created", "created_at", "updated_at",
        ]  # fmt: skip


class ModelInputSerializer(serializers.Serializer):
    provider = serializers.PrimaryKeyRelatedField(queryset=Provider.objects.all())
    name = serializers.CharField(max_length=200)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    mode = serializers.ChoiceField(
        choices=ModelMode.choices,
        required=False,
        help_text=LlmModel._meta.get_field("mode").help_text,
        error_messages={
            "invalid_choice": f'"{{input}}" is not a mode; use one of: '
            f"{', '.join(ModelMode.values)}."
        },
    )
    context_window = serializers.IntegerField(required=False, allow_null=True)
    input_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, required=False
    )
    output_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, required=False
    )
    price_source = serializers.ChoiceField(
        choices=[PriceSource.CATALOG, PriceSource.MANUAL],
        required=False,
        help_text="Write-only. \"catalog\": the catalog's prices again (a person's dropped; 400 "
        'when the catalog has none for the model); "manual": keep the prices as they are, '
        'never overwritten by the catalog. Prices given are a person\'s: "manual" already.',
        error_messages={
            "invalid_choice": '"{input}" cannot be set; use "catalog" (back to the catalog\'s '
            'prices) or "manual" (keep these prices).'
        },
    )
    enabled = serializers.BooleanField(required=False)
    aliases = serializers.JSONField(required=False)
    fallbacks = serializers.JSONField(required=False)

    def validate_aliases(self, value: Any) -> list[str]:
        return _names(value, "aliases")

    def validate_fallbacks(self, value: Any) -> list[str]:
        return _names(value, "fallbacks")


ROUTING_SETTINGS_FIELDS = [
    "strategy", "default_provider", "default_model", "fallback_enabled", "retry_base_delay_ms",
    "retry_max_delay_ms", "breaker_failure_threshold", "breaker_error_rate",
    "breaker_window_seconds", "breaker_min_requests", "breaker_cooldown_seconds",
]  # fmt: skip


class RoutingSettingsOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoutingSettings
        fields = [*ROUTING_SETTINGS_FIELDS, "updated_at"]


class RoutingSettingsInputSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=RoutingStrategy.choices, required=False)
    default_provider = serializers.PrimaryKeyRelatedField(
        queryset=Provider.objects.all(), required=False, allow_null=True
    )
    default_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    fallback_enabled = serializers.BooleanField(required=False)
    retry_base_delay_ms = serializers.IntegerField(required=False)
    retry_max_delay_ms = serializers.IntegerField(required=False)
    breaker_failure_threshold = serializers.IntegerField(required=False)
    breaker_error_rate = serializers.FloatField(required=False)
    breaker_window_seconds = serializers.IntegerField(required=False)
    breaker_min_requests = serializers.IntegerField(required=False)
    breaker_cooldown_seconds = serializers.FloatField(required=False)


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


class ConnectionTestOutputSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Where the request went (never with a key).")
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    models = serializers.ListField(child=serializers.CharField())
    error_code = serializers.CharField()
    error = serializers.CharField(help_text="What happened, exactly, when it failed.")
    http_status = serializers.IntegerField(
        allow_null=True, help_text="The provider's HTTP status, when it answered an error."
    )


class SyncResultOutputSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    existing = serializers.ListField(child=serializers.CharField())
    priced = serializers.ListField(
        child=serializers.CharField(),
        help_text="Models given the catalog's prices, or brought up to them, by this sync.",
    )


class AttemptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = LlmCallAttempt
        fields = [
            "id", "number", "provider", "provider_name", "model_name", "status", "error_code",
            "error_message", "http_status", "latency_ms", "started_at",
        ]  # fmt: skip


class LlmCallOutputSerializer(serializers.ModelSerializer):
    tags = serializers.DictField(
        child=serializers.CharField(), help_text="The caller's tags, key to value."
    )

    class Meta:
        model = LlmCall
        fields = [
            "id", "request_id", "created_at", "entry_point", "user", "api_key", "workspace",
            "end_user", "tags", "requested_model", "provider", "model", "provider_name",
            "model_name", "endpoint", "stream",
            "status", "error_code", "error_message", "finish_reason", "input_tokens",
            "output_tokens", "tokens_estimated", "cost", "latency_ms", "time_to_first_token_ms",
            "attempt_count", "experiment_variant_id", "build_id", "build_step_id", "agent_id",
            "trace_id",
        ]  # fmt: skip


class LlmCallDetailOutputSerializer(LlmCallOutputSerializer):
    attempts = AttemptOutputSerializer(many=True, read_only=True)

    class Meta(LlmCallOutputSerializer.Meta):
        fields = [*LlmCallOutputSerializer.Meta.fields, "attempts"]
