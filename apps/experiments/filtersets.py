from __future__ import annotations

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import CanaryRollout, CanaryStatus, Experiment, ExperimentStatus


class ExperimentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=ExperimentStatus.choices)
    created_at = DateTimeRangeFilter()
    search = filters.CharFilter(method="search_text", label="Part of the name or description.")

    class Meta:
        model = Experiment
        fields = ["status", "created_by", "created_at"]

    def search_text(
        self, queryset: QuerySet[Experiment], name: str, value: str
    ) -> QuerySet[Experiment]:
        text = value.strip()
        if not text:
            return queryset
        return queryset.filter(Q(name__icontains=text) | Q(description__icontains=text))


class CanaryFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=CanaryStatus.choices)

    class Meta:
        model = CanaryRollout
        fields = ["status", "experiment"]
