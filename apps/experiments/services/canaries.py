"""Experiments: create, change, start, stop; assignments, conversions and feedback; canaries.

Locks are taken experiment first, then its canary, everywhere, so that a stop and a canary's
step never wait on each other.

Every change that alters what requests get (start, stop, a new split, the settings) bumps the
shared version on commit, so every process's request hook reloads its snapshot. A running
experiment's split or variants never change in place: ``experiment_update`` and every canary
step start a new ``ExperimentPhase`` (published as ``experiment.phase``), whose users and
figures are counted apart. A canary's steps keep the phase's seed, so users only ever move from
the control to the treatment; any other new split re-randomises (a new seed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.events import publish_on_commit
from apps.core.limits import PROMPT_MAX_CHARS
from apps.core.redis import key, redis_client
from apps.core.services import instance_update
from apps.providers.models import Provider

from .. import statistics
from ..models import (
    Assignment,
    CanaryEvent,
    CanaryEventKind,
    CanaryRollout,
    CanaryStatus,
    Experiment,
    ExperimentPhase,
    ExperimentSettings,
    ExperimentStatus,
    TrackedEvent,
    TrackedEventKind,
    Variant,
    VariantKind,
)
from ..selectors import (
    CallFigures,
    call_figures,
    experiment_phase,
    experiment_settings_get,
    experiment_stats,
    running_experiment_of,
)

logger = logging.getLogger(__name__)

MAX_VARIANTS = 10
MAX_CANARY_STEPS = 20
VARIANT_FIELDS = ("name", "type", "traffic_percentage", "config")
CONFIG_FIELDS = ("provider", "model", "temperature", "max_tokens", "system_prompt")
EXPERIMENT_FIELDS = ("name", "description", "hypothesis", "metric", "user_percentage")
SETTINGS_FIELDS = (
    "enabled", "significance_level", "error_rate_margin", "latency_margin", "cost_margin",
    "guardrail_min_calls", "latency_floor_ms", "canary_steps", "canary_step_interval_seconds",
    "canary_min_requests",
)  # fmt: skip
HUNDRED = Decimal(100)
CENT = Decimal("0.01")


class FeatureDisabledError(Exception):
    """A/B testing is switched off (``ExperimentSettings.enabled``)."""

    message = "A/B testing is switched off in the experiment settings."


def version_key() -> str:
    return key("experiments", "version")


def config_version_bump() -> None:
    """Tell every process that what requests get changed (once the transaction commits);
    without Redis they notice within the hook's ``CACHE_SECONDS``."""
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        redis_client().incr(version_key())
    except Exception:
        logger.warning("could not announce a change of the experiments", exc_info=True)


def _require_enabled() -> None:
    if not experiment_settings_get().enabled:
        raise FeatureDisabledError(FeatureDisabledError.message)


# --- settings ---------------------------------------------------------------------------------


def experiment_settings_ensure() -> ExperimentSettings:
    """The one settings row, created with the defaults on first use."""
    return ExperimentSettings.objects.first() or ExperimentSettings.objects.create()


@transaction.atomic
def experiment_settings_update(**fields: Any) -> ExperimentSettings:
    if "canary_steps" in fields:
        canary_steps_validate(fields["canary_steps"], field="canary_steps")
    row = instance_update(
        instance=experiment_settings_ensure(), fields=SETTINGS_FIELDS, data=fields
    )
    config_version_bump()
    return row


# --- variants ---------------------------------------------------------------------------------


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
            "kind": self.kind, "traffic_percentage": self.traffic_percentage, "position": position,
            "provider": self.provider, "model": self.model, "temperature": self.temperature,
            "max_tokens": self.max_tokens, "system_prompt": self.system_prompt,
        }  # fmt: skip


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
            {"variants": 'A list (JSON array) of variants, not an object: [{"name": "control", '
             '"type": "control", "traffic_percentage": 50, "config": {}}, …].'}
        )  # fmt: skip
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
            problems.extend(f"Variant {number}: {text}" for text in _flat(error))
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


def _flat(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{field}: {text}" for field, texts in error.message_dict.items() for text in texts]
    return list(error.messages)


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
        name=name, kind=kind, traffic_percentage=percentage, provider=texts["provider"],
        model=texts["model"], temperature=temperature, max_tokens=max_tokens,
        system_prompt=texts["system_prompt"],
    )  # fmt: skip
    variant.clean_fields(exclude=["experiment", "position"])
    return VariantSpec(
        name=name, kind=kind, traffic_percentage=percentage, provider=texts["provider"],
        model=texts["model"], temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens, system_prompt=texts["system_prompt"],
    )  # fmt: skip


