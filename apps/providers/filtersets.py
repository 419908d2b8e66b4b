from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.validators import RegexValidator
from django.db.models import Model, QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from django_filters.constants import EMPTY_VALUES

from apps.core.filters import DateTimeRangeFilter

from .llm.validation import MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH
from .models import LlmCall, LlmModel
from .selectors import CallFilters, llm_call_tagged

TAG_FILTER = RegexValidator(
    rf"^[A-Za-z0-9_.-]{{1,{MAX_TAG_KEY_LENGTH}}}:[A-Za-z0-9_.:/@+-]{{1,{MAX_TAG_VALUE_LENGTH}}}$",
    "A tag reads key:value (team:growth), as the calls' tags allow.",
)


class LlmModelFilter(filters.FilterSet):
    class Meta:
        model = LlmModel
        fields = ["provider", "enabled", "name"]


class LlmCallFilter(filters.FilterSet):
    created_at = DateTimeRangeFilter()
    tag = filters.CharFilter(
        method="filter_tag",
        validators=[TAG_FILTER],
        help_text="Calls with this tag: key:value (team:growth).",
    )

    class Meta:
        model = LlmCall
        fields = [
            "provider_name", "model_name", "status", "entry_point", "stream", "user", "build_id",
            "build_step_id", "agent_id", "workspace", "end_user",
        ]  # fmt: skip

    def filter_tag(self, queryset: QuerySet[LlmCall], name: str, value: str) -> QuerySet[LlmCall]:
        key, _, tag = value.partition(":")
        return llm_call_tagged(calls=queryset, key=key, value=tag)

    def call_filters(self) -> CallFilters | None:
        """The valid filters asked, as columns to exact values and a time range (references by
        their id); None for the tag, the one that is no column (``llm_call_page`` then walks a
        deep offset)."""
        dims: dict[str, Any] = {}
        after = before = None
        for name, value in self.form.cleaned_data.items():
            if value in EMPTY_VALUES:
                continue
            if name == "tag":
                return None
            if name == "created_at":
                after, before = _aware(value.start), _aware(value.stop)
            elif isinstance(value, Model):
                dims[f"{name}_id"] = value.pk
            else:
                dims[name] = value
        return CallFilters(dims, after, before)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and timezone.is_naive(moment):
        return timezone.make_aware(moment, UTC)
    return moment
