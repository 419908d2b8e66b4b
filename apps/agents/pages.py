"""The agent board: each agent's status (live from ``agents``), current task, performance and
recent activity, and "Run a task".

Running a task is a form POST to this page (``agent_task_create``). The page's script posts it
with ``fetch`` and gets the task's id back as JSON, subscribes to ``agent_task:<id>`` through the
page's WebSocket client and appends the tokens as they come; when ``agents`` says the task
ended, it fetches the task's panel rendered here (``/admin/agent-board/tasks/<id>/``), the output
as sanitised Markdown with its code highlighted. Without the script the POST redirects to the
board showing the task. A card is fetched again (``/admin/agent-board/<id>/``) whenever its
agent's tasks change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from apps.accounts.permissions import OPERATE
from apps.artifacts.rendering import highlight_css, markdown_html
from apps.core.errors import error_response
from apps.core.events import event_id_at, live_since

from .models import Agent, AgentTask, RunStatus
from .selectors import (
    agent_activity_list,
    agent_current_task,
    agent_get,
    agent_list,
    agent_performance,
    agent_status,
    agent_task_get,
)
from .services import AgentTaskFinishedError, agent_task_cancel, agent_task_create

PAGE_SIZE = 24
RECENT_ACTIVITY = 5
MAX_PROMPT = 100_000
STATUS_TONES: dict[str, str] = {"idle": "", "busy": "info", "error": "error"}
TASK_TONES: dict[str, str] = {
    RunStatus.QUEUED: "",
    RunStatus.RUNNING: "info",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "error",
    RunStatus.CANCELLED: "disabled",
}


class TaskForm(forms.Form):
    agent = forms.ModelChoiceField(
        Agent.objects.filter(enabled=True), empty_label=None, help_text="Enabled agents only."
    )
    prompt = forms.CharField(
        max_length=MAX_PROMPT,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Sent as the user's message, after the agent's system prompt.",
    )

    def clean_prompt(self) -> str:
        return self.cleaned_data["prompt"].replace("\r\n", "\n")  # browsers send CRLF


def agent_board(
    request: HttpRequest, pk: int | None = None, task: int | None = None
) -> HttpResponse:
    """``/admin/agent-board/`` (the board; POST runs or cancels a task), ``<pk>/`` (an agent's
    card) and ``tasks/<task>/`` (a task's panel): the parts the page fetches again."""
    if task is not None:
        return task_panel(request, task)
    if pk is not None:
        return agent_card(request, pk)
    form = TaskForm()
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Running a task needs the operator role.")
        if request.POST.get("action") == "cancel":
            return task_cancel(request)
        form = TaskForm(request.POST)
        answer = task_run(request, form)
        if answer is not None:
            return answer
    shown = request.GET.get("task", "")
    shown_task = AgentTask.objects.filter(pk=int(shown)).first() if shown.isdigit() else None
    page = Paginator(agent_list().order_by("name"), PAGE_SIZE).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "agents/board.html",
        {
            "form": form,
            "cards": [card_context(agent) for agent in page.object_list],
            "page_obj": page,
            "page_query": "",
            "task": task_context(shown_task) if shown_task else None,
            "can_run": request.user.has_perm(OPERATE),
            "can_edit": request.user.has_perm("agents.change_agent"),
            "highlight_css": highlight_css(),
            "live_channels": "agents" + (f" agent_task:{shown_task.pk}" if shown_task else ""),
            "live_since": live_since(
                {f"agent_task:{shown_task.pk}": _shown_from(shown_task)} if shown_task else {}
            ),
        },
        status=400 if form.errors else 200,
    )


def _shown_from(task: AgentTask) -> datetime:
    """Where the task's tokens shown start: its start when it runs, so a page opened mid-task
    shows all its text (replayed), else now."""
    if task.status == RunStatus.RUNNING and task.started_at:
        return task.started_at
    return timezone.now()


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def task_run(request: HttpRequest, form: TaskForm) -> HttpResponse | None:
    """Queue the task: its id as JSON for the page's script, else a redirect showing it; None
    (the board shows the form's errors) when the form is refused."""
    if form.is_valid():
        try:
            task = agent_task_create(
                agent=form.cleaned_data["agent"],
                prompt=form.cleaned_data["prompt"],
                by=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if _wants_json(request):
                return JsonResponse(
                    {
                        "task": task.pk,
                        "agent": task.agent_id,
                        "status": task.status,
                        "channel": f"agent_task:{task.pk}",
                        "since": event_id_at(task.created_at),
                        "panel_url": reverse("admin:page-agent-board-2", args=[task.pk]),
                    },
                    status=201,
                )
            board = reverse("admin:page-agent-board")
            return HttpResponseRedirect(f"{board}?task={task.pk}#task-result")
    if _wants_json(request):
        errors = {name: [str(text) for text in texts] for name, texts in form.errors.items()}
        message = " ".join(text for texts in errors.values() for text in texts)
        return error_response("invalid_request", message, 400, errors)
    return None


def task_cancel(request: HttpRequest) -> HttpResponse:
    task = get_object_or_404(AgentTask, pk=request.POST.get("task") or 0)
    try:
        task = agent_task_cancel(task=task, by=request.user)
    except AgentTaskFinishedError as error:
        if _wants_json(request):
            return error_response("conflict", str(error), 409)
    if _wants_json(request):
        return JsonResponse({"task": task.pk, "status": task.status})
    return HttpResponseRedirect(f"{reverse('admin:page-agent-board')}?task={task.pk}#task-result")


def card_context(agent: Agent) -> dict[str, Any]:
    status = agent_status(agent)
    current = agent_current_task(agent)
    return {
        "agent": agent,
        "status": status,
        "tone": STATUS_TONES.get(status, ""),
        "current": current,
        "performance": agent_performance(agent),
        "activity": list(agent_activity_list(agent=agent)[:RECENT_ACTIVITY]),
    }


def task_context(task: AgentTask) -> dict[str, Any]:
    started, finished = task.started_at, task.finished_at
    return {
        "task": task,
        "tone": TASK_TONES.get(task.status, ""),
        "label": str(task.status).replace("_", " "),
        "output_html": markdown_html(task.output) if task.output else "",
        "duration": (finished - started).total_seconds() if started and finished else None,
    }


def agent_card(request: HttpRequest, pk: int) -> HttpResponse:
    context = {
        **card_context(agent_get(pk=pk)),
        "can_run": request.user.has_perm(OPERATE),
        "can_edit": request.user.has_perm("agents.change_agent"),
    }
    return render(request, "agents/includes/card.html", context)


def task_panel(request: HttpRequest, pk: int) -> HttpResponse:
    context = {**task_context(agent_task_get(pk=pk)), "can_run": request.user.has_perm(OPERATE)}
    return render(request, "agents/includes/task.html", context)