def _variants_write(experiment: Experiment, specs: list[VariantSpec]) -> bool:
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


# --- experiments --------------------------------------------------------------------------------


def _check_name(name: Any) -> None:
    if isinstance(name, str) and name.strip().isdigit():
        raise ValidationError({"name": "Not only digits: a number names an experiment by id."})


def experiment_create(
    *,
    name: str,
    variants: Any,
    by: User | None = None,
    description: str = "",
    hypothesis: str = "",
    metric: str = "conversion",
    user_percentage: Any = HUNDRED,
) -> Experiment:
    """A draft experiment with its variants (see ``variants_validate``)."""
    specs = variants_validate(variants)
    _check_name(name)
    experiment = Experiment(
        name=name.strip() if isinstance(name, str) else name, description=description,
        hypothesis=hypothesis, metric=metric or "conversion",
        user_percentage=percentage_from(user_percentage, "user_percentage"), created_by=by,
    )  # fmt: skip
    experiment.full_clean(exclude=["created_by", "winner"])
    with transaction.atomic():
        experiment.save()
        _variants_write(experiment, specs)
    return experiment


def experiment_update(*, experiment: Experiment, **fields: Any) -> Experiment:
    """Change an experiment. A running one keeps its variants (list them all; 0% retires one)
    and a change of its split, its variants' configs or its user percentage starts a new phase
    (its users are assigned afresh and counted apart); a stopped one changes only its texts."""
    unexpected = sorted(set(fields) - {*EXPERIMENT_FIELDS, "variants"})
    if unexpected:
        raise ValueError(f"cannot update {', '.join(unexpected)} of an experiment")
    specs = variants_validate(fields.pop("variants")) if "variants" in fields else None
    if "name" in fields:
        _check_name(fields["name"])
    if "user_percentage" in fields:
        fields["user_percentage"] = percentage_from(fields["user_percentage"], "user_percentage")
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        running = experiment.status == ExperimentStatus.RUNNING
        new_share = (
            "user_percentage" in fields and fields["user_percentage"] != experiment.user_percentage
        )
        if experiment.status == ExperimentStatus.STOPPED and (specs is not None or new_share):
            raise ValidationError("A stopped experiment's variants and split no longer change.")
        if running and specs is not None:
            missing = sorted(
                set(experiment.variants.values_list("name", flat=True))
                - {spec.name for spec in specs}
            )
            if missing:
                raise ValidationError(
                    {"variants": f"A running experiment keeps its variants: list them all (0% "
                     f"retires one); missing: {', '.join(missing)}."}
                )  # fmt: skip
        for name, value in fields.items():
            setattr(experiment, name, value)
        experiment.full_clean(exclude=["created_by", "winner"])
        experiment.save()
        changed = _variants_write(experiment, specs) if specs is not None else False
        if running:
            if changed or new_share:
                _phase_start(experiment, reason="The variants or the split changed.")
            config_version_bump()
    return experiment


def experiment_start(*, experiment: Experiment, by: User | None = None) -> Experiment:
    """Start a draft: phase 1 begins, requests naming it get their variants."""
    _require_enabled()
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != ExperimentStatus.DRAFT:
            raise ValidationError(
                "The experiment is already running."
                if experiment.status == ExperimentStatus.RUNNING
                else "A stopped experiment does not start again; create a new one."
            )
        _start(experiment)
    return experiment


def _start(experiment: Experiment) -> ExperimentPhase:
    specs = [
        {"type": v.kind, "traffic_percentage": v.traffic_percentage}
        for v in experiment.variants.all()
    ]
    total = sum((s["traffic_percentage"] for s in specs), Decimal(0))
    if [s["type"] for s in specs].count(VariantKind.CONTROL) != 1 or total != HUNDRED:
        raise ValidationError("Its variants need exactly one control and shares adding up to 100.")
    experiment.status = ExperimentStatus.RUNNING
    experiment.started_at = timezone.now()
    experiment.save(update_fields=["status", "started_at", "updated_at"])
    phase = _phase_start(experiment, reason="Started.")
    publish_on_commit(
        "experiments", "experiment.started",
        {"experiment": experiment.pk, "name": experiment.name, "phase": phase.number},
    )  # fmt: skip
    return phase


