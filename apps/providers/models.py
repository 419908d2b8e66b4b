from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.core.ids import uuid7


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


# --- what a provider may be told to send ---------------------------------------------------------

# An HTTP header name is a token (RFC 9110, section 5.6.2).
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters (CR, LF and NUL among them) end or corrupt a header line; tab is allowed.
HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that frame the request: the transport sets them, a provider may not.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "expect",
    }
)
MAX_EXTRA_HEADERS = 20
MAX_HEADER_NAME_LENGTH = 64
MAX_HEADER_VALUE_LENGTH = 4096
MAX_EXTRA_HEADERS_SIZE = 8192  # names and values together
MAX_API_KEY_LENGTH = 4096


def validate_header_value(value: str) -> None:
    """A value that can go in an HTTP header as is (an extra header's, or the API key)."""
    if HEADER_VALUE_FORBIDDEN.search(value):
        raise ValidationError(
            "Must not contain control characters (CR, LF, NUL...).", code="header_value"
        )


def validate_extra_headers(value: Any) -> None:
    """Extra headers: an object of HTTP header names to single-line string values."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError("Must be an object of string header values.", code="invalid")
    if len(value) > MAX_EXTRA_HEADERS:
        raise ValidationError(f"At most {MAX_EXTRA_HEADERS} headers.", code="too_many")
    if sum(len(k) + len(v) for k, v in value.items()) > MAX_EXTRA_HEADERS_SIZE:
        raise ValidationError(
            f"At most {MAX_EXTRA_HEADERS_SIZE} characters of names and values.", code="too_large"
        )
    problems = []
    for name, header_value in value.items():
        if not HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            problems.append(
                f"{name[:MAX_HEADER_NAME_LENGTH]!r} is not a header name (letters, digits and "
                f"!#$%&'*+-.^_`|~, at most {MAX_HEADER_NAME_LENGTH} characters)."
            )
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"{name!r} is set by the transport and cannot be overridden.")
        elif HEADER_VALUE_FORBIDDEN.search(header_value):
            problems.append(f"The value of {name!r} contains control characters (CR, LF, NUL...).")
        elif len(header_value) > MAX_HEADER_VALUE_LENGTH:
            problems.append(
                f"The value of {name!r} is longer than {MAX_HEADER_VALUE_LENGTH} characters."
            )
    if problems:
        raise ValidationError(problems, code="header")


def validate_server_url(value: str) -> None:
    """An http(s) URL of a server, whose host may be a bare name (``ollama``, ``gpu-box``: the
    names of a compose file or a LAN), which Django's ``URLValidator`` refuses."""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError as exc:
        raise ValidationError("Enter a valid URL.", code="invalid") from exc
    if url.scheme not in ("http", "https") or not url.hostname or any(c.isspace() for c in value):
        raise ValidationError(
            "Enter an http:// or https:// URL of the server, such as http://127.0.0.1:8000/v1.",
            code="invalid",
        )


def validate_no_credentials_in_url(value: str) -> None:
    """Credentials belong in the encrypted API key, not in a URL that is shown to viewers."""
    if "@" in urlsplit(value).netloc:
        raise ValidationError(
            "Must not contain credentials (user:password@): put the key in api_key, which is "
            "stored encrypted and never shown.",
            code="credentials_in_url",
        )


def validate_above_zero(value: float) -> None:
    if not value > 0:
        raise ValidationError("Must be above 0.", code="min_value")


