"""Keeping the hourly rollups equal to the raw call records.

How no record is missed or counted twice: the transaction that stores call records (or changes
them: a stream's final record replacing its ``running`` one, the sweep failing a stale one)
marks their hours in ``PendingHour`` through a call record hook, an upsert that takes the
mark's row lock. ``rollup_hour`` locks the mark first, then recomputes the hour's rollups from
its raw records and deletes the mark, in one transaction. A store that committed before the
lock is read; one still open when the lock is taken waits on the mark until the roll commits,
then marks the hour again, so the next roll reads it. Rolling an hour twice gives the same rows
(it replaces them), which makes every roll, and ``rollup_rebuild``, safe to repeat or to kill.
Running streams are left out until their final record. Hours are rolled once closed; readers
take an open or pending hour from the raw records (``selectors``).

The narrow hourly rollup (hour × provider × model, ``ModelHourlyRollup``) is summed from the
hour's wide rows in the same transaction, and the variant rollup (hour × experiment variant ×
status, ``VariantHourlyRollup``) computed from the hour's calls that carry a variant. Daily
rollups follow the same protocol one level up: rolling an hour marks its day in ``PendingDay``
(an upsert, in the roll's transaction); ``rollup_day`` locks the mark, recomputes the day's
daily rows from its hourly rows and deletes the mark; it runs once the day has closed and none
of its hours is pending. A day whose mark
is still there is read from its hourly rows, so a daily row is only read while it equals them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.providers.models import CallStatus, LlmCall

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
from .sql import service_expression, tag_pairs_sql

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Hours are rolled this long after they close, so the records still in flight at the close
# (shipped every quarter second, stored within seconds) are usually in their first roll.
ROLL_DELAY = timedelta(minutes=1)
DIMENSIONS = (
    "provider_name", "model_name", "api_key_id", "user_id", "workspace_id", "entry_point",
    "endpoint", "service", "status",
)  # fmt: skip


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


SUMMED = ("requests", "errors", "input_tokens", "output_tokens", "cost", "latency_sum_ms")
WITH_TTFT = (*SUMMED, "ttft_count", "ttft_sum_ms")
HISTOGRAMS = ("latency_histogram", "ttft_histogram")
LATENCY = ("latency_histogram",)
MODEL_DIMENSIONS = ("provider_name", "model_name")
VARIANT_DIMENSIONS = ("experiment_variant_id", "status")
# Each rollup: its hourly model, its daily model, its dimensions, its summed figures and
# its histograms.
FAMILIES: tuple[
    tuple[type[Any], type[Any], tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...
] = (
    (HourlyRollup, DailyRollup, DIMENSIONS, WITH_TTFT, HISTOGRAMS),
    (EndUserHourlyRollup, EndUserDailyRollup, ("end_user",), SUMMED, ()),
    (TagHourlyRollup, TagDailyRollup, ("key", "value"), SUMMED, ()),
    (ModelHourlyRollup, ModelDailyRollup, MODEL_DIMENSIONS, WITH_TTFT, HISTOGRAMS),
    (VariantHourlyRollup, VariantDailyRollup, VARIANT_DIMENSIONS, SUMMED, LATENCY),
)


def _summed(
    rows: Any,
    dims: tuple[str, ...],
    figures: tuple[str, ...],
    histogram_names: tuple[str, ...],
    make: Any,
) -> list[Any]:
    """Rollup rows added up per ``dims`` (exact: integers and decimals; histograms bucket by
    bucket), each made by ``make(**dimensions)``."""
    found: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        key = tuple(getattr(row, d) for d in dims)
        total = found.get(key)
        if total is None:
            total = found[key] = make(**dict(zip(dims, key, strict=True)))
            for name in figures:
                setattr(total, name, getattr(row, name))
            for name in histogram_names:
                setattr(total, name, list(getattr(row, name)))
            continue
        for name in figures:
            setattr(total, name, getattr(total, name) + getattr(row, name))
        for name in histogram_names:
            setattr(total, name, histograms.merge(getattr(total, name), getattr(row, name)))
    return list(found.values())


def _upsert_day(day: datetime) -> None:
    """Mark a day for its daily rollups (an upsert that waits for a ``rollup_day`` holding
    the mark, as ``hours_mark`` does for hours)."""
    table = connection.ops.quote_name(PendingDay._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (day, marked_at) VALUES (%s, %s) "
            "ON CONFLICT (day) DO UPDATE SET marked_at = excluded.marked_at",
            [adapt(day), adapt(timezone.now())],
        )


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        moment = parsed
    else:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment.astimezone(UTC)


def hours_mark(created: list[Any]) -> None:
    """The call record hook: mark the hours of the records a transaction writes. An upsert,
    so it waits for a roll of the same hour that holds the mark (see the module's doc)."""
    hours = sorted({hour_of(m) for m in map(_as_datetime, created) if m is not None})
    if not hours:
        return
    table = connection.ops.quote_name(PendingHour._meta.db_table)
    values = ", ".join(["(%s, 1, %s)"] * len(hours))
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    params: list[Any] = []
    for hour in hours:
        params += [adapt(hour), now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (hour, changes, marked_at) VALUES {values} "
            f"ON CONFLICT (hour) DO UPDATE SET changes = {table}.changes + 1, "
            "marked_at = excluded.marked_at",
            params,
        )


def _calls_of(hour: datetime) -> QuerySet[LlmCall]:
    return LlmCall.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR).exclude(
        status=CallStatus.RUNNING
    )


