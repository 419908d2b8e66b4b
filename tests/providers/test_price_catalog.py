"""Prices from the catalog (genai-prices' bundled data): applied when models are synced or
created, never over a price a person typed, dated, and never rewriting the cost of past calls."""

from __future__ import annotations

import importlib
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers import catalog
from apps.providers.catalog import catalog_name, catalog_price
from apps.providers.models import LlmModel, PriceSource, Provider
from apps.providers.services import (
    model_create,
    model_prices_from_catalog,
    model_update,
    provider_sync_models,
)
from tests.providers.test_admin import provider_form
from tests.support.factories import api_key_issue, bearer

pytestmark = pytest.mark.django_db(transaction=True)

# genai-prices 0.2.3's figures (per million tokens) for the models the tests sync.
GPT_4O_MINI = (Decimal("0.15"), Decimal("0.6"), 128_000)
GROK_3 = (Decimal("3"), Decimal("15"), 131_072)


def synced(upstream, kind: str, *names: str, name: str = "p") -> Provider:
    """A provider of ``kind`` at the fake upstream, which lists ``names``, synced."""
    upstream.configure(models=list(names))
    provider = Provider.objects.create(
        name=name, kind=kind, base_url=upstream.base_url, timeout_seconds=2.0, max_retries=0
    )
    provider_sync_models(provider=provider)
    return provider


def prices(model: LlmModel) -> tuple[Decimal, Decimal, int | None]:
    model.refresh_from_db()
    return model.input_price_per_million, model.output_price_per_million, model.context_window


def test_a_synced_known_model_is_priced_and_its_calls_cost_something(
    upstream_a, gateway, recorded_calls
):
    provider = synced(upstream_a, "openai", "gpt-4o-mini", "fake-model")
    model = provider.models.get(name="gpt-4o-mini")
    assert prices(model) == GPT_4O_MINI
    assert model.price_source == PriceSource.CATALOG
    assert model.price_catalog == f"{catalog_name()}: openai/gpt-4o-mini"
    assert catalog_name().startswith("genai-prices ")
    assert model.prices_valid_from is not None

    gateway.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}]
    )
    (call,) = recorded_calls(1)
    expected = (call.input_tokens * Decimal("0.15") + call.output_tokens * Decimal("0.6")) / 10**6
    assert call.output_tokens > 0 and call.cost == expected > 0

    # A new price applies to the calls after it; the cost stored with the call before stays.
    # The server process learns the change a moment later: call until a call is priced anew.
    model_update(model=model, input_price_per_million=Decimal(30))
    for count in range(2, 12):
        gateway.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}]
        )
        first, *_, last = recorded_calls(count)
        repriced = (last.input_tokens * Decimal(30) + last.output_tokens * Decimal("0.6")) / 10**6
        if last.cost == repriced:
            break
        time.sleep(0.5)
    assert last.cost == repriced, "no call was priced at the new price"
    assert first.pk == call.pk and first.cost == expected
    assert last.cost > first.cost


def test_a_price_typed_by_a_person_survives_a_resync_until_asked_back(upstream_a):
    provider = synced(upstream_a, "openai", "gpt-4o-mini")
    model = provider.models.get()
    catalog_since = model.prices_valid_from
    model_update(model=model, output_price_per_million=Decimal("0.5"))
    model.refresh_from_db()
    assert model.price_source == PriceSource.MANUAL and model.price_catalog == ""
    assert model.prices_valid_from > catalog_since

    result = provider_sync_models(provider=provider)
    assert result.existing == ["gpt-4o-mini"] and result.priced == []
    assert prices(model) == (Decimal("0.15"), Decimal("0.5"), 128_000)
    assert model.price_source == PriceSource.MANUAL
    call_command("apply_catalog_prices")
    assert prices(model)[1] == Decimal("0.5")

    model_prices_from_catalog(model=model)
    assert prices(model) == GPT_4O_MINI
    assert model.price_source == PriceSource.CATALOG


