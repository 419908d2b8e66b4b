"""Writes and actions on providers, models, routing settings and circuit breakers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.selectors import budget_list, budget_window
from apps.accounts.services import budget_spend_correct
from apps.core.crypto import encrypt
from apps.core.events import apublish, publish_on_commit
from apps.core.runtime import run_sync
from apps.core.services import instance_update

from .catalog import SELF_HOSTED_KINDS, catalog_name, catalog_price
from .llm import errors
from .llm.config import ProviderConfig, provider_config_from
from .llm.engine import current_routing_config
from .llm.errors import ProviderError
from .llm.recording.records import dead_letters_requeue
from .llm.routing.breakers import CLOSED, HALF_OPEN, BreakerView
from .llm.routing.state import routing_state
from .models import (
    MAX_API_KEY_LENGTH,
    ROUTING_SETTINGS_FIELDS,
    CallRecordDeadLetter,
    HealthStatus,
    LlmModel,
    PriceSource,
    Provider,
    RoutingSettings,
    validate_header_value,
)
from .presets import mode_for_model_name, normalized_base_url
from .selectors import call_spend

UNCHANGED = object()

PROVIDER_FIELDS = (
    "name", "kind", "base_url", "enabled", "priority", "weight", "timeout_seconds",
    "max_retries", "rpm_limit", "tpm_limit", "extra_headers", "responses_api",
)  # fmt: skip
MODEL_FIELDS = (
    "provider", "name", "display_name", "mode", "context_window", "input_price_per_million",
    "output_price_per_million", "enabled", "aliases", "fallbacks",
)  # fmt: skip
PRICE_FIELDS = frozenset({"input_price_per_million", "output_price_per_million"})


# --- providers and models ---------------------------------------------------------------------


# Where the key and the extra headers are sent: changing one of these drops them (see below).


def provider_set_api_key(*, provider: Provider, api_key: str) -> None:
    """Store the key encrypted; an empty key clears it."""
    provider.api_key_encrypted = encrypt(api_key)


def _api_key_check(api_key: str) -> None:
    """The key goes in an ``Authorization`` header: one line, of a sane length."""
    try:
        validate_header_value(api_key)
        if len(api_key) > MAX_API_KEY_LENGTH:
            raise ValidationError(f"At most {MAX_API_KEY_LENGTH} characters.", code="max_length")
    except ValidationError as error:
        raise ValidationError({"api_key": error.messages}) from error


@transaction.atomic
def provider_create(*, api_key: str = "", **fields: Any) -> Provider:
    _api_key_check(api_key)
    provider = Provider()
    provider_set_api_key(provider=provider, api_key=api_key)
    return instance_update(instance=provider, fields=PROVIDER_FIELDS, data=fields)


@transaction.atomic
def provider_update(*, provider: Provider, api_key: Any = UNCHANGED, **fields: Any) -> Provider:
    """Update fields; ``api_key`` left out keeps the stored key, ``""`` removes it.

    The key and the extra headers are secrets of the provider's destination: a change of
    ``base_url`` or ``kind`` removes both unless new ones are given in the same call. Otherwise
    anyone allowed to edit providers (who may not read the key) could point one at a host of
    theirs and have the key sent there.
    """
    destination = _destination(
        fields.get("kind", provider.kind), fields.get("base_url", provider.base_url)
    )
    moved = destination != _destination(provider.kind, provider.base_url)
    if moved:
        if api_key is UNCHANGED:
            api_key = ""
        fields.setdefault("extra_headers", {})
    if api_key is not UNCHANGED:
        api_key = api_key or ""
        _api_key_check(api_key)
        provider_set_api_key(provider=provider, api_key=api_key)
    return instance_update(instance=provider, fields=PROVIDER_FIELDS, data=fields)


def _destination(kind: str, base_url: str) -> tuple[str, str]:
    """Where a provider's requests go, as compared for a move (normalised like ``clean``)."""
    return kind, normalized_base_url(kind, base_url) if base_url else ""


def provider_delete(*, provider: Provider) -> None:
    provider.delete()


@transaction.atomic
def model_create(*, price_source: str | None = None, **fields: Any) -> LlmModel:
    """A model whose prices, when none are given, come from the catalog (if it knows it).

    Prices given are a person's (``manual``), as is ``price_source="manual"``; asking for
    ``"catalog"`` with prices is contradictory.
    """
    _price_source_check(price_source, fields)
    model = LlmModel(name=fields.get("name", ""))
    if isinstance(fields.get("provider"), Provider):
        model.provider = fields["provider"]
    if PRICE_FIELDS & fields.keys() or price_source == PriceSource.MANUAL:
        model_prices_typed(
            model=model, **{name: fields[name] for name in PRICE_FIELDS & fields.keys()}
        )
    elif model.provider_id is not None:
        _catalog_fill(model)
    return instance_update(instance=model, fields=MODEL_FIELDS, data=fields)


