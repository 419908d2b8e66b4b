"""Builds and templates in the dashboard. A build is never edited here: it is started (a
template's Run, a build's Re-run), cancelled and retried through the services, by whoever may
operate the platform; what a service refuses shows as a message."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
    RelatedDropdownFilter,
)
from unfold.decorators import action  # type: ignore[import-untyped]
from unfold.forms import BaseDialogForm  # type: ignore[import-untyped]
from unfold.utils import display_for_label  # type: ignore[import-untyped]
from unfold.widgets import (  # type: ignore[import-untyped]
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from apps.core.admin_support import (
    OperatedAdmin,
    ReadOnlyInline,
    acting_user,
    confirm,
    refusal,
    to_page,
)

from .models import Build, BuildEvent, BuildStatus, BuildStep, BuildTemplate, RunStatus
from .selectors import build_list_with_progress, build_step_specs
from .services import (
    build_cancel,
    build_create,
    build_create_from_template,
    build_retry,
    build_steps_validate,
    build_template_create,
    build_template_update,
)

STATUS_LABELS = {
    BuildStatus.QUEUED: "info",
    BuildStatus.RUNNING: "primary",
    BuildStatus.AWAITING_APPROVAL: "warning",
    BuildStatus.SUCCEEDED: "success",
    BuildStatus.FAILED: "danger",
    BuildStatus.CANCELLED: "",
    RunStatus.PENDING: "",
}


def badge(status: str, text: str) -> str:
    """The status as a coloured label, in lists and on read-only pages alike."""
    return display_for_label((status, text), "—", STATUS_LABELS)


def build_link(build: Build) -> str:
    url = reverse("admin:builds_build_change", args=[build.pk])
    return format_html('<a href="{}">{}</a>', url, build)


class BuildStepInline(ReadOnlyInline):
    model = BuildStep
    fields = readonly_fields = [
        "position", "name", "kind", "agent", "model", "status_badge", "attempts", "tokens",
        "cost", "started_at", "duration", "gate", "approval_link", "result_link",
        "celery_task_id", "error", "output_preview",
    ]  # fmt: skip
    ordering = ["position"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BuildStep]:
        return super().get_queryset(request).select_related("agent", "approval")

    @admin.display(description="Status")
    def status_badge(self, step: BuildStep) -> str:
        return badge(step.status, step.get_status_display())

    @admin.display(description="Tokens in / out")
    def tokens(self, step: BuildStep) -> str:
        return f"{step.input_tokens:,} / {step.output_tokens:,}"

    @admin.display(description="Duration")
    def duration(self, step: BuildStep) -> str:
        return seconds_shown(step.started_at, step.finished_at)

    @admin.display(description="Gate")
    def gate(self, step: BuildStep) -> str:
        """The risk its approval request is (or will be) asked at; "—" for an ungated step."""
        return f"{step.get_approval_risk_display()} risk" if step.requires_approval else "—"

    @admin.display(description="Approval")
    def approval_link(self, step: BuildStep) -> str:
        if step.approval is None:
            return "—"
        url = reverse("admin:approvals_approvalrequest_change", args=[step.approval.pk])
        return format_html('<a href="{}">#{} {}</a>', url, step.approval.pk, step.approval.status)

    @admin.display(description="Made")
    def result_link(self, step: BuildStep) -> str:
        if not step.result_url:
            return "—"
        return format_html('<a href="{}" rel="noopener">{}</a>', step.result_url, step.result_url)

    @admin.display(description="Output")
    def output_preview(self, step: BuildStep) -> str:
        return step.output if len(step.output) <= 500 else step.output[:500] + "…"


class BuildEventInline(ReadOnlyInline):
    model = BuildEvent
    fields = readonly_fields = [
        "created_at", "step", "event", "status", "attempt", "detail", "celery_task_id",
    ]  # fmt: skip
    ordering = ["created_at", "id"]
    verbose_name_plural = "lifecycle"

    def get_queryset(self, request: HttpRequest) -> QuerySet[BuildEvent]:
        return super().get_queryset(request).select_related("step")


def seconds_shown(started: Any, finished: Any) -> str:
    if started is None or finished is None:
        return "—"
    seconds = (finished - started).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@admin.register(Build)
class BuildAdmin(OperatedAdmin):
    list_display = [
        "id", "title", "status_badge", "created_by", "progress", "tokens", "cost_shown",
        "created_at", "duration",
    ]  # fmt: skip
    list_display_links = ["id", "title"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("template", RelatedDropdownFilter),
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    search_fields = ["title", "github_issue"]
    search_help_text = "Part of the title, or the GitHub issue (owner/repo#123)."
    fieldsets = [
        (None, {"fields": ["title", "status_badge", "error", "template", "created_by"]}),
        ("Input", {"fields": ["github_issue", "input"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "duration"]}),
        ("Usage", {"fields": ["input_tokens", "output_tokens", "cost"]}),
    ]
    readonly_fields = [
        "title", "status_badge", "error", "template", "created_by", "github_issue", "input",
        "created_at",
        "started_at", "finished_at", "duration", "input_tokens", "output_tokens", "cost",
    ]  # fmt: skip
    inlines = [BuildStepInline, BuildEventInline]
    actions = ["cancel_selected", "retry_selected", "rerun_selected"]
    actions_detail = ["cancel_build", "retry_build", "rerun_build"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Build]:
        return build_list_with_progress()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A build still queued, running or waiting for an approval has a worker or a person
        acting on it: it is cancelled first (the bulk delete refuses it too)."""
        if obj is not None and not obj.finished:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, build: Build) -> str:
        return badge(build.status, build.get_status_display())

    @admin.display(description="Steps done")
    def progress(self, build: Build) -> str:
        return f"{build.steps_done}/{build.steps_total}"  # type: ignore[attr-defined]

    @admin.display(description="Tokens", ordering="output_tokens")
    def tokens(self, build: Build) -> str:
        return f"{build.input_tokens + build.output_tokens:,}"

    @admin.display(description="Cost", ordering="cost")
    def cost_shown(self, build: Build) -> str:
        return f"${build.cost.normalize():f}" if build.cost else "$0"

    @admin.display(description="Duration")
    def duration(self, build: Build) -> str:
        return seconds_shown(build.started_at, build.finished_at)

    # --- actions: each build through the service; a refusal is a message ---------------------

    def shown(self, obj: Any) -> str:
        return build_link(obj)

    def cancel(self, request: HttpRequest, builds: Any) -> list[Build]:
        user = acting_user(request)
        return self.each(request, builds, lambda b: build_cancel(build=b, by=user), "cancelled.")

    def retry(self, request: HttpRequest, builds: Any) -> list[Build]:
        user = acting_user(request)
        return self.each(request, builds, lambda b: build_retry(build=b, by=user), "retried.")

    def rerun(self, request: HttpRequest, builds: Any) -> list[Build]:
        user = acting_user(request)

        def again(build: Build) -> Build:
            """A build from an issue reads the issue again (its comments may have grown)."""
            return build_create(
                title=build.title,
                input="" if build.github_issue else build.input,
                steps=build_step_specs(build=build),
                by=user,
                template=build.template,
                github_issue=build.github_issue,
            )

        return self.each(request, builds, again, "started: the same steps again.")

    @action(description="Cancel", permissions=["operate"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Build]) -> None:
        self.cancel(request, queryset)

    @action(description="Retry from the first step that did not succeed", permissions=["operate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Build]) -> None:
        self.retry(request, queryset)

    @action(description="Re-run as a new build", permissions=["operate"])
    def rerun_selected(self, request: HttpRequest, queryset: QuerySet[Build]) -> None:
        self.rerun(request, queryset)

    @action(
        description="Cancel",
        url_path="cancel",
        permissions=["operate"],
        icon="cancel",
        dialog=confirm(
            "Cancel this build?",
            "The running step stops; the rest never start.",
            "Cancel the build",
        ),
    )
    def cancel_build(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        self.cancel(request, [self.found(request, object_id)])
        return to_page(request, "admin:builds_build_change", object_id)

    @action(
        description="Retry",
        url_path="retry",
        permissions=["operate"],
        icon="replay",
        dialog=confirm(
            "Retry this build?", "It goes on from its first step that did not succeed.", "Retry"
        ),
    )
    def retry_build(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        self.retry(request, [self.found(request, object_id)])
        return to_page(request, "admin:builds_build_change", object_id)

    @action(
        description="Re-run",
        url_path="rerun",
        permissions=["operate"],
        icon="restart_alt",
        dialog=confirm(
            "Run the same steps again?",
            "A new build with this build's title, input and steps.",
            "Start",
        ),
    )
    def rerun_build(self, request: HttpRequest, form: BaseDialogForm, object_id: str) -> Any:
        started = self.rerun(request, [self.found(request, object_id)])
        shown = started[0].pk if started else object_id  # the new build, or the refusal
        return to_page(request, "admin:builds_build_change", shown)


# --- templates --------------------------------------------------------------------------------


class BuildTemplateForm(forms.ModelForm):
    """The steps are checked by ``build_steps_validate``: each problem names its step."""

    class Meta:
        model = BuildTemplate
        fields = ["name", "description", "steps"]
        widgets = {"steps": UnfoldAdminTextareaWidget(attrs={"rows": 16})}
        help_texts = {
            "steps": 'A JSON list: [{"name": "plan", "agent": "planner", "prompt": "Plan: '
            '{input}"}, {"name": "review", "model": "gpt-4o", "prompt": "Review: '
            '{steps.plan}", "requires_approval": true, "approval_risk": "low"}]. Each step: '
            "name, prompt, and an agent (id or name) or a model (with provider, temperature, "
            "max_tokens); a gated step's approval_risk (low, medium, high, critical; medium "
            "when left out) sets who may approve it.",
        }

    def clean_steps(self) -> Any:
        steps = self.cleaned_data["steps"]
        try:
            build_steps_validate(steps)
        except ValidationError as error:
            problems = getattr(error, "message_dict", {}).get("steps", error.messages)
            raise ValidationError(problems) from error
        return steps


class RunForm(BaseDialogForm):
    title = forms.CharField(
        max_length=200,
        required=False,
        widget=UnfoldAdminTextInputWidget,
        help_text="The template's name when left blank.",
    )
    input = forms.CharField(
        required=False,
        strip=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 6}),
        help_text="What the build works on: {input} in the prompts.",
    )


@admin.register(BuildTemplate)
class BuildTemplateAdmin(OperatedAdmin):
    form = BuildTemplateForm
    list_display = ["name", "description", "step_count", "created_by", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    actions = ["run_selected"]
    actions_detail = ["run_template"]

    @admin.display(description="Steps")
    def step_count(self, template: BuildTemplate) -> int:
        return len(template.steps) if isinstance(template.steps, list) else 0

    def save_model(
        self, request: HttpRequest, obj: BuildTemplate, form: forms.ModelForm, change: bool
    ) -> None:
        """Through the services (``obj`` carries the form's values)."""
        fields = {name: form.cleaned_data[name] for name in ("name", "description", "steps")}
        if change:
            build_template_update(template=BuildTemplate.objects.get(pk=obj.pk), **fields)
        else:
            saved = build_template_create(by=acting_user(request), **fields)
            obj.pk = saved.pk
            obj._state.adding = False
        obj.refresh_from_db()

    def run(
        self, request: HttpRequest, template: BuildTemplate, title: str, input: str
    ) -> Build | None:
        try:
            build = build_create_from_template(
                template=template, by=acting_user(request), title=title, input=input
            )
        except ValidationError as error:
            self.message_user(request, f"{template}: {refusal(error)}", messages.ERROR)
            return None
        self.message_user(request, format_html("{} started.", build_link(build)), messages.SUCCESS)
        return build

    @action(description="Run (a build with no input)", permissions=["operate"])
    def run_selected(self, request: HttpRequest, queryset: QuerySet[BuildTemplate]) -> None:
        for template in queryset:
            self.run(request, template, "", "")

    @action(
        description="Run",
        url_path="run",
        permissions=["operate"],
        icon="play_arrow",
        dialog={
            "title": "Run this template",
            "description": "Start a build with its steps.",
            "form_class": RunForm,
            "form_submit_text": "Start the build",
        },
    )
    def run_template(self, request: HttpRequest, form: RunForm, object_id: str) -> Any:
        template = self.found(request, object_id)
        build = self.run(request, template, form.cleaned_data["title"], form.cleaned_data["input"])
        if build is None:
            return to_page(request, "admin:builds_buildtemplate_change", object_id)
        return to_page(request, "admin:builds_build_change", build.pk)
