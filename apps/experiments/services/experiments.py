"""An experiment's life: created as a draft, changed, started, stopped (a running canary ends
rolled back)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.events import publish_on_commit

from ..models import CanaryRollout, CanaryStatus, Experiment, ExperimentPhase, ExperimentStatus
from ..selectors import experiment_stats
from .canaries import canary_end
from .common import HUNDRED, config_version_bump, require_enabled
from .phases import experiment_begin, phase_start
from .variants import percentage_from, variants_validate, variants_write

EXPERIMENT_FIELDS = ("name", "description", "hypothesis", "metric", "user_percentage")


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
        name=name.strip() if isinstance(name, str) else name,
        description=description,
        hypothesis=hypothesis,
        metric=metric or "conversion",
        user_percentage=percentage_from(user_percentage, "user_percentage"),
        created_by=by,
    )
    experiment.full_clean(exclude=["created_by", "winner"])
    with transaction.atomic():
        experiment.save()
        variants_write(experiment, specs)
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
                    {
                        "variants": f"A running experiment keeps its variants: list them all (0% "
                        f"retires one); missing: {', '.join(missing)}."
                    }
                )
        for name, value in fields.items():
            setattr(experiment, name, value)
        experiment.full_clean(exclude=["created_by", "winner"])
        experiment.save()
        changed = variants_write(experiment, specs) if specs is not None else False
        if running:
            if changed or new_share:
                phase_start(experiment, reason="The variants or the split changed.")
            config_version_bump()
    return experiment


def experiment_start(*, experiment: Experiment, by: User | None = None) -> Experiment:
    """Start a draft: phase 1 begins, requests naming it get their variants."""
    require_enabled()
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != ExperimentStatus.DRAFT:
            raise ValidationError(
                "The experiment is already running."
                if experiment.status == ExperimentStatus.RUNNING
                else "A stopped experiment does not start again; create a new one."
            )
        experiment_begin(experiment)
    return experiment


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
            canary_end(rollout, experiment.phase, "The experiment stopped.", {})
        config_version_bump()
        publish_on_commit(
            "experiments",
            "experiment.stopped",
            {
                "experiment": experiment.pk,
                "name": experiment.name,
                "winner": experiment.winner.name if experiment.winner else "",
                "conclusion": experiment.conclusion,
            },
        )
    return experiment