def _phase_start(
    experiment: Experiment, *, reason: str, keep_seed: bool = False
) -> ExperimentPhase:
    """End the current phase and begin the next with the variants' shares as they are now."""
    now = timezone.now()
    current = experiment_phase(experiment=experiment)
    if current is not None:
        current.ended_at = now
        current.save(update_fields=["ended_at"])
    number = experiment.phase + 1
    seed = current.seed if keep_seed and current is not None else str(number)
    allocation = [
        {"variant": v.pk, "name": v.name, "kind": v.kind,
         "traffic_percentage": float(v.traffic_percentage)}
        for v in experiment.variants.order_by("position", "id")
    ]  # fmt: skip
    phase = ExperimentPhase.objects.create(
        experiment=experiment, number=number, seed=seed,
        user_percentage=experiment.user_percentage, allocation=allocation, reason=reason[:200],
        started_at=now,
    )  # fmt: skip
    experiment.phase = number
    experiment.save(update_fields=["phase", "updated_at"])
    if number > 1:
        publish_on_commit(
            "experiments", "experiment.phase",
            {"experiment": experiment.pk, "name": experiment.name, "phase": number,
             "reason": phase.reason},
        )  # fmt: skip
    config_version_bump()
    return phase


def experiment_stop(*, experiment: Experiment, by: User | None = None) -> Experiment:
    """Stop a running experiment: requests get the default config again. A winner is picked
    only for a difference significant at the configured level (``experiment_decision``); the
    conclusion says what was found either way. A running canary ends rolled back."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != ExperimentStatus.RUNNING:
            raise ValidationError(
                f"Only a running experiment stops; this one is {experiment.status}."
            )
        decision = experiment_stats(experiment=experiment)["decision"]
        now = timezone.now()
        experiment.winner = (
            experiment.variants.filter(name=decision["winner"]).first()
            if decision["winner"]
            else None
        )
        experiment.conclusion = decision["message"]
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = now
        experiment.save()
        ExperimentPhase.objects.filter(experiment=experiment, ended_at__isnull=True).update(
            ended_at=now
        )
        for rollout in CanaryRollout.objects.filter(
            experiment=experiment, status=CanaryStatus.RUNNING
        ):
            _canary_end(rollout, experiment.phase, "The experiment stopped.", {})
        config_version_bump()
        publish_on_commit(
            "experiments", "experiment.stopped",
            {"experiment": experiment.pk, "name": experiment.name,
             "winner": experiment.winner.name if experiment.winner else "",
             "conclusion": experiment.conclusion},
        )  # fmt: skip
    return experiment


# --- assignments, conversions and feedback ---------------------------------------------------


def assignment_record(*, experiment_id: int, phase: int, variant_id: int, user_id: str) -> None:
    """Record a user's variant in a phase; a second record of the same is a no-op."""
    Assignment.objects.bulk_create(
        [Assignment(experiment_id=experiment_id, phase=phase, variant_id=variant_id,
                    user_id=user_id)],
        ignore_conflicts=True,
    )  # fmt: skip


@dataclass(frozen=True)
class VariantAnswer:
    """The variant a user gets, or why none (``variant`` None: the default config)."""

    experiment: Experiment
    variant: Variant | None
    phase: int
    reason: str = ""

    @property
    def assigned(self) -> bool:
        return self.variant is not None


def _user_id(user_id: Any) -> str:
    text = str(user_id).strip() if isinstance(user_id, str | int) else ""
    if isinstance(user_id, bool) or not text or len(text) > 255:
        raise ValidationError({"user_id": "A user id of 1-255 characters."})
    return text


