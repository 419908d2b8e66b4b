"""The analytics API: viewers read it. Every figure is summed by the database from the hourly
rollups and the raw records (``selectors``); an export streams rows from a server-side cursor."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from . import serializers as s


def _valid(serializer_class: type[s.AnalyticsFiltersInputSerializer], request: Request) -> Any:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer


class RealtimeApi(APIView):
    """The last hour or day (``timeRange``): requests, tokens, cost, latency, errors, and the
    top models and users by cost."""

    @extend_schema(
        parameters=[s.AnalyticsRealtimeInputSerializer],
        responses=s.AnalyticsRealtimeOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.AnalyticsRealtimeInputSerializer, request)
        answer = selectors.analytics_realtime(
            time_range=query.validated_data["timeRange"], filters=query.filters()
        )
        return Response(s.AnalyticsRealtimeOutputSerializer(answer).data)


class UsageApi(APIView):
    """A time series by ``period`` (hour, day, week, month; UTC) and the range's totals."""

    @extend_schema(
        parameters=[s.AnalyticsUsageInputSerializer], responses=s.AnalyticsUsageOutputSerializer
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.AnalyticsUsageInputSerializer, request)
        data = query.validated_data
        answer = selectors.analytics_usage(
            period=data["period"], start=data["start"], end=data["end"], filters=query.filters()
        )
        return Response(s.AnalyticsUsageOutputSerializer(answer).data)


class CostsApi(APIView):
    """The range's total cost and its breakdown by ``groupBy``, largest first (default: the
    last 30 days). By tag, a call counts under each of its tags."""

    @extend_schema(
        parameters=[s.AnalyticsCostsInputSerializer], responses=s.AnalyticsCostsOutputSerializer
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.AnalyticsCostsInputSerializer, request)
        data = query.validated_data
        answer = selectors.analytics_costs(
            group_by=data["groupBy"], start=data["start"], end=data["end"],
            filters=query.filters(),
        )  # fmt: skip
        return Response(s.AnalyticsCostsOutputSerializer(answer).data)


class PerformanceApi(APIView):
    """Latency and time to first token p50/p95/p99 (ms, from log-bucket histograms: within
    4.9% of the exact nearest-rank percentile) and error rate by provider and model, over the
    range (default: 7 days) and per ``period``."""

    @extend_schema(
        parameters=[s.AnalyticsPerformanceInputSerializer],
        responses=s.AnalyticsPerformanceOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.AnalyticsPerformanceInputSerializer, request)
        data = query.validated_data
        answer = selectors.analytics_performance(
            period=data["period"], start=data["start"], end=data["end"], filters=query.filters()
        )
        return Response(s.AnalyticsPerformanceOutputSerializer(answer).data)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return "" if value is None else value


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])


def _json(columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> Iterator[bytes]:
    yield b"["
    separator = b""
    for row in rows:
        yield separator + orjson.dumps(dict(zip(columns, row, strict=True)), default=str)
        separator = b",\n"
    yield b"]\n"


class ExportNegotiation(DefaultContentNegotiation):
    """``format`` is the export's own parameter, not DRF's renderer override:
    errors are JSON whatever it says."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ExportApi(APIView):
    """The rollups (``source=rollups``, default; per day, or per hour with
    ``granularity=hour``) or the raw call records (``source=raw``) of a range (default: the
    last day), as CSV or a JSON array, streamed from the database in chunks (never held whole
    in memory)."""

    content_negotiation_class = ExportNegotiation

    @extend_schema(
        parameters=[s.AnalyticsExportInputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV rows."),
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
                description="A JSON array of rows.",
            ),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = _valid(s.AnalyticsExportInputSerializer, request)
        data = query.validated_data
        export = {
            "source": data["source"], "start": data["start"], "end": data["end"],
            "filters": query.filters(), "granularity": data["granularity"],
        }  # fmt: skip
        name = f"orchestra-{data['source']}-{data['start']:%Y%m%d%H%M}-{data['end']:%Y%m%d%H%M}"
        if data["format"] == "json":
            body: Iterator[Any] = _json(*selectors.export_rows(**export))
            content_type, name = "application/json", f"{name}.json"
        else:
            copied = selectors.export_csv_copied(**export)
            body = _csv(*selectors.export_rows(**export)) if copied is None else copied
            content_type, name = "text/csv", f"{name}.csv"
        return StreamingHttpResponse(
            body,
            content_type=content_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
