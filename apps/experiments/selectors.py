"""Reads of experiments: lists, the running ones as the request hook applies them, and each
experiment's figures and statistics per variant (from the LLM call records, the assignments and
the tracked events of a phase)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, F, Prefetch, Q, QuerySet, StdDev, Sum
from django.shortcuts import get_object_or_404

from apps.analytics.selectors import variant_figures

from . import statistics
from .assignment import RunningExperiment, VariantConfig, basis_points
from .models import (
    Assignment,
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


def experiment_settings_get() -> ExperimentSettings:
    """The settings row, or (before anyone saved it) an unsaved one with the defaults."""
    return ExperimentSettings.objects.first() or ExperimentSettings()


def experiments_enabled() -> bool:
    """Whether A/B testing is switched on (the ``ab_testing`` feature)."""
    return experiment_settings_get().enabled


def experiment_list() -> QuerySet[Experiment]:
    variants = Variant.objects.order_by("position", "id")
    return Experiment.objects.select_related("winner", "created_by").prefetch_related(
        Prefetch("variants", queryset=variants)
    )


def experiment_get(*, pk: int) -> Experiment:
    return get_object_or_404(experiment_list(), pk=pk)


def experiment_phases(*, experiment: Experiment) -> QuerySet[ExperimentPhase]:
    return ExperimentPhase.objects.filter(experiment=experiment).order_by("number")


def experiment_phase(
    *, experiment: Experiment, number: int | None = None
) -> ExperimentPhase | None:
    """The phase ``number`` (the current one by default); None before the start."""
    wanted = experiment.phase if number is None else number
    return experiment_phases(experiment=experiment).filter(number=wanted).first()


def variant_config_of(variant: Variant) -> VariantConfig:
    return VariantConfig(
        id=variant.pk,
        name=variant.name,
        kind=variant.kind,
        basis_points=basis_points(variant.traffic_percentage),
        provider=variant.provider,
        model=variant.model,
        temperature=variant.temperature,
        max_tokens=variant.max_tokens,
        system_prompt=variant.system_prompt,
    )


def running_experiment_of(
    experiment: Experiment, phase: ExperimentPhase, variants: list[Variant]
) -> RunningExperiment:
    return RunningExperiment(
        id=experiment.pk,
        name=experiment.name,
        phase=phase.number,
        seed=phase.seed,
        user_basis_points=basis_points(phase.user_percentage),
        variants=tuple(variant_config_of(v) for v in variants),
    )


def running_experiments() -> list[RunningExperiment]:
    """Every running experiment's current phase, in two queries (the request hook's snapshot)."""
    phases = ExperimentPhase.objects.filter(
        experiment__status=ExperimentStatus.RUNNING, number=F("experiment__phase")
    ).select_related("experiment")
    by_experiment = {phase.experiment_id: phase for phase in phases}
    variants: dict[int, list[Variant]] = {}
    for variant in Variant.objects.filter(experiment_id__in=by_experiment).order_by(
        "position", "id"
    ):
        variants.setdefault(variant.experiment_id, []).append(variant)
    return [
        running_experiment_of(phase.experiment, phase, variants.get(pk, []))
        for pk, phase in by_experiment.items()
    ]


# --- figures of a phase ---------------------------------------------------------------------


@dataclass(frozen=True)
class CallFigures:
    """A variant's LLM calls in a phase (streams still running left out)."""

    requests: int = 0
    successes: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_p50_ms: float | None = None  # of the successful calls
    latency_p95_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return statistics.rate(self.successes, self.requests)

    @property
    def error_rate(self) -> float | None:
        return statistics.rate(self.errors, self.requests)

    @property
    def cost_per_success(self) -> Decimal | None:
        return self.cost / self.successes if self.successes else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "errors": self.errors,
            "success_rate": self.success_rate,
            "error_rate": self.error_rate,
            "latency_p50_ms": _rounded(self.latency_p50_ms),
            "latency_p95_ms": _rounded(self.latency_p95_ms),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
            "cost_per_success": self.cost_per_success,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def call_figures(
    *, variant_ids: list[int], since: datetime, until: datetime | None = None
) -> dict[int, CallFigures]:
    """Each variant's calls between ``since`` and ``until``, from the analytics app's variant
    rollups and the raw records of the hours they do not hold, in a few queries whatever the
    number of calls. The latency percentiles are read from merged histograms: within 4.88% of
    the nearest-rank percentile of the successful calls."""
    found = variant_figures(variant_ids=variant_ids, since=since, until=until)
    return {variant_id: CallFigures(**figures) for variant_id, figures in found.items()}


