"""The analytics API's query parameters (checked: a bad one is a 400 naming it) and answers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date
from rest_framework import serializers

from apps.core.filters import DateTimeQueryField
from apps.providers.models import CallStatus, EntryPoint

from ..selectors import GROUPS, PERIODS, Filters
from ..sql import SERVICES

TAG = r"^[A-Za-z0-9_.-]{1,32}:[A-Za-z0-9_.:/@+-]{1,64}$"
# Each period's range when the caller gives none.
DEFAULT_RANGE = {
    "hour": timedelta(days=1),
    "day": timedelta(days=30),
    "week": timedelta(weeks=12),
    "month": timedelta(days=365),
}
LONGEST_RANGE = timedelta(days=3660)


class DateOrDateTimeField(DateTimeQueryField):
    """An ISO date-time, or a date (its midnight, UTC)."""

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str) and len(value) == 10:
            try:
                day = parse_date(value)
            except ValueError:
                day = None
            if day is not None:
                return datetime.combine(day, time(), tzinfo=UTC)
        return super().to_internal_value(value)


class AnalyticsFiltersInputSerializer(serializers.Serializer):
    """The filters every analytics endpoint takes, and its range (``startDate`` to
    ``endDate``, default: the endpoint's own)."""

    startDate = DateOrDateTimeField(required=False, help_text="From (a date or ISO datetime).")
    endDate = DateOrDateTimeField(required=False, help_text="Until, excluded (default: now).")
    provider = serializers.CharField(required=False, max_length=64, help_text="A provider's name.")
    model = serializers.CharField(required=False, max_length=200, help_text="A model's name.")
    key = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="An API key's id."
    )
    user = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="A user's id."
    )
    workspace = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="A workspace's id."
    )
    end_user = serializers.CharField(
        required=False, max_length=256, help_text="An end user (OpenAI's 'user')."
    )
    tag = serializers.RegexField(TAG, required=False, help_text="key:value (team:growth).")
    entry_point = serializers.ChoiceField(EntryPoint.choices, required=False)
    service = serializers.ChoiceField(SERVICES, required=False)
    status = serializers.ChoiceField(
        [c for c in CallStatus.choices if c[0] != CallStatus.RUNNING], required=False
    )
    build = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="A build's id."
    )
    agent = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="An agent's id."
    )
    experiment_variant = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="An experiment variant's id."
    )  # fmt: skip

    default_range = timedelta(days=30)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        now = timezone.now()
        end = attrs.get("endDate") or now
        start = attrs.get("startDate") or end - self._default_range(attrs)
        if "endDate" in attrs and "startDate" in attrs and start > end:
            raise serializers.ValidationError({"startDate": "startDate is after endDate."})
        if end - start > LONGEST_RANGE:
            raise serializers.ValidationError({"startDate": "A range is at most ten years."})
        attrs["start"], attrs["end"] = start, max(start, end)
        return attrs

    def _default_range(self, attrs: dict[str, Any]) -> timedelta:
        return self.default_range

    def filters(self) -> Filters:
        data = self.validated_data
        tag = data.get("tag")
        return Filters(
            provider=data.get("provider"), model=data.get("model"), key=data.get("key"),
            user=data.get("user"), workspace=data.get("workspace"),
            entry_point=data.get("entry_point"), service=data.get("service"),
            status=data.get("status"), end_user=data.get("end_user"),
            tag=tuple(tag.split(":", 1)) if tag else None,
            build=data.get("build"), agent=data.get("agent"),
            experiment_variant=data.get("experiment_variant"),
        )  # fmt: skip


class AnalyticsRealtimeInputSerializer(AnalyticsFiltersInputSerializer):
    startDate = None  # type: ignore[assignment]
    endDate = None  # type: ignore[assignment]
    timeRange = serializers.ChoiceField(["hour", "day"], default="hour")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs


class AnalyticsUsageInputSerializer(AnalyticsFiltersInputSerializer):
    period = serializers.ChoiceField(
        PERIODS, default="day", help_text="Default range: a day by hour, 30 days by day, 12 "
        "weeks by week, a year by month."
    )  # fmt: skip

    def _default_range(self, attrs: dict[str, Any]) -> timedelta:
        return DEFAULT_RANGE[attrs.get("period", "day")]


