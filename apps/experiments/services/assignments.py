"""Assignments, conversions and feedback: the variant a user gets (recorded once per phase) and
the outcomes tracked for assigned users."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from ..models import (
    Assignment,
    Experiment,
    ExperimentStatus,
    TrackedEvent,
    TrackedEventKind,
    Variant,
)
from ..selectors import experiment_phase, experiment_settings_get, running_experiment_of
from .common import FeatureDisabledError


def assignment_record(*, experiment_id: int, phase: int, variant_id: int, user_id: str) -> None:
    """Record a user's variant in a phase; a second record of the same is a no-op."""
    Assignment.objects.bulk_create(
        [
            Assignment(
                experiment_id=experiment_id, phase=phase, variant_id=variant_id, user_id=user_id
            )
        ],
        ignore_conflicts=True,
    )


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
            experiment,
            None,
            phase.number,
            f"Outside the experiment's {experiment.user_percentage.normalize():f}% of users: "
            "the default config.",
        )
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
            {
                "user_id": f"User {user!r} has no variant in the current phase "
                f"({experiment.phase}): it joins with a request naming the experiment, or a "
                "variant lookup."
            }
        )
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
        experiment=experiment,
        phase=assignment.phase,
        variant=assignment.variant,
        user_id=assignment.user_id,
        kind=TrackedEventKind.CONVERSION,
        value=amount,
    )


def feedback_track(*, experiment: Experiment, user_id: Any, score: Any) -> TrackedEvent:
    """A numeric feedback score of an assigned user (a rating, a thumbs up as 1)."""
    number = _finite(score, "score", required=True)
    assignment = _assignment(experiment, user_id)
    return TrackedEvent.objects.create(
        experiment=experiment,
        phase=assignment.phase,
        variant=assignment.variant,
        user_id=assignment.user_id,
        kind=TrackedEventKind.FEEDBACK,
        value=number,
    )