@dataclass(frozen=True)
class OutcomeFigures:
    """A variant's users and what they reported in a phase."""

    users: int = 0
    converted_users: int = 0
    conversions: int = 0
    conversion_value: float = 0.0
    feedback_count: int = 0
    feedback_mean: float | None = None
    feedback_stddev: float | None = None


def outcome_figures(*, experiment: Experiment, phase: int) -> dict[int, OutcomeFigures]:
    """Users, conversions and feedback per variant of a phase, in two queries.

    The feedback scores' sample standard deviation is taken only over variants with two scores
    or more: over one, PostgreSQL's ``stddev_samp`` is NULL but SQLite's (Python's
    ``statistics.stdev``, registered by Django) raises, failing the whole query."""
    users = dict(
        Assignment.objects.filter(experiment=experiment, phase=phase)
        .order_by()
        .values_list("variant_id")
        .annotate(Count("id"))
    )
    events = TrackedEvent.objects.filter(experiment=experiment, phase=phase).order_by()
    conversion = Q(kind=TrackedEventKind.CONVERSION)
    feedback = Q(kind=TrackedEventKind.FEEDBACK)
    spread = events.filter(feedback).values("variant_id").annotate(n=Count("id")).filter(n__gte=2)
    rows = {
        row["variant_id"]: row
        for row in events.values("variant_id").annotate(
            converted_users=Count("user_id", filter=conversion, distinct=True),
            conversions=Count("id", filter=conversion),
            conversion_value=Sum("value", filter=conversion),
            feedback_count=Count("id", filter=feedback),
            feedback_mean=Avg("value", filter=feedback),
            feedback_stddev=StdDev(
                "value",
                filter=feedback & Q(variant_id__in=spread.values("variant_id")),
                sample=True,
            ),
        )
    }
    figures = {}
    for variant_id in set(users) | set(rows):
        row: Any = rows.get(variant_id, {})
        figures[variant_id] = OutcomeFigures(
            users=users.get(variant_id, 0),
            converted_users=row.get("converted_users", 0),
            conversions=row.get("conversions", 0),
            conversion_value=row.get("conversion_value") or 0.0,
            feedback_count=row.get("feedback_count", 0),
            feedback_mean=row.get("feedback_mean"),
            feedback_stddev=row.get("feedback_stddev"),
        )
    return figures


# --- statistics ------------------------------------------------------------------------------


def _planned(phase: ExperimentPhase | None, variants: list[Variant]) -> dict[int, float]:
    """Each variant's planned share in the phase (as the phase recorded it)."""
    if phase is None:
        return {v.pk: float(v.traffic_percentage) for v in variants}
    shares = {entry["variant"]: float(entry["traffic_percentage"]) for entry in phase.allocation}
    return {v.pk: shares.get(v.pk, 0.0) for v in variants}


