from __future__ import annotations

from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import Alert, AlertStatus, Severity


class AlertFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = filters.MultipleChoiceFilter(choices=Severity.choices)
    raised_at = DateTimeRangeFilter()

    class Meta:
        model = Alert
        fields = ["status", "severity", "kind", "cause", "raised_at"]
