"""Experiments, canary rollouts and their settings in the dashboard. Every write goes through
the services (what they refuse shows as a message or a form error); an experiment's change page
shows its statistics, as ``GET /api/v1/experiments/{id}/stats`` has them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
    RelatedDropdownFilter,
)
from unfold.decorators import action  # type: ignore[import-untyped]
from unfold.forms import BaseDialogForm  # type: ignore[import-untyped]
from unfold.utils import display_for_label  # type: ignore[import-untyped]
from unfold.widgets import UnfoldAdminTextareaWidget  # type: ignore[import-untyped]

from apps.core.admin_support import (
    OperatedAdmin,
    ReadOnlyInline,
    acting_user,
    confirm,
    refusal,
    to_page,
)

from .models import (
    CanaryEvent,
    CanaryRollout,
    CanaryStatus,
    Experiment,
    ExperimentPhase,
    ExperimentSettings,
    ExperimentStatus,
    Variant,
)
from .selectors import experiment_stats
from .services import (
    SETTINGS_FIELDS,
    FeatureDisabledError,
    canary_advance,
    canary_create,
    canary_rollback,
    canary_steps_validate,
    experiment_create,
    experiment_settings_update,
    experiment_start,
    experiment_stop,
    experiment_update,
    variants_validate,
)

STATUS_LABELS = {
    ExperimentStatus.DRAFT: "",
    ExperimentStatus.RUNNING: "primary",
    ExperimentStatus.STOPPED: "success",
    CanaryStatus.COMPLETED: "success",
    CanaryStatus.ROLLED_BACK: "danger",
}


def badge(status: str, text: str) -> str:
    return display_for_label((status, text), "—", STATUS_LABELS)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


class VariantInline(ReadOnlyInline):
    model = Variant
    fields = readonly_fields = ["name", "kind", "traffic_percentage", "overrides"]
    ordering = ["position", "id"]

    @admin.display(description="Config")
    def overrides(self, variant: Variant) -> str:
        return json.dumps(variant.config) if variant.config else "— (the request's own)"


class PhaseInline(ReadOnlyInline):
    model = ExperimentPhase
    fields = readonly_fields = [
        "number",
        "reason",
        "split",
        "user_percentage",
        "started_at",
        "ended_at",
    ]
    ordering = ["-number"]
    verbose_name_plural = "phases"

    @admin.display(description="Split")
    def split(self, phase: ExperimentPhase) -> str:
        return ", ".join(f"{e['name']} {e['traffic_percentage']:g}%" for e in phase.allocation)


def variants_json(experiment: Experiment) -> list[dict[str, Any]]:
    """The variants as the API and the form take them."""
    return [
        {
            "name": v.name,
            "type": v.kind,
            "traffic_percentage": float(v.traffic_percentage),
            "config": v.config,
        }
        for v in experiment.variants.order_by("position", "id")
    ]


class ExperimentForm(forms.ModelForm):
    """Saved through ``experiment_create`` / ``experiment_update``; the variants are a JSON
    list checked by ``variants_validate`` (each problem names its variant)."""

    variant_list = forms.JSONField(
        label="Variants",
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 12}),
        help_text='A JSON list: [{"name": "control", "type": "control", "traffic_percentage": '
        '50, "config": {}}, {"name": "low_temp", "type": "treatment", "traffic_percentage": 50, '
        '"config": {"temperature": 0.3, "model": "gpt-4o-mini"}}]. Config overrides: provider, '
        "model, temperature, max_tokens, system_prompt. A running experiment keeps its variants "
        "(0% retires one); a new split starts a new phase.",
    )

    class Meta:
        model = Experiment
        fields = ["name", "description", "hypothesis", "metric", "user_percentage"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["variant_list"].initial = variants_json(self.instance)
            if self.instance.status == ExperimentStatus.STOPPED:
                self.fields["variant_list"].disabled = True
                self.fields["user_percentage"].disabled = True

    def clean_variant_list(self) -> Any:
        variants = self.cleaned_data["variant_list"]
        try:
            variants_validate(variants)
        except ValidationError as error:
            problems = getattr(error, "message_dict", {}).get("variants", error.messages)
            raise ValidationError(problems) from error
        return variants


@admin.register(Experiment)
class ExperimentAdmin(OperatedAdmin):
    refused = (ValidationError, FeatureDisabledError)
    form = ExperimentForm
    list_display = [
        "name",
        "status_badge",
        "phase",
        "variant_count",
        "user_percentage",
        "winner",
        "created_at",
        "started_at",
    ]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    search_fields = ["name", "description", "hypothesis"]
    search_help_text = "Part of the name, description or hypothesis."
    readonly_fields = [
        "status_badge",
        "phase",
        "winner",
        "conclusion",
        "created_by",
        "created_at",
        "started_at",
        "stopped_at",
        "statistics",
    ]
    inlines = [VariantInline, PhaseInline]
    actions = ["start_selected", "stop_selected"]
    actions_detail = ["start_experiment", "stop_experiment"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Experiment]:
        return (
            super()
            .get_queryset(request)
            .select_related("winner")
            .annotate(variants_total=Count("variants"))
        )

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        editable = [
            "name",
            "description",
            "hypothesis",
            "metric",
            "user_percentage",
            "variant_list",
        ]
        if obj is None:
            return [(None, {"fields": editable})]
        return [
            (None, {"fields": ["status_badge", "phase", "winner", "conclusion"]}),
            ("Statistics (current phase)", {"fields": ["statistics"]}),
            ("Definition", {"fields": editable}),
            ("History", {"fields": ["created_by", "created_at", "started_at", "stopped_at"]}),
        ]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, experiment: Experiment) -> str:
        return badge(experiment.status, experiment.get_status_display())

    @admin.display(description="Variants", ordering="variants_total")
    def variant_count(self, experiment: Experiment) -> int:
        return experiment.variants_total  # type: ignore[attr-defined]

    @admin.display(description="Variants")
    def variant_list(self, experiment: Experiment) -> str:
        """The variants as JSON, for those who may only look."""
        return json.dumps(variants_json(experiment), indent=1)

    @admin.display(description="Statistics")
    def statistics(self, experiment: Experiment) -> SafeString:
        return stats_block(experiment_stats(experiment=experiment))

    def save_model(
        self, request: HttpRequest, obj: Experiment, form: forms.ModelForm, change: bool
    ) -> None:
        """Through the services (``obj`` carries the form's values)."""
        fields = {name: form.cleaned_data[name] for name in ExperimentForm.Meta.fields}
        if change:
            if obj.status != ExperimentStatus.STOPPED:
                fields["variants"] = form.cleaned_data["variant_list"]
            else:
                fields.pop("user_percentage")
            saved = experiment_update(experiment=Experiment.objects.get(pk=obj.pk), **fields)
        else:
            saved = experiment_create(
                by=acting_user(request), variants=form.cleaned_data["variant_list"], **fields
            )
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The inlines are read-only: the services wrote the variants and phases (nothing
        saved here, for the change message either)."""
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def start(self, request: HttpRequest, experiments: Iterable[Experiment]) -> None:
        user = acting_user(request)
        self.each(
            request, experiments, lambda e: experiment_start(experiment=e, by=user), "started."
        )

    def stop(self, request: HttpRequest, experiments: Iterable[Experiment]) -> None:
        user = acting_user(request)

        def stop_one(experiment: Experiment) -> None:
            stopped = experiment_stop(experiment=experiment, by=user)
            self.message_user(request, f"{stopped}: {stopped.conclusion}", messages.INFO)

        self.each(request, experiments, stop_one, "stopped.")

    @action(description="Start", permissions=["operate"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self.start(request, queryset)

    @action(description="Stop and decide", permissions=["operate"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self.stop(request, queryset)

    @action(
        description="Start",
        url_path="start",
        permissions=["operate"],
        icon="play_arrow",
        dialog=confirm(
            "Start this experiment?",
            "Requests naming it get their users' variants from now on.",
            "Start",
        ),
    )
    def start_experiment(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        self.start(request, [self.found(request, object_id)])
        return to_page(request, "admin:experiments_experiment_change", object_id)

    @action(
        description="Stop",
        url_path="stop",
        permissions=["operate"],
        icon="stop",
        dialog=confirm(
            "Stop this experiment?",
            "Requests get the default config again; a "
            "winner is picked only for a significant difference.",
            "Stop",
        ),
    )
    def stop_experiment(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        self.stop(request, [self.found(request, object_id)])
        return to_page(request, "admin:experiments_experiment_change", object_id)


def stats_block(stats: dict[str, Any]) -> SafeString:
    """The statistics as a read-only table: per variant its figures, and against the control
    its difference, p-value, chance to beat it and guardrails; then the SRM check and what
    stopping would decide."""
    head = ["Variant", "Planned", "Users", "Conversion", "Interval", "Δ vs control", "p-value",
            "Chance to beat", "Requests", "Success", "p50 / p95 ms", "Tokens", "Cost",
            "Cost / success", "Feedback", "Guardrails"]  # fmt: skip
    rows = []
    for v in stats["variants"]:
        calls, versus = v["calls"], v["versus_control"]
        interval = v["conversion_rate_interval"]
        rows.append(
            [
                f"{v['name']} ({v['type']})",
                f"{v['traffic_percentage']:g}%",
                v["users"],
                f"{_percent(v['conversion_rate'])} ({v['converted_users']})",
                f"{_percent(interval[0])} – {_percent(interval[1])}" if interval else "—",
                _percent(versus["difference"]) if versus else "control",
                _number(versus["p_value"]) if versus else "",
                _percent(versus["chance_to_beat_control"]) if versus else "",
                calls["requests"],
                _percent(calls["success_rate"]),
                f"{_number(calls['latency_p50_ms'], 4)} / {_number(calls['latency_p95_ms'], 4)}",
                calls["tokens"],
                f"${calls['cost']:.6f}",
                "—" if calls["cost_per_success"] is None else f"${calls['cost_per_success']:.6f}",
                f"{_number(v['feedback_mean'])} ({v['feedback_count']})",
                (", ".join(versus["guardrails_breached"]) or "ok") if versus else "",
            ]
        )
    srm = stats["srm"]
    if srm is None:
        srm_text = "not enough data"
    else:
        verdict = "MISMATCH: the split is skewed" if srm["mismatch"] else "ok"
        srm_text = f"p = {srm['p_value']:.3g} ({verdict})"
    header = format_html_join(
        "", "<th style='text-align:left;padding:2px 8px'>{}</th>", ((h,) for h in head)
    )
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (format_html_join("", "<td style='padding:2px 8px'>{}</td>", ((c,) for c in row)),)
            for row in rows
        ),
    )
    return format_html(
        "<div style='overflow-x:auto'><p>Phase {} · {} users · significance level {} (per "
        "comparison {}) · sample ratio check: {} · {}</p><table><thead><tr>{}</tr></thead>"
        "<tbody>{}</tbody></table><p><strong>Decision if stopped now:</strong> {}</p></div>",
        stats["phase"],
        stats["users"],
        _number(stats["significance_level"]),
        _number(stats["comparison_significance_level"]),
        srm_text,
        "healthy" if stats["healthy"] else "UNHEALTHY",
        header,
        body,
        stats["decision"]["message"],
    )


# --- canaries ----------------------------------------------------------------------------------


class CanaryEventInline(ReadOnlyInline):
    model = CanaryEvent
    fields = readonly_fields = [
        "created_at",
        "kind",
        "percentage",
        "phase",
        "message",
        "figures_shown",
    ]
    ordering = ["created_at", "id"]
    verbose_name_plural = "log"

    @admin.display(description="Figures (control / treatment)")
    def figures_shown(self, event: CanaryEvent) -> str:
        if not event.figures:
            return "—"
        parts = []
        for side in ("control", "treatment"):
            figures = event.figures.get(side, {})
            errors = _percent(figures.get("error_rate"))
            p95 = _number(figures.get("latency_p95_ms"), 4)
            parts.append(f"{side}: {figures.get('requests', 0)} req, errors {errors}, p95 {p95} ms")
        return " / ".join(parts)


class CanaryForm(forms.ModelForm):
    """A new canary, through ``canary_create``."""

    treatment_name = forms.CharField(max_length=100, label="Treatment variant")

    class Meta:
        model = CanaryRollout
        fields = [
            "experiment",
            "steps",
            "step_interval_seconds",
            "error_rate_margin",
            "latency_margin",
            "min_requests",
        ]
        widgets = {"steps": UnfoldAdminTextareaWidget(attrs={"rows": 2})}

    def clean_steps(self) -> Any:
        return canary_steps_validate(self.cleaned_data["steps"])


@admin.register(CanaryRollout)
class CanaryRolloutAdmin(OperatedAdmin):
    refused = (ValidationError, FeatureDisabledError)
    form = CanaryForm
    list_display = [
        "id",
        "experiment",
        "treatment",
        "status_badge",
        "percentage_shown",
        "steps",
        "step_started_at",
        "finished_at",
    ]
    list_filter = [("status", ChoicesDropdownFilter), ("experiment", RelatedDropdownFilter)]
    list_filter_submit = True
    list_select_related = ["experiment", "treatment"]
    inlines = [CanaryEventInline]
    actions_detail = ["advance_canary", "rollback_canary"]

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        settings = [
            "steps",
            "step_interval_seconds",
            "error_rate_margin",
            "latency_margin",
            "min_requests",
        ]
        if obj is None:
            return [(None, {"fields": ["experiment", "treatment_name", *settings]})]
        return [
            (
                None,
                {
                    "fields": [
                        "experiment",
                        "treatment",
                        "status_badge",
                        "percentage_shown",
                        "current_step",
                        "step_started_at",
                        "finished_at",
                        "reason",
                        "created_by",
                    ]
                },
            ),
            ("Settings", {"fields": settings}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return [
            "experiment",
            "treatment",
            "status_badge",
            "percentage_shown",
            "current_step",
            "step_started_at",
            "finished_at",
            "reason",
            "created_by",
            "steps",
            "step_interval_seconds",
            "error_rate_margin",
            "latency_margin",
            "min_requests",
        ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, rollout: CanaryRollout) -> str:
        return badge(rollout.status, rollout.get_status_display())

    @admin.display(description="Treatment's share")
    def percentage_shown(self, rollout: CanaryRollout) -> str:
        return f"{rollout.percentage}%"

    def save_model(
        self, request: HttpRequest, obj: CanaryRollout, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        saved = canary_create(
            experiment=data["experiment"],
            treatment=data["treatment_name"],
            by=acting_user(request),
            steps=data["steps"],
            step_interval_seconds=data["step_interval_seconds"],
            error_rate_margin=data["error_rate_margin"],
            latency_margin=data["latency_margin"],
            min_requests=data["min_requests"],
        )
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The log is the services' to write."""

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)
        except (ValidationError, FeatureDisabledError) as error:
            self.message_user(request, refusal(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @action(
        description="Judge now",
        url_path="advance",
        permissions=["operate"],
        icon="skip_next",
        dialog=confirm(
            "Judge this canary now?",
            "As the schedule does: the next step once the "
            "step has lasted its interval, or a rollback if it is unhealthy.",
            "Judge",
        ),
    )
    def advance_canary(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        rollout = self.found(request, object_id)
        outcome = canary_advance(rollout=rollout)
        self.message_user(request, f"{rollout}: {outcome or 'nothing to do yet'}.", messages.INFO)
        return to_page(request, "admin:experiments_canaryrollout_change", object_id)

    @action(
        description="Roll back",
        url_path="rollback",
        permissions=["operate"],
        icon="undo",
        dialog=confirm(
            "Roll this canary back?",
            "Its treatment gets no traffic from a new phase on.",
            "Roll back",
        ),
    )
    def rollback_canary(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        user = acting_user(request)
        self.each(
            request,
            [self.found(request, object_id)],
            lambda r: canary_rollback(rollout=r, by=user),
            "rolled back.",
        )
        return to_page(request, "admin:experiments_canaryrollout_change", object_id)


@admin.register(ExperimentSettings)
class ExperimentSettingsAdmin(ModelAdmin):
    """A single row: the ``ab_testing`` switch and the defaults, followed by every process."""

    list_display = ["__str__", "enabled", "significance_level", "canary_steps"]

    def save_model(
        self, request: HttpRequest, obj: ExperimentSettings, form: forms.ModelForm, change: bool
    ) -> None:
        fields = {k: v for k, v in form.cleaned_data.items() if k in SETTINGS_FIELDS}
        saved = experiment_settings_update(**fields)
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ExperimentSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