def experiment_variant_for_user(*, experiment: Experiment, user_id: Any) -> VariantAnswer:
    """The variant ``user_id`` gets now, recorded as its assignment: the same answer the
    request hook applies to the user's calls."""
    user = _user_id(user_id)
    if not experiment_settings_get().enabled:
        return VariantAnswer(experiment, None, experiment.phase, FeatureDisabledError.message)
    if experiment.status != ExperimentStatus.RUNNING:
        return VariantAnswer(
            experiment, None, experiment.phase, f"The experiment is {experiment.status}."
        )
    phase = experiment_phase(experiment=experiment)
    variants = list(experiment.variants.order_by("position", "id"))
    if phase is None:
        return VariantAnswer(experiment, None, experiment.phase, "The experiment has no phase.")
    picked = running_experiment_of(experiment, phase, variants).variant_for(user)
    if picked is None:
        return VariantAnswer(
            experiment, None, phase.number,
            f"Outside the experiment's {experiment.user_percentage.normalize():f}% of users: "
            "the default config.",
        )  # fmt: skip
    assignment_record(
        experiment_id=experiment.pk, phase=phase.number, variant_id=picked.id, user_id=user
    )
    variant = next(v for v in variants if v.pk == picked.id)
    return VariantAnswer(experiment, variant, phase.number)


def _assignment(experiment: Experiment, user_id: Any) -> Assignment:
    user = _user_id(user_id)
    if experiment.status != ExperimentStatus.RUNNING:
        raise ValidationError(f"Outcomes are tracked while it runs; it is {experiment.status}.")
    assignment = (
        Assignment.objects.filter(experiment=experiment, phase=experiment.phase, user_id=user)
        .select_related("variant")
        .first()
    )
    if assignment is None:
        raise ValidationError(
            {"user_id": f"User {user!r} has no variant in the current phase ({experiment.phase}):"
             " it joins with a request naming the experiment, or a variant lookup."}
        )  # fmt: skip
    return assignment


def _finite(value: Any, field: str, required: bool) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({field: "A finite number."})
    return float(value)


def conversion_track(*, experiment: Experiment, user_id: Any, value: Any = None) -> TrackedEvent:
    """A conversion of an assigned user (``value``: what it was worth, if anything)."""
    amount = _finite(value, "value", required=False)
    assignment = _assignment(experiment, user_id)
    return TrackedEvent.objects.create(
        experiment=experiment, phase=assignment.phase, variant=assignment.variant,
        user_id=assignment.user_id, kind=TrackedEventKind.CONVERSION, value=amount,
    )  # fmt: skip


def feedback_track(*, experiment: Experiment, user_id: Any, score: Any) -> TrackedEvent:
    """A numeric feedback score of an assigned user (a rating, a thumbs up as 1)."""
    number = _finite(score, "score", required=True)
    assignment = _assignment(experiment, user_id)
    return TrackedEvent.objects.create(
        experiment=experiment, phase=assignment.phase, variant=assignment.variant,
        user_id=assignment.user_id, kind=TrackedEventKind.FEEDBACK, value=number,
    )  # fmt: skip


# --- canary rollouts --------------------------------------------------------------------------


def canary_steps_validate(steps: Any, field: str = "steps") -> list[int]:
    """Traffic steps in percent: a list of rising whole numbers from 1, ending at 100."""
    if (
        not isinstance(steps, list)
        or not 2 <= len(steps) <= MAX_CANARY_STEPS
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
    ):
        raise ValidationError(
            {field: f"A list of 2-{MAX_CANARY_STEPS} whole percentages, e.g. [5, 25, 50, 100]."}
        )
    if (
        steps[0] < 1
        or steps[-1] != 100
        or any(a >= b for a, b in zip(steps, steps[1:], strict=False))
    ):
        raise ValidationError({field: "Rising percentages from 1, the last one 100."})
    return list(steps)


def _control(experiment: Experiment) -> Variant:
    return experiment.variants.get(kind=VariantKind.CONTROL)


def _split(experiment: Experiment, shares: dict[int, Decimal]) -> None:
    """Set every variant's share (those not named: 0)."""
    for variant in experiment.variants.all():
        share = shares.get(variant.pk, Decimal(0))
        if variant.traffic_percentage != share:
            variant.traffic_percentage = share
            variant.save(update_fields=["traffic_percentage"])