class Provider(models.Model):
    """An LLM server speaking the OpenAI wire format. Its API key is encrypted at rest.

    The key and the extra headers are secrets bound to where they are sent: changing
    ``base_url`` or ``kind`` drops them unless new ones come with the change
    (``services.provider_update``).
    """

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(
        max_length=32, choices=ProviderKind.choices, default=ProviderKind.OPENAI_COMPATIBLE
    )
    base_url = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_server_url, validate_no_credentials_in_url],
        help_text="Empty: the kind's default. Changing it (or the kind) removes the stored API key "
        "and extra headers unless new ones are given with the change.",
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(
        default=100,
        validators=[MinValueValidator(0), MaxValueValidator(10_000)],
        help_text="Lower is tried first by 'default' (0-10000).",
    )
    weight = models.PositiveIntegerField(
        default=1,
        validators=[MaxValueValidator(10_000)],
        help_text="Share of traffic for 'weighted' (0-10000; 0: last resort).",
    )
    timeout_seconds = models.FloatField(
        default=60.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
        help_text="Per attempt, in seconds (0.1-3600).",
    )
    max_retries = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(10)], help_text="Retries per request (0-10)."
    )
    rpm_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Requests/minute (1-1000000; empty: no limit).",
    )
    tpm_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000_000)],
        help_text="Tokens/minute (1-1000000000; empty: no limit).",
    )
    extra_headers = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_extra_headers],
        help_text=f"Sent with every request; write-only, like the key. At most "
        f"{MAX_EXTRA_HEADERS} headers, single-line values.",
    )
    responses_api = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether the server has the Responses API itself; empty: as its kind does "
        "(OpenAI, xAI). Without it, Responses requests are translated to chat completions.",
    )
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

    def clean(self) -> None:
        """A known kind's server root gets the path of its API (``http://host:11434`` is
        Ollama's ``…/v1``); a generic OpenAI-compatible server must say where it is."""
        from .presets import normalized_base_url  # presets describe this model's kinds

        if self.kind == ProviderKind.OPENAI_COMPATIBLE and not self.base_url:
            raise ValidationError(
                {
                    "base_url": "An OpenAI-compatible server needs its base URL, such as "
                    "http://127.0.0.1:8000/v1 (with the path its API is served under)."
                }
            )
        if self.base_url and self.kind in ProviderKind.values:
            self.base_url = normalized_base_url(self.kind, self.base_url)


class ModelMode(models.TextChoices):
    """What a model serves: routing offers a model only to the endpoints its mode serves."""

    CHAT = "chat", "Chat (chat completions, the Responses API, legacy completions)"
    EMBEDDING = "embedding", "Embeddings"
    COMPLETION = "completion", "Legacy completions only"
    RESPONSES = "responses", "Responses API only"
    OTHER = "other", "Other (audio, images, moderation: not routed)"


class Endpoint(models.TextChoices):
    """The OpenAI API a call was made through."""

    CHAT = "chat", "Chat completions"
    COMPLETIONS = "completions", "Completions (legacy)"
    EMBEDDINGS = "embeddings", "Embeddings"
    RESPONSES = "responses", "Responses"


MODES_SERVING: dict[str, frozenset[str]] = {
    Endpoint.CHAT: frozenset({ModelMode.CHAT}),
    Endpoint.COMPLETIONS: frozenset({ModelMode.CHAT, ModelMode.COMPLETION}),
    Endpoint.EMBEDDINGS: frozenset({ModelMode.EMBEDDING}),
    Endpoint.RESPONSES: frozenset({ModelMode.CHAT, ModelMode.RESPONSES}),
}


class PriceSource(models.TextChoices):
    """Where a model's prices come from. A price typed by a person always wins: the catalog
    never overwrites a ``manual`` one (``services.model_prices_from_catalog`` goes back)."""

    UNKNOWN = "unknown", "Unknown"
    CATALOG = "catalog", "Catalog"
    MANUAL = "manual", "Typed by a person"
    SELF_HOSTED = "self_hosted", "Self-hosted"


