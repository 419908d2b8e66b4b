from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
    RelatedDropdownFilter,
    TextFilter,
)

from apps.core.admin_support import ReadOnlyAdminMixin

from .models import Artifact
from .rendering import artifact_preview_html, highlight_css

PREVIEW_CSS = """
.artifact-preview { max-width: 100%; overflow-x: auto; line-height: 1.5; }
.artifact-preview h1, .artifact-preview h2, .artifact-preview h3 { font-weight: 600; margin: 1rem 0 .5rem; }
.artifact-preview h1 { font-size: 1.5rem; } .artifact-preview h2 { font-size: 1.25rem; }
.artifact-preview p, .artifact-preview ul, .artifact-preview ol { margin: .5rem 0; }
.artifact-preview ul { list-style: disc; padding-left: 1.5rem; }
.artifact-preview ol { list-style: decimal; padding-left: 1.5rem; }
.artifact-preview table td, .artifact-preview table th { border: 1px solid #d1d5db; padding: .25rem .5rem; }
.artifact-preview a { text-decoration: underline; }
"""  # noqa: E501


class BuildIdFilter(TextFilter):
    """A build by its number (a dropdown of every build would grow without end)."""

    title = "build (id)"
    parameter_name = "build_id"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Artifact]) -> QuerySet[Artifact]:
        value = (self.value() or "").strip().lstrip("#")
        if not value:
            return queryset
        return queryset.filter(build_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Artifacts are produced by build steps: read, previewed and downloaded here, never
    edited."""

    list_display = [
        "name", "kind", "language", "build_shown", "step_shown", "agent", "size_shown",
        "created_at", "download",
    ]  # fmt: skip
    list_filter = [
        ("kind", ChoicesDropdownFilter),
        BuildIdFilter,
        ("agent", RelatedDropdownFilter),
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    list_select_related = ["build", "step", "agent"]
    show_full_result_count = False
    search_fields = ["name", "content"]
    search_help_text = "Words in the artifact's name or content."
    fieldsets = [
        (None, {"fields": ["name", "kind", "language", "content_type", "note", "download"]}),
        ("Origin", {"fields": ["build", "step", "agent", "created_at"]}),
        ("File", {"fields": ["stored_as", "size", "checksum"]}),
        ("Preview", {"fields": ["preview"]}),
    ]
    readonly_fields = [
        "name", "kind", "language", "content_type", "note", "download", "build", "step",
        "agent", "created_at", "stored_as", "size", "checksum", "preview",
    ]  # fmt: skip

    @admin.display(description="Build", ordering="build")
    def build_shown(self, artifact: Artifact) -> str:
        return f"#{artifact.build_id}" if artifact.build_id else "-"

    @admin.display(description="Step", ordering="step__position")
    def step_shown(self, artifact: Artifact) -> str:
        step = artifact.step
        return f"{step.position}. {step.name}" if step else "-"

    @admin.display(description="Size", ordering="size")
    def size_shown(self, artifact: Artifact) -> str:
        return f"{artifact.size:,} B"

    @admin.display(description="Stored as")
    def stored_as(self, artifact: Artifact) -> str:
        return artifact.file.name or ""

    @admin.display(description="Download")
    def download(self, artifact: Artifact) -> SafeString:
        url = reverse("artifact-download", kwargs={"pk": artifact.pk})
        return format_html('<a href="{}" class="text-primary-600 underline">Download</a>', url)

    @admin.display(description="Preview")
    def preview(self, artifact: Artifact) -> SafeString:
        return format_html(
            '<style>{}{}</style><div class="artifact-preview">{}</div>',
            mark_safe(highlight_css()),
            mark_safe(PREVIEW_CSS),
            artifact_preview_html(artifact),
        )
