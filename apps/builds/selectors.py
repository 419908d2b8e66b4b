"""Reads of builds, their steps and lifecycle, and templates."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from .models import Build, BuildEvent, BuildStep, BuildTemplate, RunStatus


def build_list() -> QuerySet[Build]:
    """Builds, newest first, with who made them, their template and their steps (in order)."""
    steps = BuildStep.objects.select_related("agent", "provider").order_by("position")
    return Build.objects.select_related("created_by", "template").prefetch_related(
        Prefetch("steps", queryset=steps)
    )


def build_list_with_progress() -> QuerySet[Build]:
    """Builds with ``steps_total`` and ``steps_done`` counted in the query (no steps loaded)."""
    return Build.objects.select_related("created_by", "template").annotate(
        steps_total=Count("steps"),
        steps_done=Count("steps", filter=Q(steps__status=RunStatus.SUCCEEDED)),
    )


def build_get(*, pk: int) -> Build:
    return get_object_or_404(build_list(), pk=pk)


def build_events(*, build: Build) -> QuerySet[BuildEvent]:
    """The build's lifecycle in the order it happened, each event with its step."""
    events = BuildEvent.objects.filter(build=build).select_related("step")
    return events.order_by("created_at", "id")


def build_step_specs(*, build: Build) -> list[dict[str, Any]]:
    """The build's steps as ``build_create`` takes them (to run the same steps again). An agent
    is named by id, so a renamed agent still matches; a deleted one leaves its step's model."""
    specs = []
    for step in build.steps.select_related("provider").order_by("position"):
        spec: dict[str, Any] = {"name": step.name, "prompt": step.prompt_template}
        if step.kind != "llm":
            spec["kind"] = step.kind
            if step.options:
                spec["options"] = step.options
        if step.agent_id is not None:
            spec["agent"] = step.agent_id
        if step.model:
            spec["model"] = step.model
        if step.provider is not None:
            spec["provider"] = step.provider.name
        for name in ("temperature", "max_tokens"):
            if getattr(step, name) is not None:
                spec[name] = getattr(step, name)
        if step.requires_approval:
            spec["requires_approval"] = True
            spec["approval_risk"] = step.approval_risk
        specs.append(spec)
    return specs


def template_list() -> QuerySet[BuildTemplate]:
    return BuildTemplate.objects.select_related("created_by")


def template_get(*, pk: int) -> BuildTemplate:
    return get_object_or_404(template_list(), pk=pk)
