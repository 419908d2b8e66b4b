"""The Experiments page: the experiments with their status, a form to create one with its
variants, and each experiment's own page (start and stop, the figures per variant, the verdict
in plain words, the split's health, the phases and the canaries).

Creating, starting and stopping are ordinary form POSTs (CSRF, Django forms) calling the
services; each checks ``accounts.operate_platform`` here whatever the page shows. An
experiment's page keeps its figures current without a front-end library: on every event of the
``experiments`` channel about it, and every few seconds while it runs (call records are stored a
moment after the answers), it fetches its figures rendered here again
(``/admin/experiment-board/<id>/figures/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.accounts.permissions import OPERATE
from apps.core.admin_support import acting_user
from apps.providers.selectors import provider_list, public_model_list

from .models import CanaryStatus, Experiment, ExperimentPhase, ExperimentStatus, VariantKind
from .selectors import experiment_get, experiment_list, experiment_phases, experiment_stats
from .services import (
    MAX_VARIANTS,
    FeatureDisabledError,
    experiment_create,
    experiment_start,
    experiment_stop,
)

MAX_TOKENS_OFFERED = 1_000_000
# A status as a pill's tone (dashboard.css colours pills by data-status).
TONES: dict[str, str] = {
    ExperimentStatus.DRAFT: "",
    ExperimentStatus.RUNNING: "info",
    ExperimentStatus.STOPPED: "disabled",
    CanaryStatus.COMPLETED: "success",
    CanaryStatus.ROLLED_BACK: "error",
}
GUARDRAILS = {"error_rate": "error-rate", "latency_p95_ms": "latency", "cost_per_success": "cost"}


# --- the form --------------------------------------------------------------------------------


class ExperimentForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Requests join by it: the body's 'experiment' field."
    )
    hypothesis = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What you expect, and why.",
    )
    metric = forms.CharField(
        max_length=100,
        initial="conversion",
        help_text="What a tracked conversion stands for (accuracy, a sign-up).",
    )
    user_percentage = forms.DecimalField(
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        initial=100,
        label="Users in the experiment (%)",
        help_text="The others get the default config.",
    )


class VariantForm(forms.Form):
    name = forms.CharField(max_length=100)
    type = forms.ChoiceField(choices=VariantKind.choices)
    traffic_percentage = forms.DecimalField(
        min_value=0, max_value=100, max_digits=5, decimal_places=2, label="Traffic (%)"
    )
    model = forms.ChoiceField(required=False)
    provider = forms.ChoiceField(required=False)
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=2, help_text="0 to 2; blank: the request's."
    )
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_TOKENS_OFFERED, help_text="Blank: the request's."
    )
    system_prompt = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Replaces the request's system message.",
    )

    def __init__(self, *args: Any, models: list[dict[str, Any]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        model_field, provider_field = self.fields["model"], self.fields["provider"]
        assert isinstance(model_field, forms.ChoiceField)
        assert isinstance(provider_field, forms.ChoiceField)
        model_field.choices = [("", "The request's")] + [
            (model["name"], model["name"]) for model in models or []
        ]
        provider_field.choices = [("", "Any provider")] + [
            (name, name) for name in provider_list().order_by("name").values_list("name", flat=True)
        ]

    def variant(self) -> dict[str, Any]:
        """The variant as ``experiment_create`` takes it: only the overrides given."""
        data = self.cleaned_data
        config = {
            name: data[name].replace("\r\n", "\n") if name == "system_prompt" else data[name]
            for name in ("model", "provider", "temperature", "max_tokens", "system_prompt")
            if data.get(name) not in (None, "")
        }
        return {
            "name": data["name"],
            "type": data["type"],
            "traffic_percentage": data["traffic_percentage"],
            "config": config,
        }


VariantFormSet = forms.formset_factory(
    VariantForm, extra=0, min_num=2, validate_min=True, max_num=MAX_VARIANTS, validate_max=True
)
FIRST_VARIANTS = [
    {"name": "control", "type": VariantKind.CONTROL, "traffic_percentage": 50},
    {"name": "treatment", "type": VariantKind.TREATMENT, "traffic_percentage": 50},
]


def variant_formset(data: Mapping[str, Any] | None = None) -> Any:
    return VariantFormSet(
        data,
        prefix="variants",
        initial=None if data is not None else FIRST_VARIANTS,
        form_kwargs={"models": public_model_list()},
    )


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [text for texts in error.message_dict.values() for text in texts]
    return list(error.messages)


# --- the page --------------------------------------------------------------------------------


def experiment_board(request: HttpRequest, pk: int | None = None, part: str | None = None):
    """``/admin/experiment-board/`` (the list, create), ``<pk>/`` (an experiment: start, stop)
    and ``<pk>/figures/`` (the part its page fetches again)."""
    if pk is None:
        return experiment_index(request)
    if part == "figures":
        experiment = experiment_get(pk=pk)
        return render(
            request, "experiments/includes/figures.html", figures_context(request, experiment)
        )
    if part is not None:
        raise Http404("No such part of an experiment's page.")
    return experiment_detail(request, pk)


def experiment_index(request: HttpRequest) -> HttpResponse:
    form, variants = ExperimentForm(), variant_formset()
    errors: list[str] = []
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Creating an experiment needs the operator role.")
        form, variants = ExperimentForm(request.POST), variant_formset(request.POST)
        if form.is_valid() and variants.is_valid():
            data = form.cleaned_data
            try:
                experiment = experiment_create(
                    name=data["name"],
                    variants=[f.variant() for f in variants.forms],
                    by=acting_user(request),
                    hypothesis=data["hypothesis"].replace("\r\n", "\n"),
                    metric=data["metric"],
                    user_percentage=data["user_percentage"],
                )
            except ValidationError as error:
                errors.extend(_messages(error))
            else:
                messages.success(request, f"Experiment {experiment.name} created: start it here.")
                return HttpResponseRedirect(
                    reverse("admin:page-experiment-board-1", args=[experiment.pk])
                )
    rows = experiment_list().annotate(variant_count=Count("variants"))
    return TemplateResponse(
        request,
        "experiments/board.html",
        {
            "form": form,
            "variants": variants,
            "create_errors": errors,
            "can_operate": request.user.has_perm(OPERATE),
            "rows": [{"experiment": e, "tone": TONES.get(e.status, "")} for e in rows],
            "max_variants": MAX_VARIANTS,
            "live_channels": "experiments",
        },
    )


def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = experiment_get(pk=pk)
    if request.method == "POST":
        return experiment_action(request, experiment)
    return TemplateResponse(
        request,
        "experiments/experiment.html",
        {
            **figures_context(request, experiment),
            "title": f"Experiment: {experiment.name}",
            "live_channels": "experiments",
        },
    )


def experiment_action(request: HttpRequest, experiment: Experiment) -> HttpResponse:
    """Start or stop; the outcome is told as a message."""
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied("Starting or stopping an experiment needs the operator role.")
    back = HttpResponseRedirect(reverse("admin:page-experiment-board-1", args=[experiment.pk]))
    action = request.POST.get("action", "")
    actions = {"start": (experiment_start, "started"), "stop": (experiment_stop, "stopped")}
    if action not in actions:
        messages.error(request, "Unknown action.")
        return back
    service, done = actions[action]
    try:
        experiment = service(experiment=experiment, by=acting_user(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    except FeatureDisabledError as error:
        messages.error(request, str(error))
    else:
        extra = f" {experiment.conclusion}" if done == "stopped" and experiment.conclusion else ""
        messages.success(request, f"Experiment {experiment.name} {done}.{extra}")
    return back


# --- the figures -----------------------------------------------------------------------------


def _share(value: float) -> str:
    if value > 0.99:
        return "over 99%"
    if value < 0.01:
        return "under 1%"
    return f"{value:.0%}"


def verdict(stats: dict[str, Any]) -> list[str]:
    """The figures in plain words, a sentence per treatment against the control: which is
    better on the metric and how likely, what it costs per successful answer, and whether the
    guardrails hold ("treatment is better on conversion with 97% chance; it costs 20% less per
    successful answer; the latency guardrail holds")."""
    variants = stats["variants"]
    control = next((v for v in variants if v["type"] == VariantKind.CONTROL), None)
    if control is None:
        return []
    sentences = []
    for row in variants:
        versus = row["versus_control"]
        if versus is None:
            continue
        if not row["users"] or not control["users"]:
            sentences.append(f"{row['name']}: no users to compare with {control['name']} yet.")
            continue
        chance = versus["chance_to_beat_control"]
        if not row["converted_users"] and not control["converted_users"]:
            parts = [f"no {stats['metric']} conversions tracked yet"]
        elif chance >= 0.5:
            parts = [f"{row['name']} is better on {stats['metric']} with {_share(chance)} chance"]
        else:
            parts = [
                f"{control['name']} is better on {stats['metric']} with {_share(1 - chance)} chance"
            ]
        mine, theirs = row["calls"]["cost_per_success"], control["calls"]["cost_per_success"]
        if mine is not None and theirs:
            change = float(Decimal(mine) / Decimal(theirs)) - 1
            if abs(change) < 0.005:
                parts.append(f"{row['name']} costs the same per successful answer")
            else:
                more = "more" if change > 0 else "less"
                parts.append(f"{row['name']} costs {abs(change):.0%} {more} per successful answer")
        checks = versus["guardrails"]
        breached = [GUARDRAILS[name] for name in versus["guardrails_breached"]]
        holding = [
            GUARDRAILS[name]
            for name, check in checks.items()
            if check["judged"] and not check["breached"]
        ]
        waiting = [GUARDRAILS[name] for name, check in checks.items() if not check["judged"]]
        if breached:
            parts.append(f"{_guardrails(breached)} breached")
        if holding:
            parts.append(f"{_guardrails(holding)} hold{'' if len(holding) > 1 else 's'}")
        if waiting:
            parts.append(
                f"{_guardrails(waiting)} wait{'' if len(waiting) > 1 else 's'} for "
                f"{stats['guardrail_min_calls']} calls a side"
            )
        sentences.append("; ".join(parts) + ".")
    return sentences


def _guardrails(names: list[str]) -> str:
    return f"{' and '.join(names)} guardrail{'s' if len(names) > 1 else ''}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _feedback(mean: float | None, count: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f} ({count} score{'' if count == 1 else 's'})"


def variant_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Each variant's figures as the table shows them."""
    rows = []
    for variant in stats["variants"]:
        calls, versus = variant["calls"], variant["versus_control"]
        interval = variant["conversion_rate_interval"]
        rate = _percent(variant["conversion_rate"])
        if interval:
            rate += f" ({interval[0] * 100:.1f}–{interval[1] * 100:.1f}%)"
        p_value = versus["p_value"] if versus else None
        rows.append(
            {
                "name": variant["name"],
                "type": variant["type"],
                "traffic": f"{variant['traffic_percentage']:g}%",
                "config": variant["config"],
                "users": variant["users"],
                "requests": calls["requests"],
                "success_rate": _percent(calls["success_rate"]),
                "latency": f"{_ms(calls['latency_p50_ms'])} / {_ms(calls['latency_p95_ms'])}",
                "tokens": calls["tokens"],
                "cost": calls["cost"],
                "cost_per_success": calls["cost_per_success"],
                "feedback": _feedback(variant["feedback_mean"], variant["feedback_count"]),
                "conversions": variant["converted_users"],
                "conversion_rate": rate,
                "chance": "control"
                if variant["type"] == VariantKind.CONTROL
                else _percent(versus["chance_to_beat_control"])
                if versus
                else "—",
                "p_value": "—" if p_value is None else f"{p_value:.3g}",
            }
        )
    return rows


def earlier_phases(
    experiment: Experiment, phases: list[ExperimentPhase], current: int
) -> list[dict[str, Any]]:
    """The figures of each phase before the current one, newest first: a new split (a canary's
    step, changed shares) counts apart, and what the earlier splits saw stays in view."""
    shown = []
    for phase in phases:
        if phase.number == current:
            continue
        stats = experiment_stats(experiment=experiment, phase_number=phase.number)
        shown.append(
            {
                "number": phase.number,
                "reason": phase.reason,
                "users": stats["users"],
                "rows": variant_rows(stats),
                "caption": f"Figures per variant in phase {phase.number}",
            }
        )
    return shown


def figures_context(request: HttpRequest, experiment: Experiment) -> dict[str, Any]:
    stats = experiment_stats(experiment=experiment)
    srm = stats["srm"]
    if srm is None:
        health = {"tone": "", "label": "no split to check yet"}
    elif srm["mismatch"]:
        health = {"tone": "error", "label": f"sample ratio mismatch (p = {srm['p_value']:.2g})"}
    else:
        health = {"tone": "success", "label": f"split healthy (p = {srm['p_value']:.2g})"}
    can_operate = request.user.has_perm(OPERATE)
    canaries = experiment.canaries.select_related("treatment").prefetch_related("log")
    phases = list(experiment_phases(experiment=experiment).order_by("-number"))
    return {
        "experiment": experiment,
        "tone": TONES.get(experiment.status, ""),
        "stats": stats,
        "rows": variant_rows(stats),
        "confidence": f"{(1 - stats['significance_level']) * 100:g}%",
        "verdict": verdict(stats),
        "health": health,
        "phases": phases,
        "earlier_phases": earlier_phases(experiment, phases, current=stats["phase"]),
        "canaries": [
            {"rollout": c, "tone": TONES.get(c.status, "info"), "log": list(c.log.all())}
            for c in canaries.order_by("-created_at", "-id")
        ],
        "can_start": can_operate and experiment.status == ExperimentStatus.DRAFT,
        "can_stop": can_operate and experiment.status == ExperimentStatus.RUNNING,
    }
