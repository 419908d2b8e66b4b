"""Reads of providers, models, circuit breakers and call records."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, connections
from django.db.models import CharField, Count, F, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404
from django.utils import timezone

from apps.core.aggregates import Percentile, has_percentile, percentile, without_jit
from apps.core.registry import CallCounts, call_counts
from apps.core.runtime import run_sync

from .llm.config import RoutingPolicy
from .llm.engine import current_routing_config
from .llm.recording.records import call_records_backlog as call_records_backlog
from .llm.routing.breakers import HALF_OPEN, OPEN, BreakerView
from .llm.routing.state import routing_state
from .models import CallStatus, Endpoint, HealthStatus, LlmCall, LlmModel, Provider


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.all()


def provider_get(*, pk: int) -> Provider:
    return get_object_or_404(Provider, pk=pk)


def provider_get_by_name(*, name: str) -> Provider:
    return get_object_or_404(Provider, name=name)


def model_list() -> QuerySet[LlmModel]:
    return LlmModel.objects.select_related("provider")


def model_get(*, pk: int) -> LlmModel:
    return get_object_or_404(model_list(), pk=pk)


def llm_call_list() -> QuerySet[LlmCall]:
    return LlmCall.objects.all()


# --- reading the call records at any size ------------------------------------------------------
#
# The call table grows to millions of rows: its lists are ordered by ``(created_at, id)``, which
# one index serves (a page, the next page after a row, the rows at an offset read from the index
# alone), and they are counted exactly only when that reads few rows.

CALL_ORDER = ("-created_at", "-id")
EXACT_COUNT_UP_TO = 1_000  # more than this is counted by the planner's estimate (PostgreSQL)
CALLS_PAGE_WINDOW = timedelta(hours=24)  # the Calls page's default time window


def llm_call_count(*, calls: QuerySet[LlmCall]) -> tuple[int, bool]:
    """How many ``calls`` there are, and whether that is exact. Counted exactly up to
    ``EXACT_COUNT_UP_TO`` (no more than one row past it is read); past that, on PostgreSQL,
    the answer is the planner's estimate (``pg_class.reltuples`` for the whole table,
    ``EXPLAIN``'s row estimate for a filtered set), as an exact count would read every row
    counted. Elsewhere (SQLite in ``make run``) the count is exact."""
    calls = calls.order_by()
    if connections[calls.db].vendor != "postgresql":
        return calls.count(), True
    counted = calls[: EXACT_COUNT_UP_TO + 1].count()
    if counted <= EXACT_COUNT_UP_TO:
        return counted, True
    query = calls.values("pk").query
    with connections[calls.db].cursor() as cursor:
        if not query.where:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [LlmCall._meta.db_table],
            )
            estimate = int(cursor.fetchone()[0])
        else:
            sql, params = query.sql_with_params()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            estimate = int(plan[0]["Plan"]["Plan Rows"])
    # At least what was seen: a table never analysed estimates -1, a stale estimate less.
    return max(estimate, counted), False


def llm_call_after(*, calls: QuerySet[LlmCall], created_at: datetime, pk: Any) -> QuerySet[LlmCall]:
    """The ``calls`` after the one at ``(created_at, pk)`` in ``CALL_ORDER`` (newest first): a
    range of the ``(created_at, id)`` index (the ties of ``created_at`` filtered by id)."""
    return calls.filter(created_at__lte=created_at).filter(
        Q(created_at__lt=created_at) | Q(id__lt=pk)
    )


def llm_call_before(
    *, calls: QuerySet[LlmCall], created_at: datetime, pk: Any
) -> QuerySet[LlmCall]:
    """The ``calls`` before the one at ``(created_at, pk)`` in ``CALL_ORDER`` (newer ones)."""
    return calls.filter(created_at__gte=created_at).filter(
        Q(created_at__gt=created_at) | Q(id__gt=pk)
    )


@dataclass(frozen=True)
class CallFilters:
    """What a list of calls is narrowed to: call columns to exact values (``dims``) and a
    range of ``created_at`` (``after`` and ``before``, both included). A deep offset of a list
    that is exactly the calls so narrowed seeks its hour by their counts (``llm_call_seek``)."""

    dims: dict[str, Any]
    after: datetime | None = None
    before: datetime | None = None


def llm_call_page(
    *,
    calls: QuerySet[LlmCall],
    offset: int,
    limit: int,
    filters: CallFilters | None = None,
    seek_from: int | None = None,
) -> list[LlmCall]:
    """``limit`` calls from ``offset`` in ``CALL_ORDER``. From ``seek_from`` (``SEEK_FROM``)
    on, when ``calls`` are exactly those ``filters`` narrow the table to, the offset is first
    moved to the hour holding it (``llm_call_seek``). The ids of the page are read first (from
    the ``(created_at, id)`` index alone when unfiltered: the rows skipped are not fetched),
    then the page's rows by id."""
    if filters is not None and offset >= (SEEK_FROM if seek_from is None else seek_from):
        seek = llm_call_seek(calls=calls, offset=offset, filters=filters)
        if seek is not None:
            before, offset = seek
            calls = calls.filter(created_at__lt=before)
    ordered = calls.order_by(*CALL_ORDER)
    if offset < EXACT_COUNT_UP_TO:
        return list(ordered[offset : offset + limit])
    ids = list(ordered.values_list("pk", flat=True)[offset : offset + limit])
    found = {call.pk: call for call in calls.filter(pk__in=ids).order_by()}
    return [found[pk] for pk in ids if pk in found]


