"""The analytics API's figures, summed by the database from the rollups and the raw records.

A range is split by hour: the closed hours whose rollups are current (not ``PendingHour``)
are read from the rollups, the rest (the open hour, pending hours, partial hours at the
range's ends) from the raw records, and the two sets of sums are added. Filters the rollups
do not carry (end user, tag, build, agent, experiment variant) read the whole range from the
raw records, except that an end user's or a tag's figures alone (``groupBy=end_user`` or
``tag``, filtered by nothing else) come from their own rollups. Running streams are left
out everywhere until their final record.

Ranges of at least ``DAILY_FROM`` whole closed days, asked for by day, week or month (or not
per period), read those days from the daily rollups (each of which replaces 24 hourly rows),
except days still marked ``PendingDay`` or holding a pending hour, read hour by hour.
``performance`` (and the page's latency series), filtered by nothing but provider and model,
reads the narrow rollups (provider × model) instead of the wide ones.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Case, Count, F, JSONField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Trunc
from django.utils import timezone

from apps.providers.models import CallStatus, LlmCall
from apps.providers.selectors import llm_call_tagged

from . import histograms
from .models import (
    DailyRollup,
    EndUserDailyRollup,
    EndUserHourlyRollup,
    HourlyRollup,
    ModelDailyRollup,
    ModelHourlyRollup,
    PendingDay,
    PendingHour,
    TagDailyRollup,
    TagHourlyRollup,
    VariantDailyRollup,
    VariantHourlyRollup,
)
from .sql import copy_csv_sql, service_expression, service_filter, tag_pairs_sql

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Daily rollups are read for ranges holding at least this many whole closed days (shorter ones
# read a few hundred hourly rows at most per key, and answer as fast).
DAILY_FROM = 3
PERIODS = ("hour", "day", "week", "month")
GROUPS = ("model", "provider", "user", "end_user", "key", "workspace", "tag", "service")
# A group's column in the main rollup and in the raw records (``service`` is annotated).
MAIN_COLUMNS = {
    "model": "model_name", "provider": "provider_name", "user": "user_id", "key": "api_key_id",
    "workspace": "workspace_id", "service": "service", "status": "status",
    "entry_point": "entry_point",
}  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """What the caller narrowed the calls to; the first eight are rollup dimensions."""

    provider: str | None = None
    model: str | None = None
    key: int | None = None
    user: int | None = None
    workspace: int | None = None
    entry_point: str | None = None
    service: str | None = None
    status: str | None = None
    end_user: str | None = None
    tag: tuple[str, str] | None = None
    build: int | None = None
    agent: int | None = None
    experiment_variant: int | None = None

    def set(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def raw_only(self) -> bool:
        """Filters the main rollup cannot answer."""
        return bool(self.set() & {"end_user", "tag", "build", "agent", "experiment_variant"})

    def rollup_q(self) -> Q:
        q = Q()
        for name in ("provider", "model", "key", "user", "workspace", "entry_point", "service",
                     "status"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                q &= Q(**{MAIN_COLUMNS.get(name, name): value})
        return q

    def raw(self, calls: QuerySet[LlmCall]) -> QuerySet[LlmCall]:
        q = Q()
        for name in ("provider", "model", "key", "user", "workspace", "entry_point", "status"):
            value = getattr(self, name)
            if value is not None:
                q &= Q(**{MAIN_COLUMNS[name]: value})
        if self.service is not None:
            q &= service_filter(self.service)
        if self.end_user is not None:
            q &= Q(end_user=self.end_user)
        for name, column in (("build", "build_id"), ("agent", "agent_id"),
                             ("experiment_variant", "experiment_variant_id")):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                q &= Q(**{column: value})
        calls = calls.filter(q)
        if self.tag is not None:
            calls = llm_call_tagged(calls=calls, key=self.tag[0], value=self.tag[1])
        return calls


@dataclass(frozen=True)
class Split:
    """Which hours of a range the hourly rollups answer (``rollup``: a filter on ``hour``,
    None for none), which days the daily rollups do (``daily``: a filter on ``day``, None for
    none) and which part the raw records do (``raw``: a filter on ``created_at``)."""

    rollup: Q | None
    raw: Q
    daily: Q | None = None

    def sources(self, hourly: type[Any], daily: type[Any]) -> list[tuple[QuerySet[Any], str]]:
        """The rollup rows to read, each with its time column."""
        found: list[tuple[QuerySet[Any], str]] = []
        if self.rollup is not None:
            found.append((hourly.objects.filter(self.rollup), "hour"))
        if self.daily is not None:
            found.append((daily.objects.filter(self.daily), "day"))
        return found


def _ceil_hour(moment: datetime) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + HOUR


def _ceil_day(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == moment else day + DAY


def split(
    start: datetime, end: datetime, *, now: datetime | None = None, daily: bool = False
) -> Split:
    """``daily``: whether the caller can read days (not asked per hour)."""
    in_range = Q(created_at__gte=start, created_at__lt=end)
    first = _ceil_hour(start)
    last = min(end, (now or timezone.now())).replace(minute=0, second=0, microsecond=0)
    if first >= last:
        return Split(None, in_range)
    pending = list(
        PendingHour.objects.filter(hour__gte=first, hour__lt=last).values_list("hour", flat=True)
    )
    # Disjoint intervals, each an index range (one range with ORs inside it reads it whole).
    outside = Q(created_at__gte=start, created_at__lt=first) | Q(
        created_at__gte=last, created_at__lt=end
    )
    for hour in pending:
        outside |= Q(created_at__gte=hour, created_at__lt=hour + HOUR)
    rollup = Q(hour__gte=first, hour__lt=last)
    if pending:
        rollup &= ~Q(hour__in=pending)
    days = _daily_days(first, last, pending) if daily else None
    if days is None:
        return Split(rollup, outside)
    day_from, day_to, stale = days
    # The hours outside the daily rows' days, as disjoint index ranges too.
    hourly = Q(hour__gte=first, hour__lt=day_from) | Q(hour__gte=day_to, hour__lt=last)
    for day in stale:
        hourly |= Q(hour__gte=day, hour__lt=day + DAY)
    if pending:
        hourly &= ~Q(hour__in=pending)
    daily_q = Q(day__gte=day_from, day__lt=day_to)
    if stale:
        daily_q &= ~Q(day__in=stale)
    return Split(hourly, outside, daily_q)


def _daily_days(
    first: datetime, last: datetime, pending: list[datetime]
) -> tuple[datetime, datetime, list[datetime]] | None:
    """The whole days within ``[first, last)`` (closed hours) and those of them whose daily
    rows are not current (marked, or holding a pending hour); None when too few are."""
    day_from = _ceil_day(first)
    day_to = last.astimezone(UTC).replace(hour=0)
    if (day_to - day_from) < DAILY_FROM * DAY:
        return None
    stale = set(
        PendingDay.objects.filter(day__gte=day_from, day__lt=day_to).values_list("day", flat=True)
    )
    stale |= {h.astimezone(UTC).replace(hour=0) for h in pending if day_from <= h < day_to}
    if (day_to - day_from) - len(stale) * DAY < DAILY_FROM * DAY:
        return None
    return day_from, day_to, sorted(stale)


# --- sums --------------------------------------------------------------------------------------


@dataclass
class Figures:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_sum_ms: float = 0.0
    ttft_count: int = 0
    ttft_sum_ms: float = 0.0

    def add(self, row: dict[str, Any]) -> None:
        self.requests += row["requests"] or 0
        self.errors += row["errors"] or 0
        self.input_tokens += row["input_tokens_sum"] or 0
        self.output_tokens += row["output_tokens_sum"] or 0
        self.cost += Decimal(str(row["cost_sum"] or 0))
        self.latency_sum_ms += row["latency_sum"] or 0.0
        self.ttft_count += row.get("ttft_n") or 0
        self.ttft_sum_ms += row.get("ttft_sum") or 0.0

    def merge(self, other: Figures) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_json(self) -> dict[str, Any]:
        requests = self.requests
        tokens = self.input_tokens + self.output_tokens
        return {
            "requests": requests,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": tokens,
            "cost": float(self.cost),
            "errorCount": self.errors,
            "errorRate": round(self.errors / requests, 6) if requests else 0.0,
            "avgLatency": round(self.latency_sum_ms / requests, 3) if requests else None,
            "avgTimeToFirstToken": (
                round(self.ttft_sum_ms / self.ttft_count, 3) if self.ttft_count else None
            ),
        }


def _rollup_sums() -> dict[str, Any]:
    return {
        "requests": Sum("requests"), "errors": Sum("errors"),
        "input_tokens_sum": Sum("input_tokens"), "output_tokens_sum": Sum("output_tokens"),
        "cost_sum": Sum("cost"), "latency_sum": Sum("latency_sum_ms"),
    }  # fmt: skip


def _raw_sums() -> dict[str, Any]:
    return {
        "requests": Count("id"), "errors": Count("id", filter=Q(status=CallStatus.ERROR)),
        "input_tokens_sum": Sum("input_tokens"), "output_tokens_sum": Sum("output_tokens"),
        "cost_sum": Sum("cost"), "latency_sum": Sum("latency_ms"),
        "ttft_n": Count("time_to_first_token_ms"), "ttft_sum": Sum("time_to_first_token_ms"),
    }  # fmt: skip


def raw_calls(start: datetime, end: datetime, filters: Filters) -> QuerySet[LlmCall]:
    """The raw records of a range the figures count (running streams left out)."""
    calls = LlmCall.objects.filter(created_at__gte=start, created_at__lt=end).exclude(
        status=CallStatus.RUNNING
    )
    return filters.raw(calls.annotate(service=service_expression()))


Key = tuple[Any, ...]


def sums(
    start: datetime,
    end: datetime,
    filters: Filters,
    *,
    period: str | None = None,
    group: str | None = None,
    now: datetime | None = None,
    parts: Split | None = None,
) -> dict[Key, Figures]:
    """The figures of a range per ``(period start, group value)`` (each None when not asked).
    ``parts`` is the range's ``split`` when the caller already has it (several sums of one
    range read it once)."""
    totals: dict[Key, Figures] = defaultdict(Figures)
    rows = _sum_rows(start, end, filters, period=period, group=group, now=now, parts=parts)
    for key, row in rows:
        totals[key].add(row)
    return dict(totals)


def _sum_rows(
    start: datetime,
    end: datetime,
    filters: Filters,
    *,
    period: str | None,
    group: str | None,
    now: datetime | None,
    parts: Split | None = None,
) -> Iterator[tuple[Key, dict[str, Any]]]:
    by_own = group in ("end_user", "tag") and filters.set() <= {group}
    usable = by_own or (group not in ("end_user", "tag") and not filters.raw_only)
    if not usable:
        parts = Split(None, Q())
    elif parts is None:
        parts = split(start, end, now=now, daily=period != "hour")
    raw = raw_calls(start, end, filters).filter(parts.raw)
    if group == "tag":
        yield from _tag_sum_rows(raw)
    else:
        column = "end_user" if group == "end_user" else MAIN_COLUMNS.get(group or "")
        if group == "end_user":
            raw = raw.exclude(end_user="")
        yield from _grouped(raw, "created_at", period, column, _raw_sums())
    if by_own and group == "tag":
        for tags, _ in parts.sources(TagHourlyRollup, TagDailyRollup):
            if filters.tag is not None:
                tags = tags.filter(key=filters.tag[0], value=filters.tag[1])
            for row in tags.values("key", "value").annotate(**_rollup_sums()).order_by():
                yield (None, f"{row['key']}:{row['value']}"), dict(row)
    elif by_own:
        for end_users, time_column in parts.sources(EndUserHourlyRollup, EndUserDailyRollup):
            if filters.end_user is not None:
                end_users = end_users.filter(end_user=filters.end_user)
            yield from _grouped(end_users, time_column, period, "end_user", _rollup_sums())
    else:
        sums_ = {**_rollup_sums(), "ttft_n": Sum("ttft_count"), "ttft_sum": Sum("ttft_sum_ms")}
        for rollups, time_column in parts.sources(HourlyRollup, DailyRollup):
            rollups = rollups.filter(filters.rollup_q())
            yield from _grouped(rollups, time_column, period, MAIN_COLUMNS.get(group or ""), sums_)


def _grouped(
    queryset: QuerySet[Any],
    time_column: str,
    period: str | None,
    column: str | None,
    aggregates: dict[str, Any],
) -> Iterator[tuple[Key, dict[str, Any]]]:
    names = []
    if period:
        queryset = queryset.annotate(at_period=Trunc(time_column, period))
        names.append("at_period")
    if column:
        queryset = queryset.annotate(group_value=F(column))
        names.append("group_value")
    if not names:
        yield (None, None), queryset.aggregate(**aggregates)
        return
    for row in queryset.values(*names).annotate(**aggregates).order_by():
        yield (row.get("at_period"), row.get("group_value")), row


def _tag_sum_rows(raw: QuerySet[LlmCall]) -> Iterator[tuple[Key, dict[str, Any]]]:
    sql, params = tag_pairs_sql(raw)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            yield (None, f"{row['tag_key']}:{row['tag_value']}"), row


# The call columns ``calls_per_period`` counts by, as the ``Filters`` fields they are.
COUNTED_BY = {
    "provider_name": "provider", "model_name": "model", "user_id": "user",
    "workspace_id": "workspace", "entry_point": "entry_point", "status": "status",
    "end_user": "end_user",
}  # fmt: skip


def calls_per_period(
    dims: dict[str, Any], start: datetime, end: datetime, period: str
) -> dict[datetime, int] | None:
    """The calls (running ones left out) matching ``dims`` in each hour or day of
    ``[start, end)``, split as ``sums`` splits a range: the rollups where they are current (the
    narrow ones when only provider and model are asked, an end user's own when only an end user
    is), the rest from the raw records (the ``call_counts`` entry of ``apps.core.registry``).
    None for a filter no rollup keeps, or an end user with another filter: those would be
    counted from the raw records alone."""
    if not set(dims) <= set(COUNTED_BY):
        return None
    filters = Filters(**{COUNTED_BY[name]: value for name, value in dims.items()})
    if filters.raw_only and filters.set() != {"end_user"}:
        return None
    parts = split(start, end, daily=period == "day")
    counts: dict[datetime, int] = defaultdict(int)
    raw = raw_calls(start, end, filters).filter(parts.raw)
    for at, n in _per_period(raw, "created_at", period, Count("id")):
        counts[at] += n
    families: tuple[type, type]
    if filters.end_user is not None:
        families, where = (EndUserHourlyRollup, EndUserDailyRollup), Q(end_user=filters.end_user)
    else:
        families, where = _histogram_rollups(filters), filters.rollup_q()
    for rollups, time_column in parts.sources(*families):
        for at, n in _per_period(rollups.filter(where), time_column, period, Sum("requests")):
            counts[at] += n
    return dict(counts)


def _per_period(
    rows: QuerySet[Any], time_column: str, period: str, count: Any
) -> Iterator[tuple[datetime, int]]:
    found = rows.annotate(at=Trunc(time_column, period)).values("at").annotate(n=count)
    for row in found.order_by():
        yield row["at"], row["n"] or 0


# --- percentiles -----------------------------------------------------------------------------


def histogram_counts(
    start: datetime,
    end: datetime,
    filters: Filters,
    *,
    column: str,
    period: str | None = None,
    groups: tuple[str, ...] = (),
    now: datetime | None = None,
    parts: Split | None = None,
) -> dict[Key, list[int]]:
    """Bucket counts of latency (``column="latency"``) or time to first token (``"ttft"``) per
    ``(period start, *group values)``: the raw records' buckets counted by the database, the
    rollups' stored histograms added to them here."""
    raw_field = "latency_ms" if column == "latency" else "time_to_first_token_ms"
    if filters.raw_only:
        parts = Split(None, Q())
    elif parts is None:
        parts = split(start, end, now=now, daily=period != "hour")
    columns = [MAIN_COLUMNS[g] for g in groups]
    counts: dict[Key, list[int]] = {}

    raw = raw_calls(start, end, filters).filter(parts.raw).filter(**{f"{raw_field}__isnull": False})
    names = list(columns)
    if period:
        raw = raw.annotate(at_period=Trunc("created_at", period))
        names.insert(0, "at_period")
    raw = raw.annotate(bucket=histograms.bucket_expression(raw_field))
    for row in raw.values_list(*names, "bucket").annotate(n=Count("id")).order_by():
        *found, bucket, n = row
        key = tuple(found) if period else (None, *found)
        histograms.add(counts.setdefault(key, histograms.empty()), [(bucket, n)])

    for rollups, time_column in parts.sources(*_histogram_rollups(filters, groups)):
        rollups = rollups.filter(filters.rollup_q())
        if period:
            rollups = rollups.annotate(at_period=Trunc(time_column, period))
        # The stored lists themselves, added here: summing them bucket by bucket in SQL
        # (a row per bucket, grouped) took ten times as long as reading them.
        for histogram, *found in rollups.values_list(f"{column}_histogram", *names).order_by():
            key = tuple(found) if period else (None, *found)
            counts[key] = histograms.merge(counts.get(key), histogram)
    return dict(counts)
    return dict(counts)