def _guardrails(
    control: CallFigures, treatment: CallFigures, settings_row: ExperimentSettings
) -> dict[str, Any]:
    """Error rate (absolute margin), p95 latency (relative margin, at least the latency floor)
    and cost per successful answer (relative margin) against the control's: each breached when
    the treatment is worse by more, judged only once both arms have ``guardrail_min_calls``
    calls (successful ones for latency and cost): a few calls say nothing about either."""
    minimum = settings_row.guardrail_min_calls

    def check(mine: Any, theirs: Any, limit: Any, sample: int) -> dict[str, Any]:
        judged = sample >= minimum and None not in (mine, limit)
        return {
            "treatment": mine,
            "control": theirs,
            "limit": limit,
            "sample": sample,
            "judged": judged,
            "breached": judged and mine > limit,
        }

    error_limit = (
        None if control.error_rate is None else control.error_rate + settings_row.error_rate_margin
    )
    latency_limit = (
        None
        if control.latency_p95_ms is None
        else statistics.latency_limit(
            control.latency_p95_ms, settings_row.latency_margin, settings_row.latency_floor_ms
        )
    )
    cost_limit = (
        None
        if control.cost_per_success is None
        else control.cost_per_success * Decimal(str(1 + settings_row.cost_margin))
    )
    requests = min(control.requests, treatment.requests)
    successes = min(control.successes, treatment.successes)
    return {
        "error_rate": check(treatment.error_rate, control.error_rate, error_limit, requests),
        "latency_p95_ms": check(
            _rounded(treatment.latency_p95_ms),
            _rounded(control.latency_p95_ms),
            _rounded(latency_limit),
            successes,
        ),
        "cost_per_success": check(
            treatment.cost_per_success, control.cost_per_success, cost_limit, successes
        ),
    }


def experiment_stats(*, experiment: Experiment, phase_number: int | None = None) -> dict[str, Any]:
    """An experiment's figures per variant in a phase (the current one by default), its
    statistics against the control, the sample-ratio check, what stopping would decide, and
    every phase there is (another one's figures: ``phase_number``).

    Treatments are each compared with the control at the significance level divided by the
    number of treatments (Bonferroni), so that several treatments do not multiply the chance of
    a false winner."""
    settings_row = experiment_settings_get()
    phases = list(experiment_phases(experiment=experiment))
    wanted = experiment.phase if phase_number is None else phase_number
    phase = next((p for p in phases if p.number == wanted), None)
    variants = list(experiment.variants.order_by("position", "id"))
    planned = _planned(phase, variants)
    calls: dict[int, CallFigures] = {}
    outcomes: dict[int, OutcomeFigures] = {}
    if phase is not None:
        calls = call_figures(
            variant_ids=[v.pk for v in variants], since=phase.started_at, until=phase.ended_at
        )
        outcomes = outcome_figures(experiment=experiment, phase=phase.number)
    control = next((v for v in variants if v.kind == VariantKind.CONTROL), None)
    treatments = [v for v in variants if v.kind == VariantKind.TREATMENT and planned[v.pk] > 0]
    alpha = settings_row.significance_level
    comparison_alpha = alpha / max(1, len(treatments))
    confidence = 1 - alpha
    users_total = sum(o.users for o in outcomes.values())
    rows = []
    for variant in variants:
        call = calls.get(variant.pk, CallFigures())
        outcome = outcomes.get(variant.pk, OutcomeFigures())
        interval = statistics.wilson_interval(outcome.converted_users, outcome.users, confidence)
        row: dict[str, Any] = {
            "id": variant.pk,
            "name": variant.name,
            "type": variant.kind,
            "traffic_percentage": planned[variant.pk],
            "config": variant.config,
            "users": outcome.users,
            "user_share": outcome.users / users_total if users_total else None,
            "converted_users": outcome.converted_users,
            "conversions": outcome.conversions,
            "conversion_value": outcome.conversion_value,
            "conversion_rate": statistics.rate(outcome.converted_users, outcome.users),
            "conversion_rate_interval": list(interval) if interval else None,
            "feedback_count": outcome.feedback_count,
            "feedback_mean": outcome.feedback_mean,
            "feedback_stddev": outcome.feedback_stddev,
            "calls": call.as_dict(),
            "versus_control": None,
        }
        if control is not None and variant in treatments:
            row["versus_control"] = _versus_control(
                outcome,
                outcomes.get(control.pk, OutcomeFigures()),
                call,
                calls.get(control.pk, CallFigures()),
                settings_row,
                comparison_alpha,
                confidence,
            )
        rows.append(row)
    srm = statistics.srm_check(
        [outcomes.get(v.pk, OutcomeFigures()).users for v in variants],
        [planned[v.pk] for v in variants],
    )
    stats: dict[str, Any] = {
        "experiment_id": experiment.pk,
        "name": experiment.name,
        "status": experiment.status,
        "metric": experiment.metric,
        "phase": phase.number if phase else 0,
        "phase_started_at": phase.started_at if phase else None,
        "phase_ended_at": phase.ended_at if phase else None,
        "phases": phases,
        "significance_level": alpha,
        "comparison_significance_level": comparison_alpha,
        "guardrail_min_calls": settings_row.guardrail_min_calls,
        "users": users_total,
        "srm": None
        if srm is None
        else {
            "chi2": srm.chi2 if math.isfinite(srm.chi2) else None,
            "p_value": srm.p_value,
            "threshold": statistics.SRM_ALPHA,
            "mismatch": srm.mismatch,
        },
        "healthy": not (srm and srm.mismatch),
        "variants": rows,
        "winner": experiment.winner.name if experiment.winner else None,
        "conclusion": experiment.conclusion,
    }
    stats["decision"] = experiment_decision(stats)
    return stats