# --- deep offsets, by the calls' counts per hour ------------------------------------------------
#
# An offset of millions would walk millions of index entries. The calls are counted per day,
# then per hour, by a source of ``apps.core.registry.call_counts`` (the analytics rollups, exact
# for the closed hours they keep current); the hours they cannot vouch for are counted here
# from the records themselves: the open hour (and any later), the partial hours at the ends of a
# ``created_at`` range, and the oldest record's hour with all before it (retention deletes the
# oldest records first, an hour's part at a time, and keeps the rollups, which are not read
# for those hours). Running calls, which the rollups leave out, are counted from their own
# index. The page is then the calls before the end of the hour holding the offset, from the
# offset within that hour. The counts hold for records stored as the recorder stores them (which
# marks their hours to roll again): records written otherwise need ``rollups_rebuild`` first.

HOUR = timedelta(hours=1)
SEEK_FROM = EXACT_COUNT_UP_TO  # offsets from here on seek when they can
PERIODS = {"day": timedelta(days=1), "hour": HOUR}


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _period(moment: datetime, period: str) -> datetime:
    hour = _hour(moment)
    return hour.replace(hour=0) if period == "day" else hour


def llm_call_seek(
    *, calls: QuerySet[LlmCall], offset: int, filters: CallFilters, now: datetime | None = None
) -> tuple[datetime, int] | None:
    """Where the call at ``offset`` of ``calls`` (exactly those ``filters`` narrow the table
    to) is: the end of its hour, and its offset among the calls before that. None when no
    count source answers for ``filters`` (the plain offset is then walked) or the offset lies
    within the hours counted from the records anyway (the newest)."""
    sources = call_counts.values()
    oldest = (
        LlmCall.objects.using(calls.db)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if not sources or oldest is None:
        return None
    start, end = _hour(oldest) + HOUR, _hour(now or timezone.now())
    if filters.after is not None:
        start = max(start, _hour(filters.after - timedelta(microseconds=1)) + HOUR)
    if filters.before is not None:
        end = min(end, _hour(filters.before))
    if start >= end:
        return None
    newer = calls.filter(created_at__gte=end).count()
    if offset < newer:
        return None
    for source in sources:
        found = source(filters.dims, start, end, "day")
        if found is not None:
            running = _running(calls, filters, start, end)
            return _locate(source, filters.dims, found, running, start, end, offset - newer)
    return None


def _running(
    calls: QuerySet[LlmCall], filters: CallFilters, start: datetime, end: datetime
) -> Counter[datetime]:
    """The running ``calls`` of ``[start, end)`` per hour, from their own index (none when
    another status is asked: PostgreSQL would start parallel workers to find out)."""
    if filters.dims.get("status", CallStatus.RUNNING) != CallStatus.RUNNING:
        return Counter()
    running = calls.filter(status=CallStatus.RUNNING, created_at__gte=start, created_at__lt=end)
    return Counter(_hour(moment) for moment in running.values_list("created_at", flat=True))


def _locate(
    source: CallCounts,
    dims: dict[str, Any],
    found: dict[datetime, int],
    running: Counter[datetime],
    start: datetime,
    end: datetime,
    position: int,
    period: str = "day",
) -> tuple[datetime, int]:
    """The hour of ``[start, end)`` holding the call at ``position`` (from the newest), by
    ``found``, the source's counts per ``period``, plus the ``running`` calls per hour; a day
    holding it is counted again by hour. Past them all: the calls before ``start``."""
    totals = _totals(found, running, start, end, period)
    for at in sorted(totals, reverse=True):
        if position >= totals[at]:
            position -= totals[at]
            continue
        first, last = max(at, start), min(at + PERIODS[period], end)
        if period == "hour":
            return last, position
        by_hour = source(dims, first, last, "hour")
        # Counted again meanwhile (a roll, a late call): the offset within the day is exact.
        if by_hour is None or _totals(by_hour, running, first, last, "hour").total() != totals[at]:
            return last, position
        return _locate(source, dims, by_hour, running, first, last, position, "hour")
    return start, position


def _totals(
    found: dict[datetime, int],
    running: Counter[datetime],
    start: datetime,
    end: datetime,
    period: str,
) -> Counter[datetime]:
    totals: Counter[datetime] = Counter()
    for at, count in found.items():
        totals[_period(at, period)] += count
    for hour, count in running.items():
        if start <= hour < end:
            totals[_period(hour, period)] += count
    return totals


def llm_call_window_start(*, now: datetime | None = None) -> datetime:
    """Where the Calls page's default window starts (``CALLS_PAGE_WINDOW`` before now)."""
    return (now or timezone.now()) - CALLS_PAGE_WINDOW


def call_id(text: str) -> uuid.UUID | None:
    """``text`` as a call id (a UUID), else None."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


def llm_call_tagged(*, calls: QuerySet[LlmCall], key: str, value: str) -> QuerySet[LlmCall]:
    """The calls tagged ``key=value``. PostgreSQL is asked ``tags @> {key: value}``, which a
    GIN index on ``tags`` serves once there is one; other databases read the key."""
    if connection.vendor == "postgresql":
        return calls.filter(tags__contains={key: value})
    # Cast: an exact lookup on the key itself compares with the value as JSON, which SQLite
    # refuses ("malformed JSON").
    tag_value = Cast(KeyTextTransform(key, "tags"), CharField())
    return calls.alias(tag_value=tag_value).filter(tag_value=value)


def llm_call_get(*, pk: Any) -> LlmCall:
    return get_object_or_404(LlmCall.objects.prefetch_related("attempts"), pk=pk)


def public_model_list(*, endpoint: str = Endpoint.CHAT) -> list[dict[str, Any]]:
    """Each public model name that serves ``endpoint``, with the providers serving it, as the
    router sees them (its config snapshot: enabled providers and models; no query unless the
    config changed)."""
    config = run_sync(current_routing_config())
    listed = []
    for name in config.public_models():
        providers = sorted({d.provider.name for d in config.deployments_for(name, None, endpoint)})
        if providers:
            listed.append({"name": name, "providers": providers})
    return listed


def routing_policy_current() -> RoutingPolicy:
    """The routing settings every process applies now (strategy, default model, ...)."""
    return run_sync(current_routing_config()).policy


LATENCY_SAMPLE = 10_000


def call_latency_percentiles(
    *, calls: QuerySet[LlmCall], groups: dict[str, Q], fractions: tuple[float, ...]
) -> dict[str, tuple[float | None, ...]]:
    """The one way to compute latency percentiles (ms) of the successful ``calls``, for each
    group (a filter of them): PostgreSQL's ``percentile_cont``, all groups in one query;
    elsewhere (SQLite in ``make run``) the same interpolation over each group's latest
    ``LATENCY_SAMPLE`` successful calls, one query per group. Home uses it, and the Calls page
    off PostgreSQL (on PostgreSQL its totals' query asks the same ``percentile_cont``)."""
    succeeded = calls.filter(status=CallStatus.SUCCESS).order_by()
    if has_percentile(succeeded):
        aggregates = {
            f"{name}_{index}": Percentile(F("latency_ms"), fraction, filter=where)
            for name, where in groups.items()
            for index, fraction in enumerate(fractions)
        }
        row = succeeded.aggregate(**aggregates) if aggregates else {}
        return {
            name: tuple(row[f"{name}_{index}"] for index in range(len(fractions)))
            for name in groups
        }
    result = {}
    for name, where in groups.items():
        latest = succeeded.filter(where).order_by("-created_at")[:LATENCY_SAMPLE]
        values = list(latest.values_list("latency_ms", flat=True))
        result[name] = tuple(percentile(values, fraction) for fraction in fractions)
    return result


@dataclass(frozen=True)
class CallTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    errors: int
    finished: int
    p50_ms: float | None  # of successful calls (``call_latency_percentiles``); None before any

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float:
        """Errors among finished calls (running streams left out), as Home counts them."""
        return self.errors / self.finished if self.finished else 0.0

    @property
    def error_percent(self) -> float:
        return self.error_rate * 100


def llm_call_totals(*, calls: QuerySet[LlmCall]) -> CallTotals:
    """Count, tokens, cost and errors of ``calls``, and the median latency of the successful
    ones: on PostgreSQL all in one aggregate query, which reads the calls once (the Calls
    page's 24 hours are some 55,000 rows at 5 million calls in 90 days), not JIT-compiled
    (``without_jit``); elsewhere the median is ``call_latency_percentiles``'s, a second query."""
    aggregates: dict[str, Any] = {
        "calls": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
        "errors": Count("id", filter=Q(status=CallStatus.ERROR)),
        "finished": Count("id", filter=~Q(status=CallStatus.RUNNING)),
    }
    calls = calls.order_by()
    if has_percentile(calls):
        succeeded = Q(status=CallStatus.SUCCESS)
        aggregates["p50_ms"] = Percentile(F("latency_ms"), 0.5, filter=succeeded)
        with without_jit(calls.db):
            row = calls.aggregate(**aggregates)
        p50_ms = row["p50_ms"]
    else:
        row = calls.aggregate(**aggregates)
        ((p50_ms,),) = call_latency_percentiles(
            calls=calls, groups={"all": Q()}, fractions=(0.5,)
        ).values()
    return CallTotals(
        calls=row["calls"] or 0,
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cost=row["cost"] or Decimal(0),
        errors=row["errors"] or 0,
        finished=row["finished"] or 0,
        p50_ms=p50_ms,
    )


async def _breaker_views(names: list[str]) -> list[BreakerView]:
    policy = (await current_routing_config()).policy
    return await routing_state().breakers.views(names, policy)


@dataclass(frozen=True)
class ProviderHealth:
    """A provider's health as every page and ``/health`` show it (``status`` picks the pill's
    colour: ``ok``, ``warning``, ``error`` or ``unknown``)."""

    status: str
    label: str

    @property
    def healthy(self) -> bool:
        return self.status == HealthStatus.OK

    @property
    def failing(self) -> bool:
        return self.status == HealthStatus.ERROR


def provider_health(provider: Provider, circuit: str) -> ProviderHealth:
    """The one rule for a provider's health: an open circuit means unhealthy, whatever the last
    probe or Test said (requests skip it); a half-open one is not healthy until its probe
    succeeds; otherwise the last probe or Test decides, and never probed is unknown."""
    if circuit == OPEN:
        return ProviderHealth(HealthStatus.ERROR, "circuit open")
    if circuit == HALF_OPEN:
        return ProviderHealth("warning", "circuit half-open")
    return ProviderHealth(provider.health_status, str(provider.health_status))


def providers_health(
    providers: list[Provider] | None = None,
) -> list[tuple[Provider, BreakerView | None, ProviderHealth]]:
    """Each provider (every one, by name, unless given) with its circuit as every process sees
    it and its health: one query, one Redis read."""
    if providers is None:
        providers = list(Provider.objects.order_by("name"))
    circuits = {
        view.provider: view for view in circuit_breaker_list(names=[p.name for p in providers])
    }
    rows = []
    for provider in providers:
        circuit = circuits.get(provider.name)
        rows.append(
            (provider, circuit, provider_health(provider, circuit.state if circuit else "closed"))
        )
    return rows


def circuit_breaker_list(*, names: list[str] | None = None) -> list[BreakerView]:
    """The circuit of every provider (or of those named), as every process shares it."""
    if names is None:
        names = list(Provider.objects.order_by("name").values_list("name", flat=True))
    return run_sync(_breaker_views(names))


def provider_availability() -> tuple[list[dict[str, Any]], dict[str, list[str]], bool]:
    """Each provider's availability, each public model's failover order, and whether failover
    is on (for the feature status)."""
    providers = []
    for provider, circuit, health in providers_health(
        list(Provider.objects.order_by("priority", "name"))
    ):
        providers.append(
            {
                "name": provider.name,
                "enabled": provider.enabled,
                "health": provider.health_status,
                "circuit": circuit.state if circuit else "closed",
                "available": provider.enabled and not health.failing,
            }
        )
    available = {p["name"] for p in providers if p["available"]}
    routes: dict[str, list[str]] = {}
    for model in LlmModel.objects.filter(enabled=True).select_related("provider"):
        for name in model.public_names:
            if model.provider.name in available:
                routes.setdefault(name, []).append(model.provider.name)
    policy = run_sync(current_routing_config()).policy
    return providers, routes, policy.fallback_enabled


SPEND_COLUMNS = {"api_key": "api_key_id", "user": "user_id", "workspace": "workspace_id"}


def call_spend(*, scope: str, target: str, since: datetime, until: datetime) -> Decimal:
    """What the calls of one budget target (an API key, user or workspace id, or an end user's
    string) cost from ``since`` to ``until``: one aggregate query over the call records."""
    column = SPEND_COLUMNS.get(scope, "end_user")
    value: Any = target if column == "end_user" else int(target)
    calls = LlmCall.objects.filter(created_at__gte=since, created_at__lt=until, **{column: value})
    return calls.aggregate(total=Sum("cost"))["total"] or Decimal(0)