def _histogram_rollups(filters: Filters, groups: tuple[str, ...] = ()) -> tuple[type, type]:
    """The narrow rollups (provider × model) when they can answer, else the wide ones."""
    narrow = filters.set() <= {"provider", "model"} and set(groups) <= {"provider", "model"}
    return (ModelHourlyRollup, ModelDailyRollup) if narrow else (HourlyRollup, DailyRollup)


# --- experiment variants ---------------------------------------------------------------------

# The end of a range that has none (calls are recorded when they start, never after "now").
FOREVER = datetime.max.replace(tzinfo=UTC)


def variant_figures(
    *,
    variant_ids: list[int],
    since: datetime,
    until: datetime | None = None,
    now: datetime | None = None,
) -> dict[int, dict[str, Any]]:
    """Each variant's calls in ``[since, until)`` (running streams left out): ``requests``,
    ``successes``, ``errors``, ``input_tokens``, ``output_tokens``, ``cost`` and the successful
    calls' ``latency_p50_ms`` and ``latency_p95_ms``. Split as the other figures are: whole
    closed days and hours from the variant rollups, the rest (partial hours at the ends, the
    open hour, pending hours) from the raw records' covering index, a few queries whatever the
    number of calls. The percentiles are read from the merged histograms: within 4.88%
    (``histograms.ERROR_BOUND``) of the nearest-rank percentile of the same calls."""
    parts = split(since, until or FOREVER, now=now, daily=True)
    found: dict[int, dict[str, Any]] = {}
    latencies: dict[int, list[int]] = defaultdict(histograms.empty)

    def add(variant_id: int, status: str, row: dict[str, Any]) -> None:
        figures = found.setdefault(variant_id, {
            "requests": 0, "successes": 0, "errors": 0, "input_tokens": 0,
            "output_tokens": 0, "cost": Decimal(0),
        })  # fmt: skip
        figures["requests"] += row["requests"]
        figures["successes"] += row["requests"] if status == CallStatus.SUCCESS else 0
        figures["errors"] += row["requests"] if status == CallStatus.ERROR else 0
        figures["input_tokens"] += row["input_tokens"] or 0
        figures["output_tokens"] += row["output_tokens"] or 0
        figures["cost"] += row["cost"] or Decimal(0)

    calls = LlmCall.objects.filter(parts.raw, experiment_variant_id__in=variant_ids)
    for row in _variant_raw_rows(calls.exclude(status=CallStatus.RUNNING)):
        variant_id = row["experiment_variant_id"]
        add(variant_id, row["status"], row)
        if row["status"] == CallStatus.SUCCESS:
            histograms.add(latencies[variant_id], [(row["bucket"], row["requests"])])
    # The rollup rows themselves (a few hundred: days, and the hours at the ends), the
    # histograms of the successful calls' rows only, added up here.
    succeeded = Case(
        When(status=CallStatus.SUCCESS, then=F("latency_histogram")),
        default=Value(None),
        output_field=JSONField(),
    )
    for rollups, _ in parts.sources(VariantHourlyRollup, VariantDailyRollup):
        rows = rollups.filter(experiment_variant_id__in=variant_ids).annotate(counts=succeeded)
        for row in rows.values(
            "experiment_variant_id", "status", "requests", "input_tokens", "output_tokens",
            "cost", "counts",
        ).order_by():  # fmt: skip
            add(row["experiment_variant_id"], row["status"], row)
            if row["counts"]:
                variant_id = row["experiment_variant_id"]
                latencies[variant_id] = histograms.merge(latencies[variant_id], row["counts"])
    for variant_id, figures in found.items():
        counts = latencies.get(variant_id, histograms.empty())
        figures["latency_p50_ms"] = histograms.percentile(counts, 0.5)
        figures["latency_p95_ms"] = histograms.percentile(counts, 0.95)
    return found


