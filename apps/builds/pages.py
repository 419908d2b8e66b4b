"""The Build page: start a build (from a template, or steps composed in the form), the history
of builds, and each build's own page, which follows it live.

Starting is an ordinary form POST to this page (CSRF, Django forms): the view calls
``build_create`` (or ``build_create_from_template``) and redirects to the build's page. That
page subscribes to ``build:<id>``: tokens are appended as text while a step streams; each
``build.step`` and ``build.status`` event makes it fetch the step's card, or the build's
summary, rendered here again (``/admin/build/<id>/steps/<step>/``, ``/admin/build/<id>/summary/``),
so a finished step's output arrives as HTML rendered by the artifacts app (Markdown sanitised,
code highlighted) and the page needs no front-end library. Cancel, retry and approval decisions
are POSTs to the build's page, each checked here whatever the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from apps.accounts.permissions import OPERATE
from apps.agents.models import Agent
from apps.approvals.decisions import approval_decide_posted
from apps.approvals.models import ApprovalStatus, RiskLevel
from apps.approvals.services import approval_refusal
from apps.artifacts.models import Artifact
from apps.artifacts.rendering import highlight_css, markdown_html
from apps.core.admin_support import acting_user
from apps.core.events import live_since
from apps.providers.selectors import provider_list, public_model_list

from .models import Build, BuildStatus, BuildStep, BuildTemplate, RunStatus
from .services import (
    MAX_STEPS,
    build_cancel,
    build_create,
    build_create_from_template,
    build_retry,
)

HISTORY_PAGE_SIZE = 20
MAX_TOKENS_OFFERED = 1_000_000
# A status as a pill's tone (dashboard.css colours pills by data-status).
TONES: dict[str, str] = {
    RunStatus.PENDING: "",
    RunStatus.QUEUED: "",
    RunStatus.RUNNING: "info",
    RunStatus.AWAITING_APPROVAL: "warning",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "error",
    RunStatus.CANCELLED: "disabled",
}
STATUS_FILTERS = (
    ("", "All"),
    ("active", "Active"),
    (BuildStatus.AWAITING_APPROVAL, "Awaiting approval"),
    (BuildStatus.SUCCEEDED, "Succeeded"),
    (BuildStatus.FAILED, "Failed"),
    (BuildStatus.CANCELLED, "Cancelled"),
)
ACTIVE = (BuildStatus.QUEUED, BuildStatus.RUNNING, BuildStatus.AWAITING_APPROVAL)


def lines(text: str) -> str:
    """Text as typed, with the line ends browsers send (CRLF) made Python's (LF)."""
    return text.replace("\r\n", "\n")


def status_label(status: str) -> str:
    return status.replace("_", " ")


# --- the form --------------------------------------------------------------------------------


