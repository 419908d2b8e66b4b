"""An experiment's variants: checked from what callers send (``variants_validate``) and written
as its ``Variant`` rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from apps.core.errors import validation_messages
from apps.core.limits import PROMPT_MAX_CHARS
from apps.providers.models import Provider

from ..models import Experiment, Variant, VariantKind
from .common import CENT, HUNDRED

MAX_VARIANTS = 10
VARIANT_FIELDS = ("name", "type", "traffic_percentage", "config")
CONFIG_FIELDS = ("provider", "model", "temperature", "max_tokens", "system_prompt")


@dataclass(frozen=True)
class VariantSpec:
    name: str
    kind: str
    traffic_percentage: Decimal
    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str = ""

    def values(self, position: int) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "traffic_percentage": self.traffic_percentage,
            "position": position,
            "provider": self.provider,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "system_prompt": self.system_prompt,
        }


def percentage_from(value: Any, field: str) -> Decimal:
    """A percentage from 0 to 100 with at most two decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValidationError({field: "A number from 0 to 100."})
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError({field: "A number from 0 to 100."}) from None
    if not number.is_finite() or not 0 <= number <= HUNDRED:
        raise ValidationError({field: "A number from 0 to 100."})
    if number != number.quantize(CENT):
        raise ValidationError({field: "At most two decimals (0.01% steps)."})
    return number.quantize(CENT)


def variants_validate(variants: Any) -> list[VariantSpec]:
    """The variants of an experiment, checked: a list (not an object keyed by name) of 2 to 10
    objects, each with a unique ``name``, a ``type`` (control or treatment), a
    ``traffic_percentage`` and a ``config`` of overrides; exactly one control; the percentages
    add up to 100."""
    if isinstance(variants, Mapping):
        raise ValidationError(
            {
                "variants": 'A list (JSON array) of variants, not an object: [{"name": "control", '
                '"type": "control", "traffic_percentage": 50, "config": {}}, …].'
            }
        )
    if not isinstance(variants, list) or len(variants) < 2:
        raise ValidationError({"variants": "A list of at least two variants."})
    if len(variants) > MAX_VARIANTS:
        raise ValidationError({"variants": f"At most {MAX_VARIANTS} variants."})
    specs: list[VariantSpec] = []
    problems: list[str] = []
    for number, raw in enumerate(variants, start=1):
        try:
            specs.append(_variant_spec(raw))
        except ValidationError as error:
            problems.extend(f"Variant {number}: {text}" for text in validation_messages(error))
    if problems:
        raise ValidationError({"variants": problems})
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"Variant names are unique; repeated: {', '.join(duplicates)}.")
    controls = [spec.name for spec in specs if spec.kind == VariantKind.CONTROL]
    if len(controls) != 1:
        found = f"{len(controls)} ({', '.join(controls)})" if controls else "none"
        problems.append(f"Exactly one variant is the control; found {found}.")
    total = sum((spec.traffic_percentage for spec in specs), Decimal(0))
    if total != HUNDRED:
        problems.append(f"The traffic percentages add up to {total.normalize():f}, not 100.")
    if problems:
        raise ValidationError({"variants": problems})
    return specs


def _variant_spec(raw: Any) -> VariantSpec:
    if not isinstance(raw, Mapping):
        raise ValidationError("Each variant is an object.")
    unknown = sorted(set(raw) - set(VARIANT_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValidationError({"name": "A name of 1-100 characters."})
    kind = raw.get("type")
    if kind not in VariantKind.values:
        raise ValidationError({"type": "'control' or 'treatment'."})
    percentage = percentage_from(raw.get("traffic_percentage"), "traffic_percentage")
    config = raw.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ValidationError({"config": "An object of overrides: " + ", ".join(CONFIG_FIELDS)})
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({f"config.{name}": "Unknown override." for name in unknown})
    return _config_spec(name.strip(), kind, percentage, config)


def _config_spec(
    name: str, kind: str, percentage: Decimal, config: Mapping[str, Any]
) -> VariantSpec:
    problems: dict[str, str] = {}
    texts: dict[str, str] = {}
    for field in ("provider", "model", "system_prompt"):
        value = config.get(field) or ""
        if not isinstance(value, str):
            problems[f"config.{field}"] = "A string."
        texts[field] = value if isinstance(value, str) else ""
    if len(texts["system_prompt"]) > PROMPT_MAX_CHARS:
        problems["config.system_prompt"] = f"At most {PROMPT_MAX_CHARS:,} characters."
    temperature = config.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        problems["config.temperature"] = "A number from 0 to 2."
    max_tokens = config.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        problems["config.max_tokens"] = "An integer from 1."
    if problems:
        raise ValidationError(problems)
    if texts["provider"] and not Provider.objects.filter(name=texts["provider"]).exists():
        raise ValidationError({"config.provider": f"No provider {texts['provider']!r}."})
    variant = Variant(
        name=name,
        kind=kind,
        traffic_percentage=percentage,
        provider=texts["provider"],
        model=texts["model"],
        temperature=temperature,
        max_tokens=max_tokens,
        system_prompt=texts["system_prompt"],
    )
    variant.clean_fields(exclude=["experiment", "position"])
    return VariantSpec(
        name=name,
        kind=kind,
        traffic_percentage=percentage,
        provider=texts["provider"],
        model=texts["model"],
        temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens,
        system_prompt=texts["system_prompt"],
    )


def variants_write(experiment: Experiment, specs: list[VariantSpec]) -> bool:
    """Make the experiment's variants the specs (matched by name); whether anything changed."""
    existing = {variant.name: variant for variant in experiment.variants.all()}
    changed = False
    for position, spec in enumerate(specs):
        variant = existing.pop(spec.name, None) or Variant(experiment=experiment, name=spec.name)
        values = spec.values(position)
        if variant.pk is None or any(getattr(variant, k) != v for k, v in values.items()):
            for name, value in values.items():
                setattr(variant, name, value)
            variant.save()
            changed = True
    for leftover in existing.values():
        leftover.delete()
        changed = True
    return changed