def canary_create(
    *,
    experiment: Experiment,
    treatment: Variant | str,
    by: User | None = None,
    steps: Any = None,
    step_interval_seconds: int | None = None,
    error_rate_margin: float | None = None,
    latency_margin: float | None = None,
    min_requests: int | None = None,
) -> CanaryRollout:
    """Roll ``treatment`` out through ``steps``: it gets the first step's share at once (the
    control the rest, other treatments nothing; a draft experiment starts), the next step on
    each ``canaries_advance`` after ``step_interval_seconds`` while it stays healthy. Left out,
    the settings' defaults apply."""
    _require_enabled()
    defaults = experiment_settings_get()
    steps = canary_steps_validate(defaults.canary_steps if steps is None else steps)
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status == ExperimentStatus.STOPPED:
            raise ValidationError("The experiment has stopped.")
        running = CanaryRollout.objects.filter(experiment=experiment, status=CanaryStatus.RUNNING)
        if running.exists():
            raise ValidationError(
                f"The experiment already has a running canary (#{running[0].pk})."
            )
        variant = _treatment(experiment, treatment)
        rollout = CanaryRollout(
            experiment=experiment, treatment=variant, steps=steps,
            step_interval_seconds=_default(step_interval_seconds,
                                           defaults.canary_step_interval_seconds),
            error_rate_margin=_default(error_rate_margin, defaults.error_rate_margin),
            latency_margin=_default(latency_margin, defaults.latency_margin),
            min_requests=_default(min_requests, defaults.canary_min_requests),
            step_started_at=timezone.now(), created_by=by,
        )  # fmt: skip
        rollout.full_clean(exclude=["created_by"])
        rollout.save()
        first = Decimal(steps[0])
        _split(experiment, {_control(experiment).pk: HUNDRED - first, variant.pk: first})
        if experiment.status == ExperimentStatus.DRAFT:
            phase = _start(experiment)
        else:
            phase = _phase_start(
                experiment, reason=f"Canary #{rollout.pk}: {variant.name} at {steps[0]}%."
            )
        _canary_log(
            rollout, CanaryEventKind.STARTED, steps[0], phase.number,
            f"{variant.name} starts at {steps[0]}% of the traffic.", {},
        )  # fmt: skip
    return rollout


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _treatment(experiment: Experiment, treatment: Variant | str) -> Variant:
    name = treatment.name if isinstance(treatment, Variant) else treatment
    variant = experiment.variants.filter(name=name).first()
    if variant is None or (isinstance(treatment, Variant) and variant.pk != treatment.pk):
        raise ValidationError({"treatment": f"No variant {name!r} in this experiment."})
    if variant.kind != VariantKind.TREATMENT:
        raise ValidationError({"treatment": f"{name!r} is the control, not a treatment."})
    return variant


def _figures_json(control: CallFigures, treatment: CallFigures) -> dict[str, Any]:
    def plain(figures: CallFigures) -> dict[str, Any]:
        values = figures.as_dict()
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}

    return {"control": plain(control), "treatment": plain(treatment)}


def canary_problems(
    rollout: CanaryRollout, control: CallFigures, treatment: CallFigures, latency_floor_ms: float
) -> list[str]:
    """What makes the treatment unhealthy against the control, if anything: an error rate
    above the control's plus ``error_rate_margin``, a p95 latency above the control's times
    ``1 + latency_margin`` and above the control's plus the settings' latency floor."""
    problems = []
    treatment_errors, control_errors = treatment.error_rate or 0.0, control.error_rate or 0.0
    if treatment_errors > control_errors + rollout.error_rate_margin:
        problems.append(
            f"error rate {treatment_errors:.1%} against the control's {control_errors:.1%} "
            f"(margin {rollout.error_rate_margin:.1%})"
        )
    mine, theirs = treatment.latency_p95_ms, control.latency_p95_ms
    limit = (
        None
        if theirs is None
        else statistics.latency_limit(theirs, rollout.latency_margin, latency_floor_ms)
    )
    if mine is not None and limit is not None and mine > limit:
        problems.append(
            f"p95 latency {mine:.0f} ms against the control's {theirs:.0f} ms "
            f"(margin {rollout.latency_margin:.0%}, floor {latency_floor_ms:g} ms)"
        )
    return problems