def test_a_resync_brings_catalog_prices_up_to_date_but_not_a_context_window_set(upstream_a):
    provider = synced(upstream_a, "openai", "gpt-4o-mini")
    model = provider.models.get()
    # As if an older catalog had priced it differently; a context window a person set.
    LlmModel.objects.filter(pk=model.pk).update(input_price_per_million=1, context_window=1000)
    assert provider_sync_models(provider=provider).priced == ["gpt-4o-mini"]
    assert prices(model) == (Decimal("0.15"), Decimal("0.6"), 1000)
    assert provider_sync_models(provider=provider).priced == []


def test_an_unknown_model_stays_at_zero_with_no_source(upstream_a):
    provider = synced(upstream_a, "openai", "fake-model")
    model = provider.models.get()
    assert prices(model) == (0, 0, None)
    assert (model.price_source, model.price_catalog) == (PriceSource.UNKNOWN, "")
    with pytest.raises(ValidationError, match="has no price for 'fake-model'"):
        model_prices_from_catalog(model=model)


def test_a_generic_server_is_priced_only_where_the_catalog_knows_its_address(upstream_a):
    """At an address of one's own, a name alone does not say who bills for the model."""
    provider = synced(upstream_a, "openai_compatible", "gpt-4o-mini")
    assert provider.models.get().price_source == PriceSource.UNKNOWN
    groq = catalog_price(
        kind="openai_compatible",
        base_url="https://api.groq.com/openai/v1",
        model_name="llama-3.3-70b-versatile",
    )
    assert groq is not None and groq.input_per_million > 0
    assert groq.entry.endswith("groq/llama-3.3-70b-versatile")


def test_xai_grok_models_are_priced(upstream_a):
    provider = synced(upstream_a, "xai", "grok-3", "grok-3-mini")
    grok = provider.models.get(name="grok-3")
    assert prices(grok) == GROK_3
    assert grok.price_catalog.endswith("x-ai/grok-3")
    mini = provider.models.get(name="grok-3-mini")
    assert prices(mini)[0] > 0 and mini.price_source == PriceSource.CATALOG


def test_ollama_models_cost_nothing_whatever_their_names(upstream_a):
    """Self-hosted: the catalog is not asked (``deepseek-r1:8b`` here is not DeepSeek's API)."""
    provider = synced(upstream_a, "ollama", "llama3.2", "deepseek-r1:8b", "gpt-4o-mini")
    for model in provider.models.all():
        assert prices(model) == (0, 0, None), model.name
        assert model.price_source == PriceSource.SELF_HOSTED
    # A person may still price one (the hardware's cost, say): theirs wins from then on.
    model = provider.models.get(name="llama3.2")
    model_update(model=model, input_price_per_million=Decimal("0.01"))
    provider_sync_models(provider=provider)
    assert prices(model)[0] == Decimal("0.01") and model.price_source == PriceSource.MANUAL


def test_a_model_created_without_prices_gets_the_catalogs_and_with_prices_is_manual():
    provider = Provider.objects.create(name="openai", kind="openai")
    known = model_create(provider=provider, name="gpt-4o-mini")
    assert prices(known) == GPT_4O_MINI and known.price_source == PriceSource.CATALOG
    typed = model_create(provider=provider, name="o3", input_price_per_million=Decimal(1))
    assert prices(typed) == (1, 0, None) and typed.price_source == PriceSource.MANUAL
    with pytest.raises(ValidationError, match="not both"):
        model_create(
            provider=provider, name="o4", price_source="catalog", input_price_per_million=1
        )


def test_prices_by_date():
    """The catalog's price in force on a date, and the date it started."""
    before = catalog_price(
        kind="openai", base_url="", model_name="o3", at=datetime(2025, 5, 1, tzinfo=UTC)
    )
    now = catalog_price(kind="openai", base_url="", model_name="o3")
    assert before is not None and now is not None
    assert (before.input_per_million, now.input_per_million) == (10, 2)
    assert now.starts is not None and now.entry.endswith(f"(from {now.starts.isoformat()})")


