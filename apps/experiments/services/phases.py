"""Phases: a running experiment's split between two changes. Each change of what its users get
ends the current phase and begins the next (``phase_start``), whose users and figures are counted
apart."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.core.events import publish_on_commit

from ..models import Experiment, ExperimentPhase, ExperimentStatus, VariantKind
from ..selectors import experiment_phase
from .common import HUNDRED, config_version_bump


def experiment_begin(experiment: Experiment) -> ExperimentPhase:
    """Set a draft running with its phase 1 (for ``experiment_start`` and a canary on a draft);
    the caller holds the experiment's lock."""
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
    phase = phase_start(experiment, reason="Started.")
    publish_on_commit(
        "experiments",
        "experiment.started",
        {"experiment": experiment.pk, "name": experiment.name, "phase": phase.number},
    )
    return phase


def phase_start(experiment: Experiment, *, reason: str, keep_seed: bool = False) -> ExperimentPhase:
    """End the current phase and begin the next with the variants' shares as they are now."""
    now = timezone.now()
    current = experiment_phase(experiment=experiment)
    if current is not None:
        current.ended_at = now
        current.save(update_fields=["ended_at"])
    number = experiment.phase + 1
    seed = current.seed if keep_seed and current is not None else str(number)
    allocation = [
        {
            "variant": v.pk,
            "name": v.name,
            "kind": v.kind,
            "traffic_percentage": float(v.traffic_percentage),
        }
        for v in experiment.variants.order_by("position", "id")
    ]
    phase = ExperimentPhase.objects.create(
        experiment=experiment,
        number=number,
        seed=seed,
        user_percentage=experiment.user_percentage,
        allocation=allocation,
        reason=reason[:200],
        started_at=now,
    )
    experiment.phase = number
    experiment.save(update_fields=["phase", "updated_at"])
    if number > 1:
        publish_on_commit(
            "experiments",
            "experiment.phase",
            {
                "experiment": experiment.pk,
                "name": experiment.name,
                "phase": number,
                "reason": phase.reason,
            },
        )
    config_version_bump()
    return phase