def _versus_control(
    outcome: OutcomeFigures,
    control_outcome: OutcomeFigures,
    call: CallFigures,
    control_call: CallFigures,
    settings_row: ExperimentSettings,
    alpha: float,
    confidence: float,
) -> dict[str, Any]:
    test = statistics.two_proportion_test(
        outcome.converted_users,
        outcome.users,
        control_outcome.converted_users,
        control_outcome.users,
        confidence,
    )
    guardrails = _guardrails(control_call, call, settings_row)
    return {
        "difference": test.difference if test else None,
        "difference_interval": [test.difference_low, test.difference_high] if test else None,
        "relative_lift": test.relative_lift if test else None,
        "p_value": test.p_value if test else None,
        "significant": bool(test and test.p_value < alpha),
        "chance_to_beat_control": statistics.chance_to_beat(
            outcome.converted_users,
            outcome.users,
            control_outcome.converted_users,
            control_outcome.users,
        ),
        "feedback_p_value": statistics.welch_p_value(
            outcome.feedback_mean or 0.0,
            outcome.feedback_stddev or 0.0,
            outcome.feedback_count,
            control_outcome.feedback_mean or 0.0,
            control_outcome.feedback_stddev or 0.0,
            control_outcome.feedback_count,
        ),
        "guardrails": guardrails,
        "guardrails_breached": [name for name, check in guardrails.items() if check["breached"]],
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def experiment_decision(stats: dict[str, Any]) -> dict[str, Any]:
    """What stopping now decides: a winner only for a difference significant at the level
    (a treatment better than the control without breaching a guardrail, or the control when
    every treatment is worse), none when the split is skewed or nothing is significant."""
    alpha = stats["comparison_significance_level"]
    variants = stats["variants"]
    control = next((v for v in variants if v["type"] == VariantKind.CONTROL), None)
    compared = [v for v in variants if v["versus_control"] is not None]
    if control is None or not compared or not stats["users"]:
        return {"winner": None, "significant": False, "message": "No data to decide on yet."}
    if stats["srm"] and stats["srm"]["mismatch"]:
        message = (
            f"The assignment is skewed (sample ratio mismatch, p = {stats['srm']['p_value']:.2g}"
            f" < {statistics.SRM_ALPHA}): the results cannot be trusted, no winner."
        )
        return {"winner": None, "significant": False, "message": message}
    better = [
        v for v in compared if _significant(v, alpha) and v["versus_control"]["difference"] > 0
    ]
    worse = [
        v for v in compared if _significant(v, alpha) and v["versus_control"]["difference"] < 0
    ]
    safe = [v for v in better if not v["versus_control"]["guardrails_breached"]]
    if safe:
        best = max(safe, key=lambda v: v["conversion_rate"])
        test = best["versus_control"]
        message = (
            f"{best['name']} converts at {_percent(best['conversion_rate'])} against "
            f"{_percent(control['conversion_rate'])} for {control['name']} "
            f"(p = {test['p_value']:.3g} < {alpha:.3g}): {best['name']} wins."
        )
        return {"winner": best["name"], "significant": True, "message": message}
    if better:
        names = ", ".join(
            f"{v['name']} ({', '.join(v['versus_control']['guardrails_breached'])})" for v in better
        )
        message = f"Significantly better but breaching guardrails: {names}; no winner."
        return {"winner": None, "significant": True, "message": message}
    if len(worse) == len(compared):
        message = (
            f"Every treatment converts significantly worse than {control['name']} "
            f"(p < {alpha:.3g}): {control['name']} wins."
        )
        return {"winner": control["name"], "significant": True, "message": message}
    p_values = [v["versus_control"]["p_value"] for v in compared]
    lowest = min((p for p in p_values if p is not None), default=None)
    shown = "" if lowest is None else f" (lowest p = {lowest:.3g})"
    message = (
        f"No significant difference at the {alpha:.3g} level{shown}: no winner; keep it "
        "running for more data, or stop it with the control's config."
    )
    return {"winner": None, "significant": False, "message": message}


def _significant(variant: dict[str, Any], alpha: float) -> bool:
    p_value = variant["versus_control"]["p_value"]
    return p_value is not None and p_value < alpha


def experiments_summary() -> dict[str, Any]:
    """Counts over every experiment, and each running one's users, conversions and health."""
    counts = dict(Experiment.objects.order_by().values_list("status").annotate(Count("id")))
    running = []
    for experiment in experiment_list().filter(status=ExperimentStatus.RUNNING):
        stats = experiment_stats(experiment=experiment)
        running.append(
            {
                "id": experiment.pk,
                "name": experiment.name,
                "phase": stats["phase"],
                "users": stats["users"],
                "conversions": sum(v["converted_users"] for v in stats["variants"]),
                "requests": sum(v["calls"]["requests"] for v in stats["variants"]),
                "healthy": stats["healthy"],
                "decision": stats["decision"]["message"],
            }
        )
    return {
        "total_experiments": sum(counts.values()),
        "draft_experiments": counts.get(ExperimentStatus.DRAFT, 0),
        "running_experiments": counts.get(ExperimentStatus.RUNNING, 0),
        "stopped_experiments": counts.get(ExperimentStatus.STOPPED, 0),
        "with_winner": Experiment.objects.filter(winner__isnull=False).count(),
        "total_assignments": Assignment.objects.count(),
        "total_conversions": TrackedEvent.objects.filter(kind=TrackedEventKind.CONVERSION).count(),
        "running_canaries": CanaryRollout.objects.filter(status=CanaryStatus.RUNNING).count(),
        "running": running,
    }


def experiments_health() -> dict[str, Any]:
    """The feature's state (``status``, ``enabled``, the unhealthy experiments): ``unhealthy``
    while a running experiment's assignment is skewed (sample ratio mismatch), ``disabled``
    when switched off."""
    enabled = experiments_enabled()
    unhealthy = []
    running = experiment_list().filter(status=ExperimentStatus.RUNNING)
    for experiment in running:
        stats = experiment_stats(experiment=experiment)
        if not stats["healthy"]:
            unhealthy.append(
                {
                    "id": experiment.pk,
                    "name": experiment.name,
                    "reason": stats["decision"]["message"],
                }
            )
    status = "disabled" if not enabled else ("unhealthy" if unhealthy else "healthy")
    return {
        "status": status,
        "service": "experiments",
        "storage": connection.vendor,
        "enabled": enabled,
        "total_experiments": Experiment.objects.count(),
        "running_experiments": len(running),
        "running_canaries": CanaryRollout.objects.filter(status=CanaryStatus.RUNNING).count(),
        "unhealthy_experiments": unhealthy,
    }


# --- canaries ------------------------------------------------------------------------------


def canary_list() -> QuerySet[CanaryRollout]:
    return CanaryRollout.objects.select_related("experiment", "treatment", "created_by")


def canary_get(*, pk: int) -> CanaryRollout:
    return get_object_or_404(canary_list().prefetch_related("log"), pk=pk)