def test_the_catalog_is_read_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    catalog._snapshot.cache_clear()
    found = catalog_price(kind="openai", base_url="", model_name="gpt-4o-mini")
    assert found is not None and found.input_per_million == Decimal("0.15")


def test_apply_catalog_prices_to_existing_models(capsys):
    provider = Provider.objects.create(name="openai", kind="openai")
    # Models as they were before the catalog: no prices, or a person's.
    old = LlmModel.objects.create(provider=provider, name="gpt-4o-mini")
    typed = LlmModel.objects.create(
        provider=provider, name="o3", input_price_per_million=7, price_source=PriceSource.MANUAL
    )
    unknown = LlmModel.objects.create(provider=provider, name="fake-model")
    call_command("apply_catalog_prices", "openai")
    out = capsys.readouterr().out
    assert "updated openai/gpt-4o-mini" in out
    assert (
        "1 updated, 0 already up to date, 1 typed by a person (kept), 1 not in the catalog" in out
    )
    assert prices(old) == GPT_4O_MINI and old.price_source == PriceSource.CATALOG
    assert prices(typed)[0] == 7
    assert prices(unknown)[0] == 0
    call_command("apply_catalog_prices")
    assert "0 updated, 1 already up to date" in capsys.readouterr().out


def test_the_api_shows_the_source_and_takes_a_person_s_price_or_the_catalog_back(upstream_a):
    api = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    provider = Provider.objects.create(name="openai", kind="openai", base_url=upstream_a.base_url)
    upstream_a.configure(models=["gpt-4o-mini"])
    sync = api.post(f"/api/v1/providers/{provider.pk}/sync-models")
    assert sync.json()["priced"] == ["gpt-4o-mini"]
    (listed,) = api.get("/api/v1/models").json()
    assert listed["price_source"] == "catalog" and listed["context_window"] == 128_000
    assert listed["price_catalog"] == f"{catalog_name()}: openai/gpt-4o-mini"
    assert listed["input_price_per_million"] == "0.150000" and listed["prices_valid_from"]
    url = f"/api/v1/models/{listed['id']}"

    typed = api.patch(url, {"input_price_per_million": "0.2"}, format="json").json()
    assert (typed["price_source"], typed["price_catalog"]) == ("manual", "")
    assert typed["prices_valid_from"] > listed["prices_valid_from"]

    both = api.patch(url, {"price_source": "catalog", "output_price_per_million": 1}, format="json")
    assert both.status_code == 400 and "price_source" in both.json()["error"]["details"]
    wrong = api.patch(url, {"price_source": "unknown"}, format="json")
    assert wrong.status_code == 400 and "price_source" in wrong.json()["error"]["details"]

    back = api.patch(url, {"price_source": "catalog"}, format="json").json()
    assert (back["price_source"], back["input_price_per_million"]) == ("catalog", "0.150000")
    kept = api.patch(url, {"price_source": "manual"}, format="json").json()
    assert (kept["price_source"], kept["input_price_per_million"]) == ("manual", "0.150000")

    made = api.post(
        "/api/v1/models", {"provider": provider.pk, "name": "fake-model"}, format="json"
    ).json()
    assert (made["price_source"], made["input_price_per_million"]) == ("unknown", "0.000000")
    refused = api.patch(f"/api/v1/models/{made['id']}", {"price_source": "catalog"}, format="json")
    assert refused.status_code == 400
    assert "has no price for 'fake-model'" in str(refused.json()["error"]["details"])