class StartForm(forms.Form):
    template = forms.ModelChoiceField(
        BuildTemplate.objects.all(),
        required=False,
        empty_label="None: compose the steps below",
        help_text="A saved pipeline; its steps replace those composed below.",
    )
    title = forms.CharField(max_length=200, required=False)
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What the build works on: {input} in the prompts.",
    )

    def clean_input(self) -> str:
        return lines(self.cleaned_data["input"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("template") and not (data.get("title") or "").strip():
            self.add_error("title", "Give the build a title (or pick a template).")
        return data


class StepForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Letters, digits, - or _.")
    agent = forms.ModelChoiceField(
        Agent.objects.filter(enabled=True), required=False, empty_label="None: use the model"
    )
    model = forms.ChoiceField(required=False, help_text="Without an agent.")
    provider = forms.ChoiceField(required=False, help_text="Without an agent.")
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=2, help_text="0 to 2; blank: the default."
    )
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_TOKENS_OFFERED, help_text="Blank: the default."
    )
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        strip=False,
        help_text="{input}: the build's input · {previous}: the output of the step before · "
        "{steps.<name>}: the output of an earlier step, by its name.",
    )
    requires_approval = forms.BooleanField(required=False)
    approval_risk = forms.ChoiceField(
        choices=RiskLevel.choices,
        initial=RiskLevel.MEDIUM,
        required=False,
        label="Approval risk",
    )

    def __init__(self, *args: Any, models: list[dict[str, Any]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        models = models or []
        model_field = self.fields["model"]
        provider_field = self.fields["provider"]
        assert isinstance(model_field, forms.ChoiceField)
        assert isinstance(provider_field, forms.ChoiceField)
        model_field.choices = [("", "Routing default")] + [
            (model["name"], model["name"]) for model in models
        ]
        provider_field.choices = [("", "Any provider")] + [
            (name, name) for name in provider_list().order_by("name").values_list("name", flat=True)
        ]

    def clean_prompt(self) -> str:
        return lines(self.cleaned_data["prompt"])

    def step(self) -> dict[str, Any]:
        """The step as ``build_create`` takes it: an agent runs it with its own model (its
        temperature and max tokens overridden when given), or the model config does."""
        data = self.cleaned_data
        step: dict[str, Any] = {
            "name": data["name"],
            "prompt": data["prompt"],
            "requires_approval": bool(data.get("requires_approval")),
        }
        if step["requires_approval"]:
            step["approval_risk"] = data.get("approval_risk") or RiskLevel.MEDIUM
        if data.get("agent") is not None:
            step["agent"] = data["agent"].pk
        else:
            step["model"] = data.get("model") or ""
            step["provider"] = data.get("provider") or None
        for name in ("temperature", "max_tokens"):
            if data.get(name) is not None:
                step[name] = data[name]
        return step


StepFormSet = forms.formset_factory(
    StepForm, extra=0, min_num=1, validate_min=True, max_num=MAX_STEPS, validate_max=True
)


def step_formset(data: Mapping[str, Any] | None = None) -> Any:
    return StepFormSet(data, prefix="steps", form_kwargs={"models": public_model_list()})


# --- the Build page: start, history ----------------------------------------------------------


def build(
    request: HttpRequest, pk: int | None = None, part: str | None = None, step: int | None = None
) -> HttpResponse:
    """``/admin/build/`` (start, history), ``<pk>/`` (a build), ``<pk>/summary/`` and
    ``<pk>/steps/<step>/`` (the parts its page fetches again as it changes)."""
    if pk is None:
        return build_start(request)
    if step is not None:
        return step_card(request, pk, step)
    if part == "summary":
        return build_summary(request, pk)
    if part is not None:
        raise Http404("No such part of a build's page.")
    return build_detail(request, pk)


def build_start(request: HttpRequest) -> HttpResponse:
    form, steps = StartForm(), step_formset()
    errors: list[str] = []
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Starting a build needs the operator role.")
        form, steps = StartForm(request.POST), step_formset(request.POST)
        started = _start(request, form, steps, errors)
        if started is not None:
            messages.success(request, f"Build #{started.pk} started: {started.title}")
            return HttpResponseRedirect(reverse("admin:page-build-1", args=[started.pk]))
    return TemplateResponse(
        request, "builds/build.html", _start_context(request, form, steps, errors)
    )


def _start(request: HttpRequest, form: StartForm, steps: Any, errors: list[str]) -> Build | None:
    if not form.is_valid():
        return None
    template = form.cleaned_data["template"]
    title = form.cleaned_data["title"].strip()
    build_input = form.cleaned_data["input"]
    try:
        if template is not None:
            return build_create_from_template(
                template=template, by=acting_user(request), input=build_input, title=title
            )
        if not steps.is_valid():
            return None
        return build_create(
            title=title,
            input=build_input,
            steps=[step_form.step() for step_form in steps.forms],
            by=acting_user(request),
        )
    except ValidationError as error:
        errors.extend(_messages(error))
        return None


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [text for texts in error.message_dict.values() for text in texts]
    return list(error.messages)


def history(request: HttpRequest) -> tuple[QuerySet[Build], str]:
    status = request.GET.get("status", "")
    builds = Build.objects.select_related("created_by").annotate(
        step_count=Count("steps"),
        steps_done=Count("steps", filter=Q(steps__status=RunStatus.SUCCEEDED)),
    )
    if status == "active":
        builds = builds.filter(status__in=ACTIVE)
    elif status in BuildStatus.values:
        builds = builds.filter(status=status)
    else:
        status = ""
    return builds.order_by("-created_at", "-pk"), status


def _start_context(
    request: HttpRequest, form: StartForm, steps: Any, errors: list[str]
) -> dict[str, Any]:
    builds, status = history(request)
    page = Paginator(builds, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    templates = [
        {"template": template, "steps": [step.get("name", "?") for step in template.steps]}
        for template in BuildTemplate.objects.all()
    ]
    return {
        "form": form,
        "steps": steps,
        "start_errors": errors,
        "templates": templates,
        "can_start": request.user.has_perm(OPERATE),
        "has_agents": Agent.objects.filter(enabled=True).exists(),
        "rows": [
            {"build": b, "tone": TONES.get(b.status, ""), "label": status_label(b.status)}
            for b in page.object_list
        ],
        "page_obj": page,
        "page_query": urlencode({"status": status}) + "&" if status else "",
        "status": status,
        "filters": [
            {
                "value": value,
                "label": label,
                "url": "?" + urlencode({"status": value}) if value else "?",
            }
            for value, label in STATUS_FILTERS
        ],
        "max_steps": MAX_STEPS,
        "live_channels": "builds",
    }


# --- one build -------------------------------------------------------------------------------


def _build(pk: int) -> Build:
    return get_object_or_404(Build.objects.select_related("created_by", "template"), pk=pk)


def _steps(build: Build) -> QuerySet[BuildStep]:
    return build.steps.select_related("agent", "provider", "approval").order_by("position")


def build_detail(request: HttpRequest, pk: int) -> HttpResponse:
    the_build = _build(pk)
    if request.method == "POST":
        return build_action(request, the_build)
    steps = list(_steps(the_build))
    channel = f"build:{the_build.pk}"
    return TemplateResponse(
        request,
        "builds/build_detail.html",
        {
            **summary_context(request, the_build, steps),
            "title": f"Build #{the_build.pk}: {the_build.title}",
            "cards": [step_context(request, the_build, step) for step in steps],
            "highlight_css": highlight_css(),
            "live_channels": channel,
            "live_since": live_since({channel: _shown_from(steps)}),
        },
    )


def _shown_from(steps: list[BuildStep]) -> datetime:
    """Where the page's events start: a running step's start, so a page opened mid-step shows
    all its text (replayed), else now."""
    running = [s.started_at for s in steps if s.status == RunStatus.RUNNING and s.started_at]
    return min(running, default=timezone.now())


def build_action(request: HttpRequest, the_build: Build) -> HttpResponse:
    """Cancel, retry, or decide a step's approval; the outcome is told as a message."""
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied("Changing a build needs the operator role.")
    action = request.POST.get("action", "")
    back = HttpResponseRedirect(reverse("admin:page-build-1", args=[the_build.pk]))
    if action == "decide":
        step = get_object_or_404(the_build.steps, pk=request.POST.get("step") or 0)
        if step.approval is None:
            messages.error(request, f"Step {step.name} waits for no approval.")
        else:
            approval_decide_posted(request, step.approval)
        return back
    actions = {"cancel": (build_cancel, "cancelled"), "retry": (build_retry, "retried")}
    if action not in actions:
        messages.error(request, "Unknown action.")
        return back
    service, done = actions[action]
    try:
        service(build=the_build, by=acting_user(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Build #{the_build.pk} {done}.")
    return back


def summary_context(
    request: HttpRequest, the_build: Build, steps: list[BuildStep]
) -> dict[str, Any]:
    can_operate = request.user.has_perm(OPERATE)
    artifacts = list(
        Artifact.objects.filter(build_id=the_build.pk)
        .select_related("step")
        .order_by("step__position", "id")
    )
    started, finished = the_build.started_at, the_build.finished_at
    return {
        "build": the_build,
        "tone": TONES.get(the_build.status, ""),
        "label": status_label(the_build.status),
        "steps_done": sum(step.status == RunStatus.SUCCEEDED for step in steps),
        "step_count": len(steps),
        "duration": (finished - started).total_seconds() if started and finished else None,
        "artifacts": artifacts,
        "can_cancel": can_operate and not the_build.finished,
        "can_retry": can_operate
        and the_build.status in (BuildStatus.FAILED, BuildStatus.CANCELLED),
        "can_read_artifacts": request.user.has_perm("artifacts.view_artifact"),
    }


def step_context(request: HttpRequest, the_build: Build, step: BuildStep) -> dict[str, Any]:
    approval = step.approval
    waiting = (
        step.status == RunStatus.AWAITING_APPROVAL
        and approval is not None
        and approval.status == ApprovalStatus.PENDING
    )
    own = waiting and approval is not None and approval.requested_by_id == request.user.pk
    user = request.user if isinstance(request.user, User) else None
    can_decide = (
        waiting
        and approval is not None
        and request.user.has_perm(OPERATE)
        and approval_refusal(approval=approval, user=user) is None
    )
    started, finished = step.started_at, step.finished_at
    return {
        "build": the_build,
        "step": step,
        "tone": TONES.get(step.status, ""),
        "label": status_label(step.status),
        "output_html": markdown_html(step.output) if step.output else "",
        "duration": (finished - started).total_seconds() if started and finished else None,
        "approval": approval if waiting else None,
        "can_decide": can_decide,
        "own_request": own,
    }


def build_summary(request: HttpRequest, pk: int) -> HttpResponse:
    the_build = _build(pk)
    context = summary_context(request, the_build, list(_steps(the_build)))
    return render(request, "builds/includes/summary.html", context)


def step_card(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    the_build = _build(pk)
    step = get_object_or_404(_steps(the_build), pk=step_pk)
    return render(request, "builds/includes/step.html", step_context(request, the_build, step))
