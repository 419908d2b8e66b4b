"""The Analytics page: requests, tokens, cost, errors and latency over a range, the top spenders,
and the same figures as CSV. Every figure comes from ``selectors.analytics_overview`` (the
analytics API's sums); the page validates its query with the API's own serializer.

``?fragment=1`` answers the part that changes (totals, chart data, top lists): the page's
script fetches it every 30 seconds while the range ends now, so the open hour updates without
a reload. ``?format=csv`` streams the shown series as CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.template.response import TemplateResponse

from apps.accounts.models import ApiKey, Workspace
from apps.providers.models import EntryPoint
from apps.providers.selectors import model_list, provider_list

from .api.serializers import AnalyticsFiltersInputSerializer
from .selectors import analytics_overview

# A preset range: its length and the period its series is counted by.
RANGES: dict[str, tuple[str, timedelta, str]] = {
    "1h": ("1 hour", timedelta(hours=1), "hour"),
    "24h": ("24 hours", timedelta(days=1), "hour"),
    "7d": ("7 days", timedelta(days=7), "day"),
    "30d": ("30 days", timedelta(days=30), "day"),
    "90d": ("90 days", timedelta(days=90), "week"),
}
DEFAULT_RANGE = "24h"
FILTERS = ("provider", "model", "key", "user", "end_user", "workspace", "tag", "entry_point")
GROUP_TITLES = {
    "model": "Models", "provider": "Providers", "user": "Users", "end_user": "End users",
    "key": "API keys", "workspace": "Workspaces",
}  # fmt: skip
CSV_COLUMNS = (
    "period", "requests", "errors", "input_tokens", "output_tokens", "total_tokens", "cost",
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
)  # fmt: skip
REFRESH_SECONDS = 30


def _period_for(length: timedelta) -> str:
    if length <= timedelta(days=2):
        return "hour"
    return "day" if length <= timedelta(days=120) else "week"


def _query(params: QueryDict) -> tuple[dict[str, Any], dict[str, Any]]:
    """The range and filters asked for, or the errors (field name to message)."""
    chosen = params.get("range") or DEFAULT_RANGE
    data = {name: params[name] for name in FILTERS if params.get(name, "").strip()}
    if chosen == "custom":
        data.update({name: params[name] for name in ("startDate", "endDate") if params.get(name)})
    serializer = AnalyticsFiltersInputSerializer(data=data)
    errors: dict[str, Any] = {}
    if chosen != "custom" and chosen not in RANGES:
        errors["range"] = ["Pick one of the ranges."]
    if not serializer.is_valid():
        errors.update(serializer.errors)
    if errors:
        return {"range": chosen, "raw": data}, errors
    start, end = serializer.validated_data["start"], serializer.validated_data["end"]
    if chosen == "custom":
        if len(params.get("endDate", "")) == 10:
            end += timedelta(days=1)  # the "to" date is included
        if "startDate" not in data:
            start = end - timedelta(days=30)
        period = _period_for(end - start)
    else:
        _, length, period = RANGES[chosen]
        start = end - length
    return {
        "range": chosen,
        "raw": data,
        "start": start,
        "end": end,
        "period": period,
        "live": chosen != "custom" or "endDate" not in data,
        "filters": serializer.filters(),
    }, {}


def _labels(top: dict[str, list[dict[str, Any]]]) -> None:
    """Names for the ids in the top lists (one query per kind, only for the ids shown)."""
    models: dict[str, Any] = {
        "user": get_user_model().objects.values_list("pk", "username"),
        "key": ApiKey.objects.values_list("pk", "name"),
        "workspace": Workspace.objects.values_list("pk", "name"),
    }
    for group, rows in top.items():
        ids = [int(row["key"]) for row in rows if group in models and row["key"] is not None]
        names = dict(models[group].filter(pk__in=ids)) if ids else {}
        for row in rows:
            if row["key"] is None or row["key"] == "":
                row["label"] = "(none)"
            elif group in models:
                name = names.get(int(row["key"]))
                row["label"] = f"{name} (#{row['key']})" if name else f"#{row['key']} (deleted)"
            else:
                row["label"] = row["key"]


STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
EMPTY_POINT = {
    "requests": 0, "errorCount": 0, "inputTokens": 0, "outputTokens": 0, "totalTokens": 0,
    "cost": 0.0, "latency": {"p50": None, "p95": None, "p99": None},
}  # fmt: skip


def _filled(series: list[dict[str, Any]], period: str, start: datetime, end: datetime) -> list:
    """The series with a zero point for each period of the range without calls, so the charts'
    time axis is even (the selectors give only the periods that have calls)."""
    found: dict[str, dict[str, Any] | None] = {point["period"]: point for point in series}
    at = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if period != "hour":
        at = at.replace(hour=0)
    if period == "week":
        at -= timedelta(days=at.weekday())
    points = []
    while at < end:
        key = at.isoformat().replace("+00:00", "Z")
        points.append(found.pop(key, None) or {"period": key, **EMPTY_POINT})
        at += STEPS[period]
    rest = [point for point in found.values() if point is not None]
    return sorted([*points, *rest], key=lambda point: point["period"])


def _chart_data(overview: dict[str, Any]) -> dict[str, Any]:
    series = overview["series"]
    return {
        "period": overview["period"],
        "labels": [point["period"] for point in series],
        "requests": [point["requests"] for point in series],
        "errors": [point["errorCount"] for point in series],
        "inputTokens": [point["inputTokens"] for point in series],
        "outputTokens": [point["outputTokens"] for point in series],
        "cost": [point["cost"] for point in series],
        "p50": [point["latency"]["p50"] for point in series],
        "p95": [point["latency"]["p95"] for point in series],
        "p99": [point["latency"]["p99"] for point in series],
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(overview: dict[str, Any]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for point in overview["series"]:
        latency = point["latency"]
        yield writer.writerow(
            [
                point["period"], point["requests"], point["errorCount"], point["inputTokens"],
                point["outputTokens"], point["totalTokens"], f"{point['cost']:.8f}",
                *("" if latency[p] is None else latency[p] for p in ("p50", "p95", "p99")),
            ]
        )  # fmt: skip


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def analytics(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    query, errors = _query(request.GET)
    context: dict[str, Any] = {
        "query": query,
        "errors": errors,
        "ranges": [(value, title) for value, (title, _, _) in RANGES.items()],
        "group_titles": GROUP_TITLES,
        "refresh_seconds": REFRESH_SECONDS,
    }
    if errors:
        return TemplateResponse(request, "analytics/analytics.html", context, status=400)
    overview = analytics_overview(
        period=query["period"], start=query["start"], end=query["end"], filters=query["filters"]
    )
    overview["series"] = _filled(overview["series"], query["period"], query["start"], query["end"])
    if request.GET.get("format") == "csv":
        name = f"orchestra-analytics-{_stamp(query['start'])}-{_stamp(query['end'])}.csv"
        return StreamingHttpResponse(
            _csv_rows(overview),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    _labels(overview["top"])
    params = request.GET.copy()
    params.pop("fragment", None)
    params.pop("format", None)
    context.update(
        overview=overview,
        chart=_chart_data(overview),
        tops=[(GROUP_TITLES[group], group, rows) for group, rows in overview["top"].items()],
        csv_query=_with(params, format="csv"),
        fragment_query=_with(params, fragment="1"),
    )
    if request.GET.get("fragment"):
        return TemplateResponse(request, "analytics/overview.html", context)
    context.update(
        providers=provider_list().values_list("name", flat=True),
        models=model_list().values_list("name", flat=True).distinct(),
        keys=ApiKey.objects.order_by("name").values_list("pk", "name"),
        users=get_user_model().objects.order_by("username").values_list("pk", "username"),
        workspaces=Workspace.objects.order_by("name").values_list("pk", "name"),
        entry_points=EntryPoint.choices,
    )
    return TemplateResponse(request, "analytics/analytics.html", context)


def _with(params: QueryDict, **extra: str) -> str:
    copy = params.copy()
    for name, value in extra.items():
        copy[name] = value
    return copy.urlencode()