class AnalyticsCostsInputSerializer(AnalyticsFiltersInputSerializer):
    groupBy = serializers.ChoiceField(GROUPS, default="model")


class AnalyticsPerformanceInputSerializer(AnalyticsFiltersInputSerializer):
    period = serializers.ChoiceField(PERIODS, default="day")
    default_range = timedelta(days=7)


class AnalyticsExportInputSerializer(AnalyticsFiltersInputSerializer):
    format = serializers.ChoiceField(["csv", "json"], default="csv")
    # A field named like Field.source: the serializer's metaclass takes it out of the class.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        ["rollups", "raw"], default="rollups",
        help_text="The stored rollups (closed hours) or the raw call records.",
    )  # fmt: skip
    granularity = serializers.ChoiceField(
        ["day", "hour"], default="day",
        help_text="Rollup rows per day (default: a closed day's daily rows, the hourly rows of "
        "the others summed by day) or per hour (the stored hourly rows); source=rollups only.",
    )  # fmt: skip
    default_range = timedelta(days=1)


# --- answers ------------------------------------------------------------------------------------


class AnalyticsFiguresOutputSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    totalTokens = serializers.IntegerField()
    cost = serializers.FloatField()
    errorCount = serializers.IntegerField()
    errorRate = serializers.FloatField()
    avgLatency = serializers.FloatField(allow_null=True)
    avgTimeToFirstToken = serializers.FloatField(allow_null=True)


class AnalyticsBreakdownOutputSerializer(AnalyticsFiguresOutputSerializer):
    key = serializers.CharField(allow_null=True, help_text="The group's value (an id as text).")
    share = serializers.FloatField(help_text="Its share of the total cost (0 to 1).")


class AnalyticsRealtimeOutputSerializer(AnalyticsFiguresOutputSerializer):
    timeRange = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    byModel = AnalyticsBreakdownOutputSerializer(many=True)
    byUser = AnalyticsBreakdownOutputSerializer(many=True)


class AnalyticsUsagePointOutputSerializer(AnalyticsFiguresOutputSerializer):
    period = serializers.DateTimeField()


class AnalyticsUsageTotalsOutputSerializer(serializers.Serializer):
    totalRequests = serializers.IntegerField()
    totalTokens = serializers.IntegerField()
    totalInputTokens = serializers.IntegerField()
    totalOutputTokens = serializers.IntegerField()
    totalCost = serializers.FloatField()
    avgLatency = serializers.FloatField(allow_null=True)
    errorCount = serializers.IntegerField()
    errorRate = serializers.FloatField()
    avgTokensPerRequest = serializers.FloatField(allow_null=True)
    avgCostPerRequest = serializers.FloatField(allow_null=True)


class AnalyticsUsageOutputSerializer(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    series = AnalyticsUsagePointOutputSerializer(many=True)
    totals = AnalyticsUsageTotalsOutputSerializer()


class AnalyticsCostsOutputSerializer(serializers.Serializer):
    groupBy = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    totalCost = serializers.FloatField()
    totalRequests = serializers.IntegerField()
    breakdown = AnalyticsBreakdownOutputSerializer(many=True)


class AnalyticsPercentilesOutputSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class AnalyticsPerformancePointOutputSerializer(serializers.Serializer):
    period = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errorCount = serializers.IntegerField()
    errorRate = serializers.FloatField()
    latency = AnalyticsPercentilesOutputSerializer(
        help_text="Milliseconds, within 4.9% (see the guide)."
    )
    timeToFirstToken = AnalyticsPercentilesOutputSerializer()


class AnalyticsPerformanceGroupOutputSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    requests = serializers.IntegerField()
    errorCount = serializers.IntegerField()
    errorRate = serializers.FloatField()
    latency = AnalyticsPercentilesOutputSerializer()
    timeToFirstToken = AnalyticsPercentilesOutputSerializer()
    series = AnalyticsPerformancePointOutputSerializer(many=True)


class AnalyticsPerformanceOutputSerializer(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    results = AnalyticsPerformanceGroupOutputSerializer(many=True)