def canary_advance(*, rollout: CanaryRollout, now: datetime | None = None) -> str | None:
    """Judge a running canary's current step: rolled back when it has ``min_requests`` calls
    and is unhealthy; on to the next step when it is healthy and the step has lasted
    ``step_interval_seconds`` (completed at 100%). Returns what happened, None for nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=rollout.experiment_id)
        rollout = (
            CanaryRollout.objects.select_for_update().select_related("treatment").get(pk=rollout.pk)
        )
        if rollout.status != CanaryStatus.RUNNING or experiment.status != ExperimentStatus.RUNNING:
            return None
        phase = experiment_phase(experiment=experiment)
        if phase is None:
            return None
        control = _control(experiment)
        figures = call_figures(
            variant_ids=[control.pk, rollout.treatment_id], since=phase.started_at
        )
        control_figures = figures.get(control.pk, CallFigures())
        treatment_figures = figures.get(rollout.treatment_id, CallFigures())
        if treatment_figures.requests < rollout.min_requests:
            return None
        snapshot = _figures_json(control_figures, treatment_figures)
        problems = canary_problems(
            rollout, control_figures, treatment_figures,
            experiment_settings_get().latency_floor_ms,
        )  # fmt: skip
        if problems:
            _canary_roll_back(rollout, experiment, control, "; ".join(problems), snapshot)
            return CanaryStatus.ROLLED_BACK
        if (now - rollout.step_started_at).total_seconds() < rollout.step_interval_seconds:
            return None
        rollout.current_step += 1
        rollout.step_started_at = now
        share = rollout.steps[rollout.current_step]
        _split(experiment, {control.pk: HUNDRED - share, rollout.treatment_id: Decimal(share)})
        name = rollout.treatment.name
        phase = _phase_start(
            experiment, reason=f"Canary #{rollout.pk}: {name} at {share}%.", keep_seed=True
        )
        if rollout.current_step == len(rollout.steps) - 1:
            rollout.status = CanaryStatus.COMPLETED
            rollout.finished_at = now
            rollout.reason = f"{name} reached {share}% healthy."
            kind, message = CanaryEventKind.COMPLETED, rollout.reason
        else:
            kind, message = CanaryEventKind.ADVANCED, f"{name} healthy: on to {share}%."
        rollout.save()
        _canary_log(rollout, kind, share, phase.number, message, snapshot)
        return kind


def canary_rollback(
    *, rollout: CanaryRollout, reason: str = "", by: User | None = None
) -> CanaryRollout:
    """Roll a running canary back by hand: its treatment gets no traffic from a new phase."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=rollout.experiment_id)
        rollout = (
            CanaryRollout.objects.select_for_update().select_related("treatment").get(pk=rollout.pk)
        )
        if rollout.status != CanaryStatus.RUNNING:
            raise ValidationError(f"The canary is {rollout.get_status_display().lower()}.")
        message = reason or f"Rolled back by {by or 'an operator'}."
        _canary_roll_back(rollout, experiment, _control(experiment), message, {})
    return rollout


def _canary_roll_back(
    rollout: CanaryRollout,
    experiment: Experiment,
    control: Variant,
    message: str,
    figures: dict[str, Any],
) -> None:
    _split(experiment, {control.pk: HUNDRED})
    phase = _phase_start(
        experiment, reason=f"Canary #{rollout.pk} rolled back: {message}", keep_seed=True
    )
    _canary_end(rollout, phase.number, message, figures)


def _canary_end(rollout: CanaryRollout, phase: int, message: str, figures: dict[str, Any]) -> None:
    rollout.status = CanaryStatus.ROLLED_BACK
    rollout.finished_at = timezone.now()
    rollout.reason = message[:500]
    rollout.save()
    _canary_log(rollout, CanaryEventKind.ROLLED_BACK, 0, phase, message, figures)


def _canary_log(
    rollout: CanaryRollout,
    kind: str,
    percentage: int,
    phase: int,
    message: str,
    figures: dict[str, Any],
) -> None:
    """A row of the canary's log and its event on ``experiments``."""
    CanaryEvent.objects.create(
        rollout=rollout, kind=kind, percentage=percentage, phase=phase, message=message[:500],
        figures=figures,
    )  # fmt: skip
    data = {"canary": rollout.pk, "experiment": rollout.experiment_id, "percentage": percentage,
            "phase": phase, "message": message[:500]}  # fmt: skip
    if kind == CanaryEventKind.ROLLED_BACK:
        publish_on_commit("experiments", "canary.rolled_back", data)
    else:
        publish_on_commit("experiments", "canary.step", {**data, "kind": str(kind)})
    logger.info("canary #%s %s at %s%%: %s", rollout.pk, kind, percentage, message)


def canaries_advance() -> int:
    """Judge every running canary (the beat task); how many moved. One that fails to be judged
    is logged and left for the next run."""
    moved = 0
    for rollout in CanaryRollout.objects.filter(status=CanaryStatus.RUNNING).order_by("pk"):
        try:
            if canary_advance(rollout=rollout):
                moved += 1
        except Exception:
            logger.exception("could not judge canary #%s", rollout.pk)
    return moved
