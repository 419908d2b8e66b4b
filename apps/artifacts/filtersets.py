from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import Artifact, ArtifactKind


class StableOrderingFilter(filters.OrderingFilter):
    """Orders as asked, then by id (the same direction), so pages never overlap."""

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        qs = super().filter(qs, value)
        if value:
            last = self.get_ordering_value(value[-1])
            qs = qs.order_by(*qs.query.order_by, "-id" if last.startswith("-") else "id")
        return qs


class ArtifactFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=ArtifactKind.choices)
    type = filters.ChoiceFilter(
        field_name="kind", choices=ArtifactKind.choices, label="Kind (same as kind)"
    )
    created_at = DateTimeRangeFilter()
    q = filters.CharFilter(method="search", label="Words in the name or the content")
    ordering = StableOrderingFilter(
        fields=("name", "created_at", "size", "kind"),
        label="name, created_at, size or kind; - first for descending (default -created_at)",
    )

    class Meta:
        model = Artifact
        fields = ["kind", "build", "step", "agent", "language"]

    def search(self, queryset: QuerySet[Artifact], name: str, value: str) -> QuerySet[Artifact]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(content__icontains=value))
