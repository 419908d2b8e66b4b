from __future__ import annotations

from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .llm.validation import MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH
from .models import LlmCall, LlmModel
from .selectors import llm_call_tagged

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
