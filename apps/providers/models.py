from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    XAI = "xai", "xAI Grok"
    OLLAMA = "ollama", "Ollama"
    VLLM = "vllm", "vLLM"
    TGI = "tgi", "Text Generation Inference"
    LMSTUDIO = "lmstudio", "LM Studio"
    OPENROUTER = "openrouter", "OpenRouter"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    OK = "ok", "OK"
    ERROR = "error", "Error"


class Provider(models.Model):
    """An LLM server speaking the OpenAI wire format. Its API key is encrypted at rest."""

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(
        max_length=32, choices=ProviderKind.choices, default=ProviderKind.OPENAI_COMPATIBLE
    )
    base_url = models.URLField(max_length=500, blank=True, help_text="Empty: the kind's default.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=100, help_text="Lower is tried first by 'default'.")
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic for 'weighted'.")
    timeout_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])
    max_retries = models.PositiveSmallIntegerField(default=2)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests/minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens/minute.")
    extra_headers = models.JSONField(default=dict, blank=True)
    health_status = models.CharField(
        max_length=16, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN, editable=False
    )
    health_latency_ms = models.FloatField(null=True, blank=True, editable=False)
    health_error = models.CharField(max_length=500, blank=True, editable=False)
    health_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class LlmModel(models.Model):
    """A model deployed on one provider, with its prices.

    Requests name a public model: this ``name`` or one of its ``aliases``. One alias on several
    providers makes them interchangeable deployments the router balances and fails over between.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The model id the provider expects.")
    display_name = models.CharField(max_length=200, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    enabled = models.BooleanField(default=True)
    aliases = models.JSONField(default=list, blank=True, help_text="Other public names.")
    fallbacks = models.JSONField(
        default=list, blank=True, help_text="Public model names to try when all deployments fail."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "model"
        ordering = ["provider__priority", "provider__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"

    @property
    def public_names(self) -> list[str]:
        return [self.name, *self.aliases]


class RoutingStrategy(models.TextChoices):
    DEFAULT = "default", "Default (priority order)"
    ROUND_ROBIN = "round-robin", "Round-robin"
    RANDOM = "random", "Random"
    WEIGHTED = "weighted", "Weighted"
    LEAST_LATENCY = "least-latency", "Least latency"
    LOWEST_COST = "lowest-cost", "Lowest cost"


class RoutingSettings(models.Model):
    """Runtime settings of the router: one row, applied by every process without a restart."""

    strategy = models.CharField(
        max_length=32, choices=RoutingStrategy.choices, default=RoutingStrategy.DEFAULT
    )
    default_provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Tried first by 'default' when it serves the model.",
    )  # fmt: skip
    default_model = models.CharField(
        max_length=200, blank=True, help_text="Used when a request names no model."
    )
    fallback_enabled = models.BooleanField(default=True)
    retry_base_delay_ms = models.PositiveIntegerField(default=200)
    retry_max_delay_ms = models.PositiveIntegerField(default=5000)
    breaker_failure_threshold = models.PositiveIntegerField(
        default=5, help_text="Consecutive failures that open a provider's circuit."
    )
    breaker_error_rate = models.FloatField(
        default=0.5, help_text="Error rate over the window that opens the circuit (0-1)."
    )
    breaker_window_seconds = models.PositiveIntegerField(default=60)
    breaker_min_requests = models.PositiveIntegerField(
        default=20, help_text="Requests in the window before the error rate counts."
    )
    breaker_cooldown_seconds = models.FloatField(
        default=30.0, help_text="Time open before one probe request is let through."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return "Routing settings"


class CallStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class EntryPoint(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible API"
    QUERY = "query", "Query API"
    SSE = "sse", "Streaming API"
    WEBSOCKET = "websocket", "WebSocket"
    INTERNAL = "internal", "Internal"


# Call records are a log written in bulk after the fact: a provider or user deleted meanwhile
# must not make the insert fail, so these references carry no database constraint (the names
# are copied into the record as well).
LOG_REFERENCE = {"null": True, "blank": True, "on_delete": models.SET_NULL, "db_constraint": False}


class LlmCall(models.Model):
    """One request to the LLM core and its outcome, whichever attempt served it.

    The id is made before the call, so it can be returned while the row is still buffered.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    entry_point = models.CharField(max_length=16, choices=EntryPoint.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="llm_calls", **LOG_REFERENCE)
    api_key = models.ForeignKey("accounts.ApiKey", related_name="llm_calls", **LOG_REFERENCE)
    requested_model = models.CharField(max_length=200, blank=True)
    provider = models.ForeignKey(Provider, related_name="calls", **LOG_REFERENCE)
    model = models.ForeignKey(LlmModel, related_name="calls", **LOG_REFERENCE)
    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=CallStatus.choices, db_index=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    latency_ms = models.FloatField(default=0)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    experiment_variant_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    build_step_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    agent_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "LLM call"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["provider_name", "created_at"])]

    def __str__(self) -> str:
        return (
            f"{self.provider_name or '?'}/{self.model_name or self.requested_model} {self.status}"
        )


class LlmCallAttempt(models.Model):
    """One try at one deployment on behalf of an ``LlmCall`` (retries and fallbacks included)."""

    call = models.ForeignKey(LlmCall, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    provider = models.ForeignKey(Provider, related_name="+", **LOG_REFERENCE)
    provider_name = models.CharField(max_length=64)
    model_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=CallStatus.choices)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    started_at = models.DateTimeField()

    class Meta:
        verbose_name = "LLM call attempt"
        ordering = ["call", "number"]
        constraints = [
            models.UniqueConstraint(fields=["call", "number"], name="unique_attempt_number")
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.provider_name}/{self.model_name} {self.status}"