@transaction.atomic
def model_update(*, model: LlmModel, price_source: str | None = None, **fields: Any) -> LlmModel:
    """Update fields. A price given is a person's, and the catalog leaves it alone from then on;
    ``price_source="catalog"`` goes back to the catalog's prices (an error if it has none),
    ``"manual"`` keeps the prices as they are, as a person's."""
    _price_source_check(price_source, fields)
    if PRICE_FIELDS & fields.keys() or price_source == PriceSource.MANUAL:
        model_prices_typed(
            model=model, **{name: fields[name] for name in PRICE_FIELDS & fields.keys()}
        )
    model = instance_update(instance=model, fields=MODEL_FIELDS, data=fields)
    if price_source == PriceSource.CATALOG:
        model = model_prices_from_catalog(model=model)
    return model


def model_delete(*, model: LlmModel) -> None:
    model.delete()


# --- prices: typed by a person, or from the catalog (catalog.py) -------------------------------

# What ``price_source`` may be set to: back to the catalog, or the current prices kept as typed.
PRICE_SOURCE_CHOICES = (PriceSource.CATALOG, PriceSource.MANUAL)


def _price_source_check(price_source: str | None, fields: dict[str, Any]) -> None:
    if price_source is None:
        return
    if price_source not in PRICE_SOURCE_CHOICES:
        raise ValidationError(
            {"price_source": f"Use one of: {', '.join(PRICE_SOURCE_CHOICES)}."}, code="invalid"
        )
    if price_source == PriceSource.CATALOG and PRICE_FIELDS & fields.keys():
        raise ValidationError(
            {"price_source": "Give prices (a person's) or ask for the catalog's, not both."},
            code="invalid",
        )


def _prices_set(model: LlmModel, input_price: Decimal, output_price: Decimal) -> None:
    """Set the prices; when they change, calls are priced at them from now on."""
    before = (model.input_price_per_million, model.output_price_per_million)
    if before != (input_price, output_price) or model.prices_valid_from is None:
        model.prices_valid_from = timezone.now()
    model.input_price_per_million, model.output_price_per_million = input_price, output_price


def model_prices_typed(
    *,
    model: LlmModel,
    input_price_per_million: Decimal | None = None,
    output_price_per_million: Decimal | None = None,
) -> None:
    """Mark the model's prices as a person's (the ones given, the others as they are), before
    it is saved: the catalog never overwrites them (the admin's forms call this too)."""
    _prices_set(
        model,
        model.input_price_per_million
        if input_price_per_million is None
        else Decimal(input_price_per_million),
        model.output_price_per_million
        if output_price_per_million is None
        else Decimal(output_price_per_million),
    )
    model.price_source = PriceSource.MANUAL
    model.price_catalog = ""


def _catalog_fill(model: LlmModel) -> bool:
    """Give a model whose prices are not a person's the catalog's prices (and its context window
    when it has none), before it is saved. A self-hosted server's models cost nothing per token.
    Whether anything changed; a model the catalog does not know is left as it is."""
    if model.price_source == PriceSource.MANUAL:
        return False
    before = (
        model.input_price_per_million,
        model.output_price_per_million,
        model.context_window,
        model.price_source,
        model.price_catalog,
    )
    provider = model.provider
    if provider.kind in SELF_HOSTED_KINDS:
        _prices_set(model, Decimal(0), Decimal(0))
        model.price_source, model.price_catalog = PriceSource.SELF_HOSTED, ""
    else:
        price = catalog_price(kind=provider.kind, base_url=provider.base_url, model_name=model.name)
        if price is None:
            return False
        _prices_set(model, price.input_per_million, price.output_per_million)
        model.price_source, model.price_catalog = PriceSource.CATALOG, price.entry[:200]
        if model.context_window is None:
            model.context_window = price.context_window
    after = (
        model.input_price_per_million,
        model.output_price_per_million,
        model.context_window,
        model.price_source,
        model.price_catalog,
    )
    return after != before


def model_catalog_fill(*, model: LlmModel) -> bool:
    """``_catalog_fill`` for a model not saved yet (the admin's add forms)."""
    return _catalog_fill(model)