def _variant_raw_rows(calls: QuerySet[LlmCall]) -> Iterator[Any]:
    """The calls' figures per variant, status and latency bucket, counting ``status`` rather
    than ``id`` so that PostgreSQL reads their covering index (``llmcall_variant_figures``)
    alone."""
    return (
        calls.annotate(bucket=histograms.bucket_expression("latency_ms"))
        .values("experiment_variant_id", "status", "bucket")
        .annotate(
            requests=Count("status"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by()
        .iterator()
    )


# --- the endpoints' answers ------------------------------------------------------------------

TOP = 10


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _series(found: dict[Key, Figures]) -> list[dict[str, Any]]:
    return [
        {"period": _iso(at), **figures.as_json()}
        for (at, _), figures in sorted(found.items(), key=lambda item: item[0][0])
    ]


def _breakdown(found: dict[Key, Figures], total: Figures, limit: int | None = None) -> list:
    rows = sorted(found.items(), key=lambda item: (-item[1].cost, -item[1].requests))
    return [
        {
            "key": value if value is None or isinstance(value, str) else str(value),
            **figures.as_json(),
            "share": round(float(figures.cost / total.cost), 6) if total.cost else 0.0,
        }
        for (_, value), figures in rows[:limit]
    ]


def _total(start: datetime, end: datetime, filters: Filters, now: datetime) -> Figures:
    return sums(start, end, filters, now=now).get((None, None), Figures())


def totals_json(figures: Figures) -> dict[str, Any]:
    """The usage totals under the analytics API's camelCase names."""
    found = figures.as_json()
    requests = figures.requests
    return {
        "totalRequests": requests,
        "totalTokens": found["totalTokens"],
        "totalInputTokens": figures.input_tokens,
        "totalOutputTokens": figures.output_tokens,
        "totalCost": found["cost"],
        "avgLatency": found["avgLatency"],
        "errorCount": figures.errors,
        "errorRate": found["errorRate"],
        "avgTokensPerRequest": round(found["totalTokens"] / requests, 3) if requests else None,
        "avgCostPerRequest": round(float(figures.cost) / requests, 8) if requests else None,
    }


def analytics_realtime(*, time_range: str, filters: Filters) -> dict[str, Any]:
    """The last hour or day: totals, and the top models and users by cost."""
    now = timezone.now()
    start = now - (HOUR if time_range == "hour" else timedelta(days=1))
    total = _total(start, now, filters, now)
    by_model = sums(start, now, filters, group="model", now=now)
    by_user = sums(start, now, filters, group="user", now=now)
    return {
        "timeRange": time_range,
        "start": _iso(start),
        "end": _iso(now),
        **total.as_json(),
        "byModel": _breakdown(by_model, total, TOP),
        "byUser": _breakdown(by_user, total, TOP),
    }


def analytics_usage(
    *, period: str, start: datetime, end: datetime, filters: Filters
) -> dict[str, Any]:
    now = timezone.now()
    return {
        "period": period,
        "start": _iso(start),
        "end": _iso(end),
        "series": _series(sums(start, end, filters, period=period, now=now)),
        "totals": totals_json(_total(start, end, filters, now)),
    }


def analytics_costs(
    *, group_by: str, start: datetime, end: datetime, filters: Filters
) -> dict[str, Any]:
    """Total cost and its breakdown. By tag, a call counts under each of its tags (the
    breakdown adds up to more than the total when calls carry several)."""
    now = timezone.now()
    total = _total(start, end, filters, now)
    found = sums(start, end, filters, group=group_by, now=now)
    return {
        "groupBy": group_by,
        "start": _iso(start),
        "end": _iso(end),
        "totalCost": float(total.cost),
        "totalRequests": total.requests,
        "breakdown": _breakdown(found, total),
    }


def analytics_performance(
    *, period: str, start: datetime, end: datetime, filters: Filters
) -> dict[str, Any]:
    """Latency and time to first token p50/p95/p99 and the error rate per provider and model,
    over the whole range and per period."""
    now = timezone.now()
    groups = ("provider", "model")
    parts = split(start, end, now=now, daily=period != "hour") if not filters.raw_only else None
    by_pair: dict[tuple[Any, ...], dict[str, Any]] = {}
    for column in ("latency", "ttft"):
        # Per period, and the whole range as their sum (each count is in one period).
        for key, counts in histogram_counts(
            start, end, filters, column=column, period=period, groups=groups, now=now,
            parts=parts,
        ).items():  # fmt: skip
            found = by_pair.setdefault(key[1:], {})
            found.setdefault("series", {}).setdefault(key[0], {})[column] = counts
            found[column] = histograms.merge(found.get(column), counts)
    errors_by_period = _pair_figures(start, end, filters, period, now, parts)
    errors: dict[tuple[Any, ...], Figures] = defaultdict(Figures)
    for key, figures in errors_by_period.items():
        errors[key[1:]].merge(figures)
    results = []
    for pair in sorted(set(by_pair) | set(errors), key=lambda p: tuple(str(v) for v in p)):
        found = by_pair.get(pair, {})
        overall = errors.get(pair, Figures())
        series = []
        periods = set(found.get("series", {})) | {
            at for (at, *rest) in errors_by_period if tuple(rest) == pair
        }
        for at in sorted(periods):
            counts = found.get("series", {}).get(at, {})
            point = errors_by_period.get((at, *pair), Figures())
            series.append(_performance(at, point, counts))
        results.append(
            {
                "provider": pair[0],
                "model": pair[1],
                **_performance(None, overall, found),
                "series": series,
            }
        )
    return {"period": period, "start": _iso(start), "end": _iso(end), "results": results}


def _pair_figures(
    start: datetime,
    end: datetime,
    filters: Filters,
    period: str | None,
    now: datetime,
    parts: Split | None = None,
) -> dict[tuple[Any, ...], Figures]:
    """Figures per (period,) provider and model: two groups, so the two columns are read
    together from each side (``sums`` groups by one)."""
    found: dict[tuple[Any, ...], Figures] = defaultdict(Figures)
    if filters.raw_only:
        parts = Split(None, Q())
    elif parts is None:
        parts = split(start, end, now=now, daily=period != "hour")
    sources: list[tuple[QuerySet[Any], str, dict[str, Any]]] = [
        (raw_calls(start, end, filters).filter(parts.raw), "created_at", _raw_sums())
    ]
    sums_ = {**_rollup_sums(), "ttft_n": Sum("ttft_count"), "ttft_sum": Sum("ttft_sum_ms")}
    for rollups, time_column in parts.sources(*_histogram_rollups(filters)):
        sources.append((rollups.filter(filters.rollup_q()), time_column, sums_))
    for queryset, time_column, aggregates in sources:
        names = ["provider_name", "model_name"]
        if period:
            queryset = queryset.annotate(at_period=Trunc(time_column, period))
            names.insert(0, "at_period")
        for row in queryset.values(*names).annotate(**aggregates).order_by():
            key = tuple(row[n] for n in names)
            found[key].add(row)
    return dict(found)


def _performance(
    at: datetime | None, figures: Figures, counts: dict[str, list[int]]
) -> dict[str, Any]:
    answer = {
        "requests": figures.requests,
        "errorCount": figures.errors,
        "errorRate": figures.as_json()["errorRate"],
        "latency": histograms.percentiles(counts.get("latency", histograms.empty())),
        "timeToFirstToken": histograms.percentiles(counts.get("ttft", histograms.empty())),
    }
    return {"period": _iso(at), **answer} if at is not None else answer


# --- export ------------------------------------------------------------------------------------

EXPORT_CHUNK = 2000
EXPORT_BYTES = 64 * 1024  # what a ``COPY`` export sends at a time
RAW_EXPORT_FIELDS = (
    "id", "created_at", "provider_name", "model_name", "endpoint", "entry_point", "status",
    "error_code", "input_tokens", "output_tokens", "cost", "latency_ms",
    "time_to_first_token_ms", "api_key_id", "user_id", "workspace_id", "end_user", "tags",
    "build_id", "agent_id", "experiment_variant_id", "request_id",
)  # fmt: skip
ROLLUP_EXPORT_FIELDS = (
    "hour", "provider_name", "model_name", "api_key_id", "user_id", "workspace_id",
    "entry_point", "endpoint", "service", "status", "requests", "errors", "input_tokens",
    "output_tokens", "cost", "latency_sum_ms", "ttft_count", "ttft_sum_ms",
)  # fmt: skip
# A rollup row's key after its hour (or day): one row per time and key.
ROLLUP_KEY = ROLLUP_EXPORT_FIELDS[1:10]


def export_rows(
    *, source: str, start: datetime, end: datetime, filters: Filters, granularity: str = "day"
) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
    """The columns and rows of an export, read in chunks from a server-side cursor (constant
    memory). ``rollups`` gives the stored rollups of the closed hours in the range (the rollup
    filters only): per hour (``granularity="hour"``) or per day (``"day"``: a closed day's
    daily rows, the hourly rows of the others summed by day), ordered by time and key; ``raw``
    the call records themselves, running streams included."""
    if source == "rollups":
        parts = [
            rows.iterator(chunk_size=EXPORT_CHUNK)
            for rows in _rollup_export(start, end, filters, granularity)
        ]
        return _rollup_columns(granularity), heapq.merge(*parts, key=lambda row: row[0])
    calls = filters.raw(
        LlmCall.objects.filter(created_at__gte=start, created_at__lt=end).annotate(
            service=service_expression()
        )
    )
    rows = calls.order_by("created_at", "id").values_list(*RAW_EXPORT_FIELDS)
    return RAW_EXPORT_FIELDS, rows.iterator(chunk_size=EXPORT_CHUNK)


def export_csv_copied(
    *, source: str, start: datetime, end: datetime, filters: Filters, granularity: str = "day"
) -> Iterator[bytes] | None:
    """The rollup export's CSV as PostgreSQL's ``COPY`` writes it, the same bytes as Python's
    ``csv`` writer gives ``export_rows`` (which took most of the answer's time, converting and
    writing every cell), streamed a row batch at a time; None where the caller writes
    ``export_rows`` itself (another database, the raw records)."""
    if source != "rollups" or connection.vendor != "postgresql":
        return None
    sources = _rollup_export(start, end, filters, granularity)
    sql, params = copy_csv_sql(
        [rows.order_by() for rows in sources],
        _rollup_columns(granularity),
        [HourlyRollup._meta.get_field(name) for name in ROLLUP_EXPORT_FIELDS],
        order=len(ROLLUP_KEY) + 1,
    )
    return _copied(sql, params)


def _copied(sql: str, params: tuple[Any, ...]) -> Iterator[bytes]:
    """``COPY`` reads one row at a time: its ``\\n`` ends become Python's ``\\r\\n``."""
    batch = bytearray()
    with connection.cursor() as cursor, cursor.copy(sql, params) as copy:
        for row in copy:
            batch += row[:-1]
            batch += b"\r\n"
            if len(batch) >= EXPORT_BYTES:
                yield bytes(batch)
                batch.clear()
    if batch:
        yield bytes(batch)


def _rollup_columns(granularity: str) -> tuple[str, ...]:
    return ROLLUP_EXPORT_FIELDS if granularity == "hour" else ("day", *ROLLUP_EXPORT_FIELDS[1:])


def _rollup_export(
    start: datetime, end: datetime, filters: Filters, granularity: str
) -> list[QuerySet[Any]]:
    """The rows of a rollup export (tuples of ``ROLLUP_EXPORT_FIELDS``, the first one the
    hour or the day), ordered by time and key, from one or two sources that never share a
    time: per hour the hourly rows; per day the daily rows of the whole days built since their
    hours were last rolled, and the hourly rows of the rest summed by the database."""
    hourly = HourlyRollup.objects.filter(hour__gte=start, hour__lt=end).filter(filters.rollup_q())
    if granularity == "hour":
        return [hourly.order_by("hour", *ROLLUP_KEY).values_list(*ROLLUP_EXPORT_FIELDS)]
    day_from, day_to = (
        _ceil_day(start),
        end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    daily = None
    if day_from < day_to:
        stale = list(
            PendingDay.objects.filter(day__gte=day_from, day__lt=day_to).values_list(
                "day", flat=True
            )
        )
        covered = Q(hour__gte=day_from, hour__lt=day_to)
        for day in stale:
            covered &= ~Q(hour__gte=day, hour__lt=day + DAY)
        hourly = hourly.exclude(covered)
        daily = DailyRollup.objects.filter(day__gte=day_from, day__lt=day_to).filter(
            filters.rollup_q()
        )
        if stale:
            daily = daily.exclude(day__in=stale)
    summed = (
        hourly.annotate(day=Trunc("hour", "day"))
        .values("day", *ROLLUP_KEY)
        .annotate(
            requests_=Sum("requests"),
            errors_=Sum("errors"),
            input_tokens_=Sum("input_tokens"),
            output_tokens_=Sum("output_tokens"),
            cost_=Sum("cost"),
            latency_sum_ms_=Sum("latency_sum_ms"),
            ttft_count_=Sum("ttft_count"),
            ttft_sum_ms_=Sum("ttft_sum_ms"),
        )  # fmt: skip
        .order_by("day", *ROLLUP_KEY)
        .values_list(
            "day",
            *ROLLUP_KEY,
            "requests_",
            "errors_",
            "input_tokens_",
            "output_tokens_",
            "cost_",
            "latency_sum_ms_",
            "ttft_count_",
            "ttft_sum_ms_",
        )  # fmt: skip
    )
    if daily is None:
        return [summed]
    return [
        summed,
        daily.order_by("day", *ROLLUP_KEY).values_list("day", *ROLLUP_EXPORT_FIELDS[1:]),
    ]


# --- the Analytics page --------------------------------------------------------------------------

PAGE_GROUPS = ("model", "provider", "user", "end_user", "key", "workspace")


def analytics_overview(
    *, period: str, start: datetime, end: datetime, filters: Filters, top: int = TOP
) -> dict[str, Any]:
    """What the Analytics page shows, from the same sums as the API: the range's totals, a
    series per period (with the latency p50/p95/p99 of each period, merged from the
    histograms) and the ``top`` values of each of ``PAGE_GROUPS`` by cost."""
    now = timezone.now()
    parts = split(start, end, now=now, daily=period != "hour")
    by_period = sums(start, end, filters, period=period, now=now, parts=parts)
    total = Figures()
    for figures in by_period.values():  # each row counted in one period: their sum is exact
        total.merge(figures)
    series = _series(by_period)
    latency = histogram_counts(
        start, end, filters, column="latency", period=period, now=now, parts=parts
    )
    for point in series:
        at = datetime.fromisoformat(point["period"])
        point["latency"] = histograms.percentiles(latency.get((at,), histograms.empty()))
    return {
        "period": period,
        "start": _iso(start),
        "end": _iso(end),
        "totals": {**total.as_json(), **totals_json(total)},
        "series": series,
        "top": {
            group: _breakdown(found, total, top)
            for group, found in _page_group_sums(start, end, filters, now, parts).items()
        },
    }


def _page_group_sums(
    start: datetime, end: datetime, filters: Filters, now: datetime, parts: Split
) -> dict[str, dict[Key, Figures]]:
    """The figures per value of each of ``PAGE_GROUPS``. Those that are columns of the main
    rollup are read together (one query per source grouped by all of them, added up per group
    here) instead of one ``sums`` each; end users from their own rollup."""
    together = tuple(g for g in PAGE_GROUPS if g in MAIN_COLUMNS)
    if filters.raw_only:
        found = {g: sums(start, end, filters, group=g, now=now, parts=parts) for g in together}
    else:
        found = _sums_by_each(start, end, filters, together, parts)
    found["end_user"] = sums(start, end, filters, group="end_user", now=now, parts=parts)
    return {group: found[group] for group in PAGE_GROUPS}


def _sums_by_each(
    start: datetime, end: datetime, filters: Filters, groups: tuple[str, ...], parts: Split
) -> dict[str, dict[Key, Figures]]:
    columns = [MAIN_COLUMNS[group] for group in groups]
    found: dict[str, dict[Key, Figures]] = {group: defaultdict(Figures) for group in groups}
    sources = [(raw_calls(start, end, filters).filter(parts.raw), _raw_sums())]
    sums_ = {**_rollup_sums(), "ttft_n": Sum("ttft_count"), "ttft_sum": Sum("ttft_sum_ms")}
    for rollups, _ in parts.sources(HourlyRollup, DailyRollup):
        sources.append((rollups.filter(filters.rollup_q()), sums_))
    for queryset, aggregates in sources:
        for row in queryset.values(*columns).annotate(**aggregates).order_by():
            for group, column in zip(groups, columns, strict=True):
                found[group][(None, row[column])].add(row)
    return {group: dict(figures) for group, figures in found.items()}


def spend_this_month(
    *, key: int | None = None, user: int | None = None, now: datetime | None = None
) -> Decimal:
    """An API key's or a user's cost since the first of this month (UTC), from the analytics
    sums."""
    now = now or timezone.now()
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return _total(start, now, Filters(key=key, user=user), now).cost
