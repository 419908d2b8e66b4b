from __future__ import annotations

from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import ApprovalRequest, ApprovalStatus, RiskLevel


class ApprovalFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=ApprovalStatus.choices)
    risk_level = filters.MultipleChoiceFilter(choices=RiskLevel.choices)
    created_at = DateTimeRangeFilter()

    class Meta:
        model = ApprovalRequest
        fields = ["status", "kind", "risk_level", "reference", "requested_by", "created_at"]