def _figures() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status=CallStatus.ERROR)),
        "input_tokens_sum": Sum("input_tokens"),
        "output_tokens_sum": Sum("output_tokens"),
        "cost_sum": Sum("cost"),
        "latency_sum": Sum("latency_ms"),
    }


def _figure_values(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "requests": row["requests"],
        "errors": row["errors"],
        "input_tokens": row["input_tokens_sum"] or 0,
        "output_tokens": row["output_tokens_sum"] or 0,
        "cost": Decimal(row["cost_sum"] or 0),
        "latency_sum_ms": row["latency_sum"] or 0.0,
    }


def _main_rows(hour: datetime) -> list[HourlyRollup]:
    """The hour's rollup rows: the database groups the calls by key and latency bucket (and
    again by TTFT bucket); the per-bucket sums are gathered into one row per key."""
    calls = _calls_of(hour).annotate(
        service=service_expression(), lat_bucket=histograms.bucket_expression("latency_ms")
    )
    rows: dict[tuple[Any, ...], HourlyRollup] = {}
    for found in calls.values(*DIMENSIONS, "lat_bucket").annotate(**_figures()).order_by():
        key = tuple(found[name] for name in DIMENSIONS)
        row = rows.get(key)
        figures = _figure_values(found)
        if row is None:
            row = rows[key] = HourlyRollup(
                hour=hour, **dict(zip(DIMENSIONS, key, strict=True)), **figures
            )
            row.latency_histogram = histograms.empty()
            row.ttft_histogram = histograms.empty()
        else:
            for name, value in figures.items():
                setattr(row, name, getattr(row, name) + value)
        histograms.add(row.latency_histogram, [(found["lat_bucket"], found["requests"])])
    ttft = (
        _calls_of(hour)
        .filter(time_to_first_token_ms__isnull=False)
        .annotate(
            service=service_expression(),
            ttft_bucket=histograms.bucket_expression("time_to_first_token_ms"),
        )
        .values(*DIMENSIONS, "ttft_bucket")
        .annotate(n=Count("id"), ttft_sum=Sum("time_to_first_token_ms"))
        .order_by()
    )
    for found in ttft:
        row = rows[tuple(found[name] for name in DIMENSIONS)]
        row.ttft_count += found["n"]
        row.ttft_sum_ms += found["ttft_sum"] or 0.0
        histograms.add(row.ttft_histogram, [(found["ttft_bucket"], found["n"])])
    return list(rows.values())


def _end_user_rows(hour: datetime) -> list[EndUserHourlyRollup]:
    found = _calls_of(hour).exclude(end_user="").values("end_user").annotate(**_figures())
    return [
        EndUserHourlyRollup(hour=hour, end_user=row["end_user"], **_figure_values(row))
        for row in found.order_by()
    ]


def _tag_rows(hour: datetime) -> list[TagHourlyRollup]:
    sql, params = tag_pairs_sql(_calls_of(hour))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [
            TagHourlyRollup(hour=hour, key=row["tag_key"], value=row["tag_value"],
                            **_figure_values(row))
            for row in (dict(zip(names, values, strict=True)) for values in cursor.fetchall())
        ]  # fmt: skip