def test_the_admin_marks_a_typed_price_and_goes_back_to_the_catalog(admin_client):
    provider = Provider.objects.create(name="openai", kind="openai")
    model = model_create(provider=provider, name="gpt-4o-mini")
    form = {
        "provider": provider.pk,
        "name": "gpt-4o-mini",
        "display_name": "",
        "mode": "chat",
        "context_window": 128000,
        "input_price_per_million": "0.15",
        "output_price_per_million": "0.6",
        "enabled": "on",
        "aliases": "[]",
        "fallbacks": "[]",
        "owned_by": "",
    }
    change = f"/admin/providers/llmmodel/{model.pk}/change/"
    admin_client.post(change, {**form, "display_name": "Mini"})
    model.refresh_from_db()
    assert model.display_name == "Mini" and model.price_source == PriceSource.CATALOG
    admin_client.post(change, {**form, "output_price_per_million": "0.7"})
    model.refresh_from_db()
    assert (model.output_price_per_million, model.price_source) == (
        Decimal("0.7"),
        PriceSource.MANUAL,
    )
    page = admin_client.get(change).content.decode()
    assert "Typed by a person" in page

    changelist = "/admin/providers/llmmodel/"
    admin_client.post(
        changelist, {"action": "apply_catalog_prices", "_selected_action": [model.pk]}
    )
    model.refresh_from_db()
    assert model.output_price_per_million == Decimal("0.7")
    admin_client.post(changelist, {"action": "prices_from_catalog", "_selected_action": [model.pk]})
    model.refresh_from_db()
    assert prices(model) == GPT_4O_MINI and model.price_source == PriceSource.CATALOG
    listing = admin_client.get(changelist).content.decode()
    assert "Catalog" in listing

    admin_client.post(
        "/admin/providers/llmmodel/add/",
        {
            **form,
            "name": "grok-3",
            "input_price_per_million": "0",
            "output_price_per_million": "0",
            "context_window": "",
        },
    )
    added = LlmModel.objects.get(name="grok-3")
    assert added.price_source == PriceSource.UNKNOWN  # an OpenAI provider: xAI's model unknown
    admin_client.post(
        "/admin/providers/llmmodel/add/",
        {
            **form,
            "name": "o3",
            "input_price_per_million": "0",
            "output_price_per_million": "0",
            "context_window": "",
        },
    )
    assert LlmModel.objects.get(name="o3").price_source == PriceSource.CATALOG


def test_the_providers_inline_marks_a_typed_price_and_prices_a_new_model(admin_client):
    provider = Provider.objects.create(name="openai", kind="openai")
    model = model_create(provider=provider, name="gpt-4o-mini")
    row = {"provider": provider.pk, "display_name": "", "enabled": "on"}
    models = {
        "models-TOTAL_FORMS": 2,
        "models-INITIAL_FORMS": 1,
        **{f"models-0-{k}": v for k, v in row.items()},
        "models-0-id": model.pk,
        "models-0-name": "gpt-4o-mini",
        "models-0-input_price_per_million": "0.15",
        "models-0-output_price_per_million": "0.9",
        **{f"models-1-{k}": v for k, v in row.items()},
        "models-1-name": "o3",
        "models-1-input_price_per_million": "0",
        "models-1-output_price_per_million": "0",
    }
    form = provider_form(name="openai", **models)
    response = admin_client.post(f"/admin/providers/provider/{provider.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    model.refresh_from_db()
    assert (model.output_price_per_million, model.price_source) == (
        Decimal("0.9"),
        PriceSource.MANUAL,
    )
    added = provider.models.get(name="o3")
    assert added.price_source == PriceSource.CATALOG and prices(added)[0] == 2


def test_prices_set_before_the_catalog_count_as_a_person_s():
    """Migration 0009: a model with a price already is ``manual``; one at zero is left to the
    catalog (``apply_catalog_prices``)."""
    migration = importlib.import_module("apps.providers.migrations.0009_model_price_source")
    provider = Provider.objects.create(name="openai", kind="openai")
    typed = LlmModel.objects.create(provider=provider, name="o3", output_price_per_million=8)
    free = LlmModel.objects.create(provider=provider, name="gpt-4o-mini")
    migration.prices_typed_before(django_apps, None)
    typed.refresh_from_db()
    free.refresh_from_db()
    assert (typed.price_source, typed.prices_valid_from) == (PriceSource.MANUAL, typed.updated_at)
    assert (free.price_source, free.prices_valid_from) == (PriceSource.UNKNOWN, None)
