from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
    RelatedDropdownFilter,
)

from apps.accounts.permissions import OPERATE
from apps.providers.models import LlmCall

from .models import Agent, AgentTask, RunStatus
from .selectors import agent_performance, agent_status
from .services import (
    AGENT_FIELDS,
    AgentTaskFinishedError,
    agent_create,
    agent_model_check,
    agent_task_cancel,
    agent_update,
    agents_enable,
)

RECENT_ACTIVITY = 20


class AgentForm(forms.ModelForm):
    """The model's own rules (ranges, a unique name) apply as on any model form; the model or
    provider pin must also resolve (``agent_model_check``). The admin saves through the
    services (``AgentAdmin.save_model``)."""

    class Meta:
        model = Agent
        fields = list(AGENT_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        adding = self.instance._state.adding
        if not self.errors and (adding or {"model", "provider"} & set(self.changed_data)):
            try:
                agent_model_check(model=cleaned.get("model", ""), provider=cleaned.get("provider"))
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


def _activity_rows(agent: Agent) -> list[tuple[str, str, str, str]]:
    rows = []
    for entry in agent.activity.select_related("task")[:RECENT_ACTIVITY]:
        if entry.task_id:
            subject = f"task #{entry.task_id}"
        elif entry.build_step_id:
            subject = f"build step #{entry.build_step_id}"
        else:
            subject = ""
        rows.append((f"{entry.created_at:%Y-%m-%d %H:%M:%S}", entry.event, subject, entry.message))
    return rows


def _call_cost() -> Subquery:
    calls = LlmCall.objects.filter(agent_id=OuterRef("pk")).order_by().values("agent_id")
    return Subquery(calls.annotate(total=Sum("cost")).values("total")[:1])


@admin.register(Agent)
class AgentAdmin(ModelAdmin):
    form = AgentForm
    list_display = [
        "name", "role", "model", "provider", "enabled", "status", "tasks_done", "cost",
    ]  # fmt: skip
    list_filter = ["enabled", "role", ("provider", RelatedDropdownFilter)]
    search_fields = ["name", "role", "description", "model"]
    list_select_related = ["provider"]
    readonly_fields = ["status", "performance", "recent_activity", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "role", "description", "enabled", "status"]}),
        ("Model", {"fields": ["model", "provider", "temperature", "max_tokens"]}),
        ("Prompt", {"fields": ["system_prompt"]}),
        ("Performance", {"fields": ["performance", "created_at", "updated_at"]}),
        ("Recent activity", {"fields": ["recent_activity"]}),
    ]
    actions = ["enable", "disable"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        done = Q(tasks__status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        return (
            super()
            .get_queryset(request)
            .annotate(
                tasks_done_count=Count("tasks", filter=done),
                call_cost=Coalesce(_call_cost(), Value(0), output_field=DecimalField()),
            )
        )

    def save_model(self, request: HttpRequest, obj: Agent, form: AgentForm, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name] for name in AGENT_FIELDS if name in form.cleaned_data
        }
        if change:
            stored = Agent.objects.get(pk=obj.pk)
            saved = agent_update(
                agent=stored, **{k: v for k, v in fields.items() if k in form.changed_data}
            )
        else:
            saved = agent_create(by=request.user, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    @admin.display(description="Recent activity")
    def recent_activity(self, agent: Agent) -> str:
        if not agent.pk:
            return "-"
        rows = _activity_rows(agent)
        if not rows:
            return "No activity yet."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html('<table class="w-full text-sm">{}</table>', body)

    @admin.display(description="Status")
    def status(self, agent: Agent) -> str:
        return agent_status(agent) if agent.pk else "-"

    @admin.display(description="Tasks done", ordering="tasks_done_count")
    def tasks_done(self, agent: Agent) -> int:
        return agent.tasks_done_count  # type: ignore[attr-defined]

    @admin.display(description="Cost", ordering="call_cost")
    def cost(self, agent: Agent) -> str:
        return f"${agent.call_cost:.4f}"  # type: ignore[attr-defined]

    @admin.display(description="Performance")
    def performance(self, agent: Agent) -> str:
        if not agent.pk:
            return "-"
        figures = agent_performance(agent)
        rate = figures["success_rate"]
        latency = figures["p95_latency_ms"]
        return (
            f"{figures['tasks_done']} tasks done "
            f"({'-' if rate is None else f'{rate:.0%}'} succeeded, "
            f"{figures['tasks_cancelled']} cancelled); {figures['steps_done']} build steps "
            f"done ({figures['steps_succeeded']} succeeded); {figures['calls']} calls, "
            f"average latency {figures['avg_latency_ms'] or '-'} ms, "
            f"p95 {'-' if latency is None else latency} ms; "
            f"tokens {figures['input_tokens']:,} in / {figures['output_tokens']:,} out; "
            f"cost ${figures['cost']:.6f}"
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        changed = agents_enable(agents=queryset, enabled=True)
        self.message_user(request, f"Enabled {changed} agent(s).", messages.SUCCESS)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        changed = agents_enable(agents=queryset, enabled=False)
        self.message_user(request, f"Disabled {changed} agent(s).", messages.SUCCESS)


@admin.register(AgentTask)
class AgentTaskAdmin(ModelAdmin):
    list_display = [
        "id", "agent", "status", "attempts", "created_at", "finished_at", "input_tokens",
        "output_tokens", "cost", "created_by",
    ]  # fmt: skip
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("agent", RelatedDropdownFilter),
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    list_select_related = ["agent", "created_by"]
    search_fields = ["prompt", "agent__name", "=celery_task_id"]
    actions = ["cancel"]
    fieldsets = [
        (None, {"fields": ["agent", "status", "prompt", "output", "error", "created_by"]}),
        (
            "Run",
            {
                "fields": [
                    "attempts",
                    "celery_task_id",
                    "created_at",
                    "queued_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                ]
            },
        ),
        ("Usage", {"fields": ["input_tokens", "output_tokens", "cost", "call_id"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AgentTask._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    @admin.action(description="Cancel", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[AgentTask]) -> None:
        cancelled = 0
        for task in queryset:
            try:
                agent_task_cancel(task=task, by=request.user)
            except AgentTaskFinishedError as error:
                self.message_user(request, str(error), messages.WARNING)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} task(s).", messages.SUCCESS)
