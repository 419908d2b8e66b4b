"""An immutable snapshot of providers, models and routing settings, read once per change.

The hot path never queries the database: each process keeps the snapshot and reloads it only
when the shared config version (bumped on every save, see ``signals.py``) moves on, or after
``MAX_AGE_SECONDS`` as a safety net.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import cached_property
from urllib.parse import quote

from apps.core.crypto import decrypt

from ..models import MODES_SERVING, Endpoint, LlmModel, ModelMode, Provider, RoutingSettings
from ..presets import preset_for

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 60.0
MILLION = Decimal(1_000_000)
# What a header value may hold as is: visible ASCII but "%", which escapes the rest.
HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def header_value(text: str) -> str:
    """``text`` as an HTTP header value: visible ASCII as it is, the rest percent-encoded."""
    return quote(text, safe=HEADER_SAFE)


@dataclass(frozen=True)
class ProviderConfig:
    id: int
    name: str
    kind: str
    base_url: str
    api_key: str = field(repr=False)
    priority: int
    weight: int
    timeout_seconds: float
    max_retries: int
    rpm_limit: int | None
    tpm_limit: int | None
    headers: dict[str, str]
    stream_usage: bool
    health_latency_ms: float | None
    responses_api: bool = False

    @property
    def fingerprint(self) -> tuple:
        """What a client for this provider depends on; a change means a new client."""
        return (self.base_url, self.api_key, self.timeout_seconds, tuple(self.headers.items()))


@dataclass(frozen=True)
class ModelConfig:
    id: int
    name: str
    display_name: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    fallbacks: tuple[str, ...]
    mode: str = ModelMode.CHAT
    created: int = 0  # for /v1/models: as the provider says, else when it was added here
    owned_by: str = ""  # for /v1/models: as the provider says, else the provider's name

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (
            input_tokens * self.input_price_per_million
            + output_tokens * self.output_price_per_million
        ) / MILLION


@dataclass(frozen=True)
class Deployment:
    provider: ProviderConfig
    model: ModelConfig

    @cached_property
    def key(self) -> str:
        """``provider/model``: made once per snapshot (a request asks for it several times)."""
        return f"{self.provider.name}/{self.model.name}"

    @cached_property
    def answer_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """``x-orchestra-provider`` and ``x-orchestra-model``: who served an answer, encoded once
        per snapshot (the hot path adds them as they are); a model id with characters a
        header cannot hold is percent-encoded."""
        return (
            (b"x-orchestra-provider", header_value(self.provider.name).encode()),
            (b"x-orchestra-model", header_value(self.model.name).encode()),
        )


@dataclass(frozen=True)
class RoutingPolicy:
    """The routing settings row as plain values (its defaults are the model's)."""

    strategy: str
    default_provider: str | None
    default_model: str
    fallback_enabled: bool
    retry_base_delay_ms: int
    retry_max_delay_ms: int
    breaker_failure_threshold: int
    breaker_error_rate: float
    breaker_window_seconds: int
    breaker_min_requests: int
    breaker_cooldown_seconds: float


@dataclass(frozen=True)
class RoutingConfig:
    version: int
    loaded_at: float
    policy: RoutingPolicy
    providers: dict[str, ProviderConfig]
    deployments: dict[str, tuple[Deployment, ...]]

    def deployments_for(
        self, model: str, provider: str | None = None, endpoint: str = Endpoint.CHAT
    ) -> tuple[Deployment, ...]:
        """Deployments serving a public model name through ``endpoint`` (by the models' modes);
        ``provider/model`` pins the provider."""
        if not provider and "/" in model and model not in self.deployments:
            provider, _, model = model.partition("/")
        modes = MODES_SERVING[endpoint]
        found = tuple(
            d
            for d in self.deployments.get(model or self.policy.default_model, ())
            if d.model.mode in modes and (not provider or d.provider.name == provider)
        )
        return found

    def public_models(self) -> list[str]:
        return sorted(self.deployments)


def routing_policy_from(settings_row: RoutingSettings | None) -> RoutingPolicy:
    """The policy of the settings row; without one, of an unsaved row (the model's defaults)."""
    row = settings_row or RoutingSettings()
    copied = {f.name: getattr(row, f.name) for f in fields(RoutingPolicy)}
    default = row.default_provider if row.default_provider_id else None
    copied["default_provider"] = default.name if default else None
    return RoutingPolicy(**copied)


def provider_config_from(provider: Provider) -> ProviderConfig:
    preset = preset_for(provider.kind)
    try:
        api_key = decrypt(provider.api_key_encrypted)
    except ValueError:
        logger.error("cannot decrypt the API key of provider %s", provider.name)
        api_key = ""
    return ProviderConfig(
        id=provider.pk,
        name=provider.name,
        kind=provider.kind,
        base_url=(provider.base_url or preset.base_url).rstrip("/"),
        api_key=api_key,
        priority=provider.priority,
        weight=provider.weight,
        timeout_seconds=provider.timeout_seconds,
        max_retries=provider.max_retries,
        rpm_limit=provider.rpm_limit,
        tpm_limit=provider.tpm_limit,
        headers={**preset.headers, **{str(k): str(v) for k, v in provider.extra_headers.items()}},
        stream_usage=preset.stream_usage,
        health_latency_ms=provider.health_latency_ms,
        responses_api=preset.responses_api
        if provider.responses_api is None
        else provider.responses_api,
    )


def load_routing_config(version: int) -> RoutingConfig:
    """Read everything the router needs in three queries."""
    policy = routing_policy_from(RoutingSettings.objects.select_related("default_provider").first())
    providers = {p.name: provider_config_from(p) for p in Provider.objects.filter(enabled=True)}
    deployments: dict[str, list[Deployment]] = {}
    models = LlmModel.objects.filter(enabled=True, provider__enabled=True).select_related(
        "provider"
    )
    for model in models:
        deployment = Deployment(
            provider=providers[model.provider.name],
            model=ModelConfig(
                id=model.pk,
                name=model.name,
                display_name=model.display_name or model.name,
                input_price_per_million=model.input_price_per_million,
                output_price_per_million=model.output_price_per_million,
                fallbacks=tuple(model.fallbacks),
                mode=model.mode,
                created=model.upstream_created
                or (int(model.created_at.timestamp()) if model.created_at else 0),
                owned_by=model.owned_by or model.provider.name,
            ),
        )
        for public_name in dict.fromkeys(model.public_names):
            deployments.setdefault(public_name, []).append(deployment)
    return RoutingConfig(
        version=version,
        loaded_at=time.monotonic(),
        policy=policy,
        providers=providers,
        deployments={name: tuple(found) for name, found in deployments.items()},
    )
