"""Reads of providers, models, circuit breakers and call records."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apps.core.runtime import run_sync

from .breakers import OPEN, BreakerView
from .config import RoutingPolicy
from .engine import current_routing_config
from .models import Endpoint, HealthStatus, LlmCall, LlmModel, Provider
from .state import routing_state


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.all()


def provider_get(*, pk: int) -> Provider:
    return get_object_or_404(Provider, pk=pk)


def provider_get_by_name(*, name: str) -> Provider:
    return get_object_or_404(Provider, name=name)


def model_list() -> QuerySet[LlmModel]:
    return LlmModel.objects.select_related("provider")


def model_get(*, pk: int) -> LlmModel:
    return get_object_or_404(model_list(), pk=pk)


def llm_call_list() -> QuerySet[LlmCall]:
    return LlmCall.objects.all()


def llm_call_get(*, pk: Any) -> LlmCall:
    return get_object_or_404(LlmCall.objects.prefetch_related("attempts"), pk=pk)


def public_model_list(*, endpoint: str = Endpoint.CHAT) -> list[dict[str, Any]]:
    """Each public model name that serves ``endpoint``, with the providers serving it, as the
    router sees them (its config snapshot: enabled providers and models; no query unless the
    config changed)."""
    config = run_sync(current_routing_config())
    listed = []
    for name in config.public_models():
        providers = sorted({d.provider.name for d in config.deployments_for(name, None, endpoint)})
        if providers:
            listed.append({"name": name, "providers": providers})
    return listed


def routing_policy_current() -> RoutingPolicy:
    """The routing settings every process applies now (strategy, default model, ...)."""
    return run_sync(current_routing_config()).policy


async def _breaker_views(names: list[str]) -> list[BreakerView]:
    policy = (await current_routing_config()).policy
    return await routing_state().breakers.views(names, policy)


def circuit_breaker_list(*, names: list[str] | None = None) -> list[BreakerView]:
    """The circuit of every provider (or of those named), as every process shares it."""
    if names is None:
        names = list(Provider.objects.order_by("name").values_list("name", flat=True))
    return run_sync(_breaker_views(names))


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
                and circuit != OPEN
                and provider.health_status != HealthStatus.ERROR,
            }
        )
    available = {p["name"] for p in providers if p["available"]}
    routes: dict[str, list[str]] = {}
    for model in LlmModel.objects.filter(enabled=True).select_related("provider"):
        for name in model.public_names:
            if model.provider.name in available:
                routes.setdefault(name, []).append(model.provider.name)
    policy = run_sync(current_routing_config()).policy
    return providers, routes, policy.fallback_enabled
