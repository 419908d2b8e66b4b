"""Canary rollouts: a treatment's share of the traffic raised step by step while its calls stay
as healthy as the control's (judged by ``canaries_advance``, the beat task), rolled back
otherwise.

Each step starts a new phase with the same seed, so users only ever move from the control to
the treatment. Locks are taken experiment first, then its canary."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.events import publish_on_commit

from .. import statistics
from ..models import (
    CanaryEvent,
    CanaryEventKind,
    CanaryRollout,
    CanaryStatus,
    Experiment,
    ExperimentStatus,
    Variant,
    VariantKind,
)
from ..selectors import CallFigures, call_figures, experiment_phase, experiment_settings_get
from .common import HUNDRED, require_enabled
from .phases import experiment_begin, phase_start

logger = logging.getLogger(__name__)

MAX_CANARY_STEPS = 20


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
    require_enabled()
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
            experiment=experiment,
            treatment=variant,
            steps=steps,
            step_interval_seconds=_default(
                step_interval_seconds, defaults.canary_step_interval_seconds
            ),
            error_rate_margin=_default(error_rate_margin, defaults.error_rate_margin),
            latency_margin=_default(latency_margin, defaults.latency_margin),
            min_requests=_default(min_requests, defaults.canary_min_requests),
            step_started_at=timezone.now(),
            created_by=by,
        )
        rollout.full_clean(exclude=["created_by"])
        rollout.save()
        first = Decimal(steps[0])
        _split(experiment, {_control(experiment).pk: HUNDRED - first, variant.pk: first})
        if experiment.status == ExperimentStatus.DRAFT:
            phase = experiment_begin(experiment)
        else:
            phase = phase_start(
                experiment, reason=f"Canary #{rollout.pk}: {variant.name} at {steps[0]}%."
            )
        _canary_log(
            rollout,
            CanaryEventKind.STARTED,
            steps[0],
            phase.number,
            f"{variant.name} starts at {steps[0]}% of the traffic.",
            {},
        )
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
            rollout,
            control_figures,
            treatment_figures,
            experiment_settings_get().latency_floor_ms,
        )
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
        phase = phase_start(
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
    phase = phase_start(
        experiment, reason=f"Canary #{rollout.pk} rolled back: {message}", keep_seed=True
    )
    canary_end(rollout, phase.number, message, figures)


def canary_end(rollout: CanaryRollout, phase: int, message: str, figures: dict[str, Any]) -> None:
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
        rollout=rollout,
        kind=kind,
        percentage=percentage,
        phase=phase,
        message=message[:500],
        figures=figures,
    )
    data = {
        "canary": rollout.pk,
        "experiment": rollout.experiment_id,
        "percentage": percentage,
        "phase": phase,
        "message": message[:500],
    }
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
