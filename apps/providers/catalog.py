"""Known models' prices and context windows, from a maintained catalog: the data bundled with
the ``genai-prices`` package (Pydantic's), read from the installed package only.

Nothing is downloaded, at run time or ever: the package's ``UpdatePrices`` (its opt-in fetch
from GitHub) is never started, and the bundled data is read directly rather than through the
package's process-wide snapshot, which that fetch would replace. New prices arrive with a new
pinned version of the package and ``manage.py apply_catalog_prices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING

from .models import ProviderKind
from .presets import normalized_base_url

if TYPE_CHECKING:  # the package is imported on first use: 0.15 s every process paid at start
    from genai_prices import types as catalog_types
    from genai_prices.data_snapshot import DataSnapshot

PACKAGE = "genai-prices"

# The kinds whose provider bills per token as the catalog says, by the catalog's provider id.
CATALOG_PROVIDERS: dict[str, str] = {
    ProviderKind.OPENAI: "openai",
    ProviderKind.XAI: "x-ai",
    ProviderKind.OPENROUTER: "openrouter",
}
# Servers that run models on hardware of one's own: no per-token bill, whatever a model's name
# (``deepseek-r1:8b`` on Ollama is not DeepSeek's API), so the catalog is not asked.
SELF_HOSTED_KINDS = frozenset(
    {ProviderKind.OLLAMA, ProviderKind.VLLM, ProviderKind.TGI, ProviderKind.LMSTUDIO}
)

PRICE_PLACES = Decimal("0.000001")  # the price fields' six decimal places


@dataclass(frozen=True)
class CatalogPrice:
    """A model's per-million-token prices (USD) and context window, as the catalog has them."""

    input_per_million: Decimal
    output_per_million: Decimal
    context_window: int | None
    entry: str  # "genai-prices 0.2.3: openai/gpt-4o-mini", with the catalog's date when it has one
    starts: date | None  # the date the catalog says this price starts, if it says one


@cache
def catalog_name() -> str:
    """The catalog as prices name their source: the package and its installed version."""
    return f"{PACKAGE} {version(PACKAGE)}"


@cache
def _snapshot() -> DataSnapshot:
    from genai_prices.data import providers  # 1.6 MB of Python: loaded on first use only
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def _per_million(value: object) -> Decimal | None:
    from genai_prices import types as catalog_types

    if isinstance(value, catalog_types.TieredPrices):
        value = value.base  # tiers start past 128k-200k tokens of one request: rare here
    if isinstance(value, Decimal | int | float):
        return Decimal(value).quantize(PRICE_PLACES)
    return None


def _standard_price(
    info: catalog_types.ModelInfo, at: datetime
) -> tuple[catalog_types.ModelPrice | None, date | None]:
    """The price in force on ``at``'s date and the date it started. Prices by time of day
    (DeepSeek's off-peak hours) are left out: one price per model here."""
    from genai_prices import types as catalog_types

    if isinstance(info.prices, catalog_types.ModelPrice):
        return info.prices, None
    dated = [
        price
        for price in info.prices
        if not isinstance(price.constraint, catalog_types.TimeOfDateConstraint)
    ]
    for price in reversed(dated):  # the catalog's rule: the last one in force wins
        constraint = price.constraint
        if constraint is None or constraint.active(at):
            if isinstance(constraint, catalog_types.StartDateConstraint):
                return price.prices, constraint.start_date
            return price.prices, None
    return (dated[0].prices, None) if dated else (None, None)


def catalog_price(
    *, kind: str, base_url: str, model_name: str, at: datetime | None = None
) -> CatalogPrice | None:
    """The catalog's price of ``model_name`` served by a provider of ``kind`` at ``base_url``,
    in force at ``at`` (now by default); ``None`` when the catalog does not price it by token.

    OpenAI, xAI and OpenRouter are looked up as themselves. A generic OpenAI-compatible server
    is looked up by its URL (the catalog knows Groq's, DeepSeek's, Together's...); at any other
    address (a proxy, a server of one's own) the name alone does not say who bills for it, so
    nothing is found. Self-hosted kinds are never looked up (see ``SELF_HOSTED_KINDS``).
    """
    snapshot = _snapshot()
    provider_id = CATALOG_PROVIDERS.get(kind)
    url = None
    if provider_id is None:
        if kind != ProviderKind.OPENAI_COMPATIBLE or not base_url:
            return None
        url = normalized_base_url(kind, base_url)
    try:
        provider, info = snapshot.find_provider_model(model_name, None, provider_id, url)
    except LookupError:
        return None
    price, starts = _standard_price(info, at or datetime.now(UTC))
    if price is None:
        return None
    input_price = _per_million(getattr(price, "input_mtok", None))
    output_price = _per_million(getattr(price, "output_mtok", None))
    if input_price is None and output_price is None:
        return None  # priced by the hour of audio, by image...: not by token
    entry = f"{catalog_name()}: {provider.id}/{info.id}"
    if starts is not None:
        entry += f" (from {starts.isoformat()})"
    return CatalogPrice(
        input_per_million=input_price or Decimal(0),
        output_per_million=output_price or Decimal(0),
        context_window=info.context_window,
        entry=entry,
        starts=starts,
    )