@transaction.atomic
def model_prices_from_catalog(*, model: LlmModel) -> LlmModel:
    """Back to the catalog: the model's prices become the catalog's again, a person's prices
    dropped. A model the catalog does not price keeps its prices (a 400 through the API)."""
    source = model.price_source
    if source == PriceSource.MANUAL:
        model.price_source = PriceSource.UNKNOWN
    if not _catalog_fill(model) and model.price_source == PriceSource.UNKNOWN:
        model.price_source = source
        raise ValidationError(
            {
                "price_source": f"{catalog_name()} has no price for {model.name!r} on "
                f"{model.provider.name} ({model.provider.get_kind_display()}): its prices stay "
                "as they are."
            },
            code="not_in_catalog",
        )
    model.save()
    return model


@dataclass(frozen=True)
class CatalogApplied:
    """What applying the catalog did: models whose prices changed, were already the catalog's
    (or a self-hosted server's), were left as a person typed them, or are not in the catalog."""

    changed: list[str]
    unchanged: list[str]
    manual: list[str]
    unknown: list[str]

    def summary(self) -> str:
        return (
            f"{catalog_name()}: {len(self.changed)} updated, {len(self.unchanged)} already "
            f"up to date, {len(self.manual)} typed by a person (kept), {len(self.unknown)} "
            "not in the catalog"
        )


def models_apply_catalog_prices(*, models: QuerySet[LlmModel]) -> CatalogApplied:
    """Apply the catalog to existing models (after an upgrade of the catalog, or to models made
    before it): prices typed by a person are kept."""
    result = CatalogApplied([], [], [], [])
    with transaction.atomic():
        for model in models.select_related("provider").select_for_update(of=("self",)):
            if model.price_source == PriceSource.MANUAL:
                result.manual.append(str(model))
            elif _catalog_fill(model):
                model.save()
                result.changed.append(str(model))
            elif model.price_source == PriceSource.UNKNOWN:
                result.unknown.append(str(model))
            else:
                result.unchanged.append(str(model))
    return result


# --- talking to a provider: model list and health ---------------------------------------------


@dataclass(frozen=True)
class ListedModel:
    id: str
    created: int | None
    owned_by: str


async def _list_models(config: ProviderConfig) -> list[ListedModel]:
    from .llm.transport.sdk import error_from_sdk, sdk_client  # the SDK: 0.5 s to import

    try:
        async with asyncio.timeout(config.timeout_seconds):
            return [
                ListedModel(
                    model.id,
                    model.created if isinstance(model.created, int) else None,
                    model.owned_by if isinstance(model.owned_by, str) else "",
                )
                async for model in sdk_client(config).models.list()
            ]
    except TimeoutError as exc:
        message = f"no answer in time from {config.base_url}/models"
        raise ProviderError(errors.TIMEOUT, message) from exc
    except ProviderError:
        raise
    except Exception as exc:
        raise error_from_sdk(exc, config.base_url + "/models") from exc


@dataclass(frozen=True)
class ConnectionTest:
    """What trying a provider found: where it went, how long it took, what it listed."""

    url: str
    ok: bool
    latency_ms: float
    models: list[str]
    error_code: str = ""
    error: str = ""
    http_status: int | None = None  # what the provider answered, when it answered an error

    def summary(self) -> str:
        """What happened, in a sentence: the URL tried and the models, or the exact error."""
        if self.ok:
            listed = ", ".join(self.models[:10]) or "none"
            more = f" and {len(self.models) - 10} more" if len(self.models) > 10 else ""
            return f"{self.url} answered in {self.latency_ms} ms; models: {listed}{more}"
        answered = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"{self.url} failed after {self.latency_ms} ms: {self.error}{answered}"


def provider_test(*, provider: Provider) -> ConnectionTest:
    """Try the provider now (list its models) and say exactly what happened. What it found is
    the provider's health from now on, as a probe's would be; its circuit is left alone (only
    calls and the scheduled probes count against it)."""
    config = provider_config_from(provider)
    started = time.perf_counter()
    try:
        listed = run_sync(_list_models(config))
    except ProviderError as error:
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        _provider_health_note(provider, latency_ms, error)
        return ConnectionTest(
            f"{config.base_url}/models",
            False,
            latency_ms,
            [],
            error.code,
            error.message,
            error.http_status,
        )
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    _provider_health_note(provider, latency_ms, None)
    return ConnectionTest(
        f"{config.base_url}/models", True, latency_ms, [model.id for model in listed]
    )


@dataclass(frozen=True)
class SyncResult:
    created: list[str]
    existing: list[str]
    priced: list[str] = field(default_factory=list)  # given or brought up to the catalog's prices

    def summary(self) -> str:
        priced = f"; prices from {catalog_name()}: {', '.join(self.priced)}" if self.priced else ""
        return f"new models {', '.join(self.created) or 'none'}{priced}"


