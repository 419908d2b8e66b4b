from __future__ import annotations

from django_filters import rest_framework as filters

from apps.core.filters import DateTimeRangeFilter

from .models import Agent, AgentActivity, AgentTask


class AgentFilter(filters.FilterSet):
    class Meta:
        model = Agent
        fields = ["enabled", "role"]


class AgentTaskFilter(filters.FilterSet):
    created_at = DateTimeRangeFilter()

    class Meta:
        model = AgentTask
        fields = ["status", "created_by"]


class AgentActivityFilter(filters.FilterSet):
    class Meta:
        model = AgentActivity
        fields = ["event", "task"]
