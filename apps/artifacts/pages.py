"""The artifact browser: every artifact the builds produced, filtered by type, build, agent and
date, searched by name and content, sorted; each previewed (a report as sanitised Markdown, code
highlighted, a patch as a diff: ``rendering.artifact_preview_html``) and downloaded, one by one
or a build's all at once, through the REST API's downloads (the session authenticates them)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import urlencode

from .models import Artifact, ArtifactKind
from .rendering import artifact_preview_html, highlight_css
from .selectors import artifact_get, artifact_list

PAGE_SIZE = 25
# Material Symbols of each kind, as the sidebar's icons.
KIND_ICONS: dict[str, str] = {
    ArtifactKind.REPORT: "description",
    ArtifactKind.CODE: "code",
    ArtifactKind.PATCH: "difference",
}
SORTS = (
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("name", "Name, A to Z"),
    ("-size", "Largest first"),
    ("kind", "Type"),
)


class BrowseForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    kind = forms.ChoiceField(
        required=False, label="Type", choices=[("", "Any type"), *ArtifactKind.choices]
    )
    build = forms.IntegerField(required=False, min_value=1, label="Build #")
    # The agents app imports this one (previews): its model is reached through the relation.
    agent = forms.ModelChoiceField(
        Artifact._meta.get_field("agent").related_model._default_manager.order_by("name"),
        required=False,
        empty_label="Any agent",
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    ordering = forms.ChoiceField(required=False, label="Sort", choices=SORTS)


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def artifacts_browsed(form: BrowseForm) -> QuerySet[Artifact]:
    """The artifacts the (validated) form asks for, in its order."""
    found = artifact_list().select_related("build")
    data = form.cleaned_data if form.is_valid() else {}
    if query := (data.get("q") or "").strip():
        found = found.filter(Q(name__icontains=query) | Q(content__icontains=query))
    if data.get("kind"):
        found = found.filter(kind=data["kind"])
    if data.get("build"):
        found = found.filter(build_id=data["build"])
    if data.get("agent") is not None:
        found = found.filter(agent=data["agent"])
    if data.get("since"):
        found = found.filter(created_at__gte=_day_start(data["since"]))
    if data.get("until"):  # the whole day
        found = found.filter(created_at__lt=_day_start(data["until"] + timedelta(days=1)))
    ordering = data.get("ordering") or "-created_at"
    tie = "-id" if ordering.startswith("-") else "id"
    return found.order_by(ordering, tie)


def artifact_browser(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The list with its filters, or (``pk``) one artifact's preview."""
    if pk is not None:
        return artifact_preview(request, pk)
    form = BrowseForm(request.GET or None)
    page = Paginator(artifacts_browsed(form), PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {name: str(value) for name, value in request.GET.items() if name != "page" and value}
    return TemplateResponse(
        request,
        "artifacts/browser.html",
        {
            "form": form,
            "rows": [
                {"artifact": artifact, "icon": KIND_ICONS.get(artifact.kind, "draft")}
                for artifact in page.object_list
            ],
            "page_obj": page,
            "page_query": urlencode(kept) + "&" if kept else "",
            "filtered": bool(kept),
        },
    )


def artifact_preview(request: HttpRequest, pk: int) -> HttpResponse:
    artifact = artifact_get(pk=pk)
    return TemplateResponse(
        request,
        "artifacts/preview.html",
        {
            "title": f"Artifact {artifact.name}",
            "artifact": artifact,
            "icon": KIND_ICONS.get(artifact.kind, "draft"),
            "preview": artifact_preview_html(artifact),
            "highlight_css": highlight_css(),
        },
    )
