from __future__ import annotations

from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import LlmCall, LlmModel


class LlmModelFilter(filters.FilterSet):
    class Meta:
        model = LlmModel
        fields = ["provider", "enabled", "name"]


class LlmCallFilter(filters.FilterSet):
    created_at = DateTimeRangeFilter()

    class Meta:
        model = LlmCall
        fields = [
            "provider_name", "model_name", "status", "entry_point", "stream", "user", "build_id",
            "build_step_id", "agent_id",
        ]  # fmt: skip