class LlmModel(models.Model):
    """A model deployed on one provider, with its prices.

    Requests name a public model: this ``name`` or one of its ``aliases``. One alias on several
    providers makes them interchangeable deployments the router balances and fails over between.
    A call's cost is computed with the prices of the moment and stored in its record, so a later
    change of price leaves the cost of past calls as it was.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The model id the provider expects.")
    display_name = models.CharField(max_length=200, blank=True)
    mode = models.CharField(
        max_length=16,
        choices=ModelMode.choices,
        default=ModelMode.CHAT,
        help_text="What it serves; embedding prices are the input price.",
    )
    context_window = models.PositiveIntegerField(null=True, blank=True)
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    price_source = models.CharField(
        max_length=16,
        choices=PriceSource.choices,
        default=PriceSource.UNKNOWN,
        editable=False,
        help_text="Where the prices come from; a price typed by a person is never overwritten "
        "by the catalog.",
    )
    price_catalog = models.CharField(
        max_length=200,
        blank=True,
        editable=False,
        help_text="The catalog entry the prices come from: package, version, provider/model.",
    )
    prices_valid_from = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Since when calls are priced at these prices (calls before kept their cost).",
    )
    enabled = models.BooleanField(default=True)
    aliases = models.JSONField(default=list, blank=True, help_text="Other public names.")
    fallbacks = models.JSONField(
        default=list, blank=True, help_text="Public model names to try when all deployments fail."
    )
    owned_by = models.CharField(
        max_length=200, blank=True, help_text="As the provider lists it (Sync models)."
    )
    upstream_created = models.BigIntegerField(
        null=True, blank=True, help_text="When the provider says it made the model (Unix time)."
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
        Provider,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Tried first by 'default' when it serves the model.",
    )
    default_model = models.CharField(
        max_length=200, blank=True, help_text="Used when a request names no model."
    )
    fallback_enabled = models.BooleanField(default=True)
    retry_base_delay_ms = models.PositiveIntegerField(
        default=200,
        validators=[MaxValueValidator(300_000)],
        help_text="First retry's backoff cap, in ms (0-300000; at most the max delay).",
    )
    retry_max_delay_ms = models.PositiveIntegerField(
        default=5000,
        validators=[MaxValueValidator(300_000)],
        help_text="Longest backoff between retries, in ms (0-300000).",
    )
    breaker_failure_threshold = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Consecutive failures that open a provider's circuit (1-1000).",
    )
    breaker_error_rate = models.FloatField(
        default=0.5,
        validators=[validate_above_zero, MaxValueValidator(1)],
        help_text="Error rate over the window that opens the circuit (above 0, at most 1).",
    )
    breaker_window_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(86_400)],
        help_text="Window of the error rate, in seconds (1-86400).",
    )
    breaker_min_requests = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="Requests in the window before the error rate counts (1-100000).",
    )
    breaker_cooldown_seconds = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
        help_text="Time open before one probe request is let through, in seconds (0.1-3600).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return "Routing settings"

    def clean(self) -> None:
        base, most = self.retry_base_delay_ms, self.retry_max_delay_ms
        if isinstance(base, int) and isinstance(most, int) and base > most:
            raise ValidationError(
                {"retry_base_delay_ms": f"Must be at most retry_max_delay_ms ({most})."}
            )


# The routing settings an operator edits (``routing_settings_update``, the admin, the dashboard).
ROUTING_SETTINGS_FIELDS = (
    "strategy", "default_provider", "default_model", "fallback_enabled", "retry_base_delay_ms",
    "retry_max_delay_ms", "breaker_failure_threshold", "breaker_error_rate",
    "breaker_window_seconds", "breaker_min_requests", "breaker_cooldown_seconds",
)  # fmt: skip


class CallStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    # A stream recorded when it started; its final record replaces this one. One left running
    # by a process that died is failed by the sweep (``call_records_sweep``).
    RUNNING = "running", "Running"


class EntryPoint(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible API"
    QUERY = "query", "Query API"
    SSE = "sse", "Streaming API"
    WEBSOCKET = "websocket", "WebSocket"
    BUILD = "build", "Build step"
    AGENT = "agent", "Agent task"
    INTERNAL = "internal", "Internal"


# Call records are a log written in bulk after the fact: a provider or user deleted meanwhile
# must not make the insert fail, so these references carry no database constraint (the names
# are copied into the record as well).
LOG_REFERENCE: dict[str, Any] = {
    "null": True,
    "blank": True,
    "on_delete": models.SET_NULL,
    "db_constraint": False,
}


# What an experiment's figures read of its calls (the analytics app's variant rollups, and the
# hours they do not hold: ``apps.analytics.selectors.variant_figures``).
EXPERIMENT_FIGURE_COLUMNS = (
    "status", "latency_ms", "input_tokens", "output_tokens", "cost",
)  # fmt: skip


class LlmCall(models.Model):
    """One request to the LLM core and its outcome, whichever attempt served it.

    The id is made before the call, so it can be returned while the row is still buffered; it
    is a UUIDv7 (``apps.core.ids.uuid7``), ordered by time, so the primary key index is written
    at its right-hand edge. Rows stored before hold version 4 ids: nothing orders by id.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField()  # indexed with the id: see Meta.indexes
    entry_point = models.CharField(max_length=16, choices=EntryPoint.choices)
    # Indexed with created_at (Meta.indexes), which serves their lookups alone too.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, related_name="llm_calls", db_index=False, **LOG_REFERENCE
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", related_name="llm_calls", db_index=False, **LOG_REFERENCE
    )
    # Unlike the other references, a deleted workspace's id stays: its calls still add up to
    # it (in rollups, say), and deleting one never updates rows of this table.
    workspace = models.ForeignKey(
        "accounts.Workspace",
        related_name="llm_calls",
        help_text="The API key's workspace, else its user's, when the call was made.",
        **{**LOG_REFERENCE, "on_delete": models.DO_NOTHING},
    )
    end_user = models.CharField(
        max_length=256,
        blank=True,
        help_text="The end user the caller acted for (OpenAI's 'user', or X-Orchestra-User).",
    )
    # A dict, not rows of a tag table: written with the call at no cost of its own, and what
    # rollups need reads it as it is: one key's values (``tags->>'team'``, grouped by) or every
    # pair (``jsonb_each``); ``tags @> '{"team": "growth"}'`` filters, by a GIN index once a
    # table is large enough to want one.
    tags = models.JSONField(
        default=dict,
        blank=True,
        help_text="The caller's tags (X-Orchestra-Tags, or the body's 'tags'): key to value.",
    )
    requested_model = models.CharField(max_length=200, blank=True)
    provider = models.ForeignKey(Provider, related_name="calls", **LOG_REFERENCE)
    model = models.ForeignKey(LlmModel, related_name="calls", **LOG_REFERENCE)
    provider_name = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices, default=Endpoint.CHAT)
    stream = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=CallStatus.choices)
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
    experiment_variant_id = models.BigIntegerField(null=True, blank=True)
    build_id = models.BigIntegerField(null=True, blank=True)
    build_step_id = models.BigIntegerField(null=True, blank=True)
    agent_id = models.BigIntegerField(null=True, blank=True)
    trace_id = models.CharField(
        max_length=32,
        null=True,
        blank=True,
        help_text="The OpenTelemetry trace the call ran in (32 hex digits); null when tracing "
        "is off.",
    )

    class Meta:
        verbose_name = "LLM call"
        ordering = ["-created_at"]
        # Every index is written with every call (the busiest table): the columns most calls
        # leave empty are indexed only where set, ``status`` only where a call still runs (the
        # sweep), and ``request_id`` where a call has one (the admin's search by request id; the
        # calls of builds and agent tasks have none), without PostgreSQL's second index for LIKE.
        # Lists are ordered by ``(created_at, id)``, which one index serves: a page, the page
        # after a row (keyset), and the ids at a deep offset read from the index alone; ranges
        # of ``created_at`` use it as they used the index of that column alone.
        indexes = [
            models.Index(fields=["created_at", "id"], name="llmcall_created_id"),
            models.Index(fields=["provider_name", "created_at"]),
            # A caller's calls in a time range (the Calls page's caller filter): the index of
            # the column alone made PostgreSQL read a caller's every call, all 90 days of them.
            models.Index(fields=["user", "created_at"], name="llmcall_user_created"),
            models.Index(fields=["api_key", "created_at"], name="llmcall_api_key_created"),
            models.Index(
                fields=["request_id"], condition=~Q(request_id=""), name="llmcall_request_id"
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(status=CallStatus.RUNNING),
                name="llmcall_running",
            ),
            # An experiment's figures are read from this index alone (PostgreSQL): its calls
            # are spread over the whole table, so fetching each row would read most of it.
            models.Index(
                fields=["experiment_variant_id", "created_at"],
                include=[*EXPERIMENT_FIGURE_COLUMNS],
                condition=Q(experiment_variant_id__isnull=False),
                name="llmcall_variant_figures",
            ),
            *(
                models.Index(
                    fields=[column],
                    condition=Q(**{f"{column}__isnull": False}),
                    name=f"llmcall_{column.removesuffix('_id')}",
                )
                for column in ("build_id", "build_step_id", "agent_id")
            ),
            models.Index(
                fields=["workspace"], condition=Q(workspace__isnull=False), name="llmcall_workspace"
            ),
            models.Index(fields=["end_user"], condition=~Q(end_user=""), name="llmcall_end_user"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.provider_name or '?'}/{self.model_name or self.requested_model} {self.status}"
        )


class LlmCallAttempt(models.Model):
    """One try at one deployment on behalf of an ``LlmCall`` (retries and fallbacks included)."""

    # Indexed by the unique (call, number) constraint, which leads with it.
    call = models.ForeignKey(
        LlmCall, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
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


class CallRecordDeadLetter(models.Model):
    """A call record the database refused (and why), kept aside so the others are stored.

    ``payload`` is the record exactly as it was shipped (JSON); it can be put back in the queue
    from the admin once whatever refused it is fixed.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    call_id = models.UUIDField(null=True, blank=True, db_index=True)
    reason = models.CharField(max_length=500)
    payload = models.TextField()

    class Meta:
        verbose_name = "refused call record"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.call_id or '?'}: {self.reason[:60]}"