def provider_sync_models(*, provider: Provider) -> SyncResult:
    """Add the models the provider lists that we do not know yet (the mode is what the name
    suggests; prices and context window from the catalog when it knows the model, else zero),
    bring the known ones' catalog prices up to date (never a price typed by a person), and note
    when and by whom the provider says each was made."""
    listed = {model.id: model for model in run_sync(_list_models(provider_config_from(provider)))}
    known = set(provider.models.values_list("name", flat=True))
    created = [name for name in listed if name not in known]
    priced = []
    with transaction.atomic():
        for name in created:
            model = LlmModel(
                provider=provider,
                name=name,
                display_name=name,
                mode=mode_for_model_name(name),
                owned_by=listed[name].owned_by[:200],
                upstream_created=listed[name].created,
            )
            if _catalog_fill(model) and model.price_source == PriceSource.CATALOG:
                priced.append(name)
            model.save()
        for model in provider.models.filter(name__in=known & set(listed)).select_for_update():
            if _catalog_fill(model):
                model.save()
                if model.price_source == PriceSource.CATALOG:
                    priced.append(model.name)
        for name in known & set(listed):
            provider.models.filter(name=name).update(
                owned_by=listed[name].owned_by[:200], upstream_created=listed[name].created
            )
    return SyncResult(created=created, existing=sorted(known & set(listed)), priced=priced)


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
    breakers = routing_state().breakers
    policy = (await current_routing_config()).policy
    if error and error.counts_against_circuit:
        description = f"health probe: {error.message}"
        _, opened = await breakers.failure(config.name, description, policy)
        if opened:
            await apublish(
                "alerts", "circuit.opened", {"provider": config.name, "error": description}
            )
    elif error is None:
        (breaker,) = await breakers.views([config.name], policy)
        if breaker.state == HALF_OPEN:
            await breakers.success(config.name)
            await apublish("alerts", "circuit.closed", {"provider": config.name})
    return latency_ms, error


def provider_probe(*, provider: Provider) -> Provider:
    """Probe one provider now and store the result (feeds least-latency and the breaker)."""
    latency_ms, error = run_sync(_probe(provider_config_from(provider)))
    _provider_health_note(provider, latency_ms, error)
    return provider


def _provider_health_note(
    provider: Provider, latency_ms: float, error: ProviderError | None
) -> None:
    """Store the outcome of a probe or a Test as the provider's health, and announce it."""
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
    publish_on_commit(
        "metrics",
        "provider.health",
        {
            "provider": provider.name,
            "status": str(provider.health_status),
            "latency_ms": provider.health_latency_ms,
        },
    )


def providers_probe_all() -> dict[str, str]:
    return {
        provider.name: provider_probe(provider=provider).health_status
        for provider in Provider.objects.filter(enabled=True)
    }


# --- routing settings and circuit breakers ----------------------------------------------------


def routing_settings_get() -> RoutingSettings:
    """The one settings row, created with the defaults on first use."""
    settings_row = RoutingSettings.objects.first()
    return settings_row or RoutingSettings.objects.create()


@transaction.atomic
def routing_settings_update(**fields: Any) -> RoutingSettings:
    return instance_update(
        instance=routing_settings_get(), fields=ROUTING_SETTINGS_FIELDS, data=fields
    )


def circuit_breaker_reset(*, provider: Provider) -> BreakerView:
    """Close the provider's circuit and clear its failures; a circuit that was not closed is
    announced closed on ``alerts``, as one closed by a probe is."""

    async def reset() -> BreakerView:
        breakers = routing_state().breakers
        policy = (await current_routing_config()).policy
        (before,) = await breakers.views([provider.name], policy)
        await breakers.reset(provider.name)
        (view,) = await breakers.views([provider.name], policy)
        if before.state != CLOSED:
            await apublish("alerts", "circuit.closed", {"provider": provider.name})
        return view

    return run_sync(reset())


# --- call records -------------------------------------------------------------------------------


def call_record_dead_letters_requeue(*, letters: QuerySet[CallRecordDeadLetter]) -> int:
    """Put records the database refused back in the queue, once what refused them is fixed."""
    return dead_letters_requeue(letters=letters)


def budgets_reconcile(*, now: datetime | None = None) -> int:
    """Put every budget's shared spend right for its current window from the call records (the
    counters are charged as calls end and may drift: a process killed before it shared its
    counts, Redis restarted or flushed); the number of budgets corrected. Records still on
    their way to the database are not counted yet: the next run counts them."""
    corrected = 0
    for budget in budget_list():
        current = budget_window(budget=budget, now=now)
        spent = call_spend(
            scope=budget.scope, target=budget.target_id, since=current[0], until=current[1]
        )
        corrected += budget_spend_correct(budget=budget, spent=spent, now=now)
    return corrected