def _variant_figures() -> dict[str, Any]:
    """``_figures`` counting ``status`` rather than ``id``, so PostgreSQL reads the calls'
    covering index (``llmcall_variant_figures``) alone."""
    return {
        **_figures(),
        "requests": Count("status"),
        "errors": Count("status", filter=Q(status=CallStatus.ERROR)),
    }


def _variant_rows(calls: QuerySet[Any], model: type[Any]) -> list[Any]:
    """The variant rollup rows (``model``) of ``calls`` that carry a variant, per hour, variant
    and status: the database groups them by latency bucket too, the buckets are gathered into
    each row's histogram."""
    grouped = (
        calls.filter(experiment_variant_id__isnull=False)
        .annotate(
            in_hour=TruncHour("created_at", tzinfo=UTC),
            lat_bucket=histograms.bucket_expression("latency_ms"),
        )
        .values("in_hour", *VARIANT_DIMENSIONS, "lat_bucket")
        .annotate(**_variant_figures())
        .order_by()
    )
    rows: dict[tuple[Any, ...], Any] = {}
    for found in grouped:
        key = (found["in_hour"], *(found[name] for name in VARIANT_DIMENSIONS))
        figures = _figure_values(found)
        row = rows.get(key)
        if row is None:
            row = rows[key] = model(
                hour=_as_datetime(key[0]), **dict(zip(VARIANT_DIMENSIONS, key[1:], strict=True)),
                **figures, latency_histogram=histograms.empty(),
            )  # fmt: skip
        else:
            for name, value in figures.items():
                setattr(row, name, getattr(row, name) + value)
        histograms.add(row.latency_histogram, [(found["lat_bucket"], found["requests"])])
    return list(rows.values())


def rollup_hour(*, hour: datetime) -> int:
    """Recompute one hour's rollups from its raw records and mark its day; returns the calls
    counted."""
    hour = hour_of(hour)
    with transaction.atomic():
        list(PendingHour.objects.select_for_update().filter(hour=hour))
        HourlyRollup.objects.filter(hour=hour).delete()
        EndUserHourlyRollup.objects.filter(hour=hour).delete()
        TagHourlyRollup.objects.filter(hour=hour).delete()
        ModelHourlyRollup.objects.filter(hour=hour).delete()
        VariantHourlyRollup.objects.filter(hour=hour).delete()
        main = _main_rows(hour)
        HourlyRollup.objects.bulk_create(main, batch_size=1000)
        EndUserHourlyRollup.objects.bulk_create(_end_user_rows(hour), batch_size=1000)
        TagHourlyRollup.objects.bulk_create(_tag_rows(hour), batch_size=1000)
        ModelHourlyRollup.objects.bulk_create(
            _summed(main, MODEL_DIMENSIONS, WITH_TTFT, HISTOGRAMS,
                    lambda **dims: ModelHourlyRollup(hour=hour, **dims)),
            batch_size=1000,
        )  # fmt: skip
        VariantHourlyRollup.objects.bulk_create(
            _variant_rows(_calls_of(hour), VariantHourlyRollup), batch_size=1000
        )
        PendingHour.objects.filter(hour=hour).delete()
        _upsert_day(day_of(hour))
    return sum(row.requests for row in main)


def rollup_day(*, day: datetime) -> bool:
    """Recompute one marked day's daily rollups from its hourly rows; False when the day was
    not marked (another roll built it meanwhile)."""
    day = day_of(day)
    with transaction.atomic():
        if not list(PendingDay.objects.select_for_update().filter(day=day)):
            return False
        for hourly, daily, dims, figures, histogram_names in FAMILIES:
            daily.objects.filter(day=day).delete()
            rows = hourly.objects.filter(hour__gte=day, hour__lt=day + DAY).order_by()
            daily.objects.bulk_create(
                _summed(rows.iterator(chunk_size=2000), dims, figures, histogram_names,
                        lambda daily=daily, **found: daily(day=day, **found)),
                batch_size=1000,
            )  # fmt: skip
        PendingDay.objects.filter(day=day).delete()
    return True


