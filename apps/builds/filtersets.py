from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import Build, BuildStatus


class BuildFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=BuildStatus.choices)
    created_at = DateTimeRangeFilter()
    search = filters.CharFilter(method="search_title", label="Part of the title.")

    class Meta:
        model = Build
        fields = ["status", "created_by", "template", "created_at"]

    def search_title(self, queryset: QuerySet[Build], name: str, value: str) -> QuerySet[Build]:
        return queryset.filter(title__icontains=value.strip()) if value.strip() else queryset
