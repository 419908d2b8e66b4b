"""Writes and actions on providers, models and routing settings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.runtime import run_sync
from apps.realtime.events import apublish

from . import errors
from .config import ProviderConfig, provider_config_from
from .core import Completion, LlmRequest, complete, current_routing_config
from .crypto import encrypt
from .errors import ProviderError
from .models import HealthStatus, LlmModel, Provider, RoutingSettings
from .state import HALF_OPEN, BreakerView, shared_state
from .transports import error_from_sdk, sdk_client

UNCHANGED = object()


# --- providers and models ---------------------------------------------------------------------


def provider_set_api_key(*, provider: Provider, api_key: str) -> None:
    """Store the key encrypted; an empty key clears it."""
    provider.api_key_encrypted = encrypt(api_key)


@transaction.atomic
def provider_create(*, api_key: str = "", **fields: Any) -> Provider:
    provider = Provider(**fields)
    provider_set_api_key(provider=provider, api_key=api_key)
    provider.full_clean()
    provider.save()
    return provider


@transaction.atomic
def provider_update(*, provider: Provider, api_key: Any = UNCHANGED, **fields: Any) -> Provider:
    """Update fields; ``api_key`` left out keeps the stored key, ``""`` removes it."""
    for name, value in fields.items():
        setattr(provider, name, value)
    if api_key is not UNCHANGED:
        provider_set_api_key(provider=provider, api_key=api_key or "")
    provider.full_clean()
    provider.save()
    return provider


def provider_delete(*, provider: Provider) -> None:
    provider.delete()


@transaction.atomic
def model_create(**fields: Any) -> LlmModel:
    model = LlmModel(**fields)
    model.full_clean()
    model.save()
    return model


@transaction.atomic
def model_update(*, model: LlmModel, **fields: Any) -> LlmModel:
    for name, value in fields.items():
        setattr(model, name, value)
    model.full_clean()
    model.save()
    return model


def model_delete(*, model: LlmModel) -> None:
    model.delete()


# --- talking to a provider: model list and health ---------------------------------------------


async def _list_models(config: ProviderConfig) -> list[str]:
    try:
        async with asyncio.timeout(config.timeout_seconds):
            return [model.id async for model in sdk_client(config).models.list()]
    except TimeoutError as exc:
        raise ProviderError(errors.TIMEOUT, "the provider did not answer in time") from exc
    except ProviderError:
        raise
    except Exception as exc:
        raise error_from_sdk(exc) from exc


@dataclass(frozen=True)
class SyncResult:
    created: list[str]
    existing: list[str]


def provider_sync_models(*, provider: Provider) -> SyncResult:
    """Add the models the provider lists that we do not know yet (prices start at zero)."""
    listed = run_sync(_list_models(provider_config_from(provider)))
    known = set(provider.models.values_list("name", flat=True))
    created = [name for name in listed if name not in known]
    with transaction.atomic():
        for name in created:
            LlmModel.objects.create(provider=provider, name=name, display_name=name)
    return SyncResult(created=created, existing=sorted(known & set(listed)))


async def _probe(config: ProviderConfig) -> tuple[float, ProviderError | None]:
    """List the models as a health probe, and feed the outcome to the circuit breaker: a
    failure counts against it; a success closes a circuit whose cool-down has passed."""
    started = time.perf_counter()
    try:
        await _list_models(config)
        error = None
    except ProviderError as exc:
        error = exc
    latency_ms = (time.perf_counter() - started) * 1000
    state = shared_state()
    policy = (await current_routing_config()).policy
    if error and error.counts_against_circuit:
        await state.breaker_failure(config.name, f"health probe: {error.message}", policy)
    elif error is None:
        (breaker,) = await state.breakers([config.name], policy)
        if breaker.state == HALF_OPEN:
            await state.breaker_success(config.name)
    status = HealthStatus.ERROR if error else HealthStatus.OK
    await apublish(
        "metrics",
        "provider.health",
        {"provider": config.name, "status": str(status), "latency_ms": round(latency_ms, 2)},
    )
    return latency_ms, error


def provider_probe(*, provider: Provider) -> Provider:
    """Probe one provider now and store the result (feeds least-latency and the breaker)."""
    latency_ms, error = run_sync(_probe(provider_config_from(provider)))
    provider.health_status = HealthStatus.ERROR if error else HealthStatus.OK
    provider.health_latency_ms = round(latency_ms, 2)
    provider.health_error = f"{error.code}: {error.message}"[:500] if error else ""
    provider.health_checked_at = timezone.now()
    Provider.objects.filter(pk=provider.pk).update(
        health_status=provider.health_status,
        health_latency_ms=provider.health_latency_ms,
        health_error=provider.health_error,
        health_checked_at=provider.health_checked_at,
    )
    return provider


def providers_probe_all() -> dict[str, str]:
    return {
        provider.name: provider_probe(provider=provider).health_status
        for provider in Provider.objects.filter(enabled=True)
    }


# --- routing settings and circuit breakers ----------------------------------------------------


def routing_settings_get() -> RoutingSettings:
    settings_row = RoutingSettings.objects.first()
    return settings_row or RoutingSettings.objects.create()


@transaction.atomic
def routing_settings_update(**fields: Any) -> RoutingSettings:
    settings_row = routing_settings_get()
    for name, value in fields.items():
        setattr(settings_row, name, value)
    settings_row.full_clean()
    settings_row.save()
    return settings_row


async def _breakers(names: list[str]) -> list[BreakerView]:
    return await shared_state().breakers(names, (await current_routing_config()).policy)


def circuit_breaker_list() -> list[BreakerView]:
    names = list(Provider.objects.order_by("name").values_list("name", flat=True))
    return run_sync(_breakers(names))


def circuit_breaker_reset(*, provider: Provider) -> BreakerView:
    async def reset() -> BreakerView:
        await shared_state().breaker_reset(provider.name)
        return (await _breakers([provider.name]))[0]

    return run_sync(reset())


# --- running a query from synchronous code ----------------------------------------------------


def llm_query(*, request: LlmRequest) -> Completion:
    """The core's ``complete``, for sync callers (the query API, Celery tasks)."""
    return run_sync(complete(request))


def provider_availability() -> tuple[list[dict[str, Any]], dict[str, list[str]], bool]:
    """Each provider's availability, each public model's failover order, and whether failover
    is on (for the feature status)."""
    breakers = {view.provider: view for view in circuit_breaker_list()}
    providers = []
    for provider in Provider.objects.order_by("priority", "name"):
        circuit = breakers[provider.name].state if provider.name in breakers else "closed"
        providers.append(
            {
                "name": provider.name,
                "enabled": provider.enabled,
                "health": provider.health_status,
                "circuit": circuit,
                "available": provider.enabled
                and circuit != "open"
                and provider.health_status != HealthStatus.ERROR,
            }
        )
    available = {p["name"] for p in providers if p["available"]}
    routes: dict[str, list[str]] = {}
    for model in LlmModel.objects.filter(enabled=True).select_related("provider"):
        for name in model.public_names:
            if model.provider.name in available:
                routes.setdefault(name, []).append(model.provider.name)
    return providers, routes, routing_settings_get().fallback_enabled