def rollups_roll_days(*, now: datetime | None = None) -> int:
    """Build the daily rollups of every marked day that has closed (its last hour rolled)
    and has no pending hour left; returns how many days were built."""
    closed_before = hour_of((now or timezone.now()) - ROLL_DELAY)
    days = PendingDay.objects.filter(day__lte=closed_before - DAY).values_list("day", flat=True)
    built = 0
    for day in list(days):
        if PendingHour.objects.filter(hour__gte=day, hour__lt=day + DAY).exists():
            continue
        built += rollup_day(day=day)
    return built


def rollups_roll_pending(*, now: datetime | None = None) -> int:
    """Roll every marked hour that closed at least ``ROLL_DELAY`` ago, oldest first, each in
    its own transaction, then the days that closed; returns how many hours were rolled
    (Celery beat runs it)."""
    closed_before = hour_of((now or timezone.now()) - ROLL_DELAY)
    hours = list(PendingHour.objects.filter(hour__lt=closed_before).values_list("hour", flat=True))
    for hour in hours:
        rollup_hour(hour=hour)
    rollups_roll_days(now=now)
    return len(hours)


def _lost_records(hour: datetime) -> bool:
    counted = HourlyRollup.objects.filter(hour=hour).aggregate(n=Sum("requests"))["n"] or 0
    return counted > _calls_of(hour).count()


def rollups_rebuild(*, since: datetime | None = None, now: datetime | None = None) -> int:
    """Recompute the rollups of every closed hour from ``since`` (default: all) from the raw
    records, for existing data or after a fault: each hour that has raw records or rollups.
    Hours before the oldest raw record are left alone (retention deleted their records, the
    rollups stay), and so is the oldest record's hour when its rollups count more calls than
    its records (retention deleted part of it). Returns how many hours were rolled."""
    oldest = LlmCall.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None:
        return 0
    start = hour_of(max(since, oldest) if since else oldest)
    if _lost_records(start):
        start += HOUR
    end = hour_of(now or timezone.now())
    with_records = (
        LlmCall.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(in_hour=TruncHour("created_at"))
        .values_list("in_hour", flat=True)
        .distinct()
        .order_by()
    )
    with_rollups = (
        HourlyRollup.objects.filter(hour__gte=start, hour__lt=end)
        .values_list("hour", flat=True)
        .distinct()
        .order_by()
    )
    hours = sorted(set(with_records) | set(with_rollups))
    for hour in hours:
        rollup_hour(hour=hour)
    rollups_roll_days(now=now)
    return len(hours)


def rollups_fill_variants(*, now: datetime | None = None, models: tuple[Any, ...] = ()) -> int:
    """Recompute the variant rollups of every closed hour that has raw records, and of the
    closed days holding them, in one grouped read of the variants' calls rather than a roll
    per hour: for calls given a variant after their hours were rolled (the migration adding the
    rollup, a benchmark assigning calls). Hours and days still marked pending stay marked (read
    from the raw records or hourly rows, rolled again by beat); the hours retention emptied keep
    their rows, as in ``rollups_rebuild``. The variant rollups' tables are locked (PostgreSQL)
    meanwhile, so that no roll writes them. ``models``: the call, variant hourly and variant
    daily models (a migration's); returns the calls counted."""
    calls, hourly, daily = models or (LlmCall, VariantHourlyRollup, VariantDailyRollup)
    oldest = calls.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None:
        return 0
    start = hour_of(oldest)
    if _lost_records(start):
        start += HOUR
    end = hour_of(now or timezone.now())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (hourly, daily))
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        hourly.objects.filter(hour__gte=start, hour__lt=end).delete()
        in_range = calls.objects.filter(created_at__gte=start, created_at__lt=end)
        rows = _variant_rows(in_range.exclude(status=CallStatus.RUNNING), hourly)
        hourly.objects.bulk_create(rows, batch_size=1000)
        day = day_of(start)
        while day + DAY <= end:
            daily.objects.filter(day=day).delete()
            daily.objects.bulk_create(
                _summed(hourly.objects.filter(hour__gte=day, hour__lt=day + DAY).order_by(),
                        VARIANT_DIMENSIONS, SUMMED, LATENCY,
                        lambda day=day, **found: daily(day=day, **found)),
                batch_size=1000,
            )  # fmt: skip
            day += DAY
    return sum(row.requests for row in rows)
