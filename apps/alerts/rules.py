"""The built-in alert rules (thresholds), registered by ``AlertsConfig.ready()``.

Another app adds its own the same way, from its ``ready()``: a budget's soft limit, once an app
keeps budgets, is ``register_alert_rule(AlertRule("budget_soft_limit", ..., evaluate))``
returning a ``Firing`` per budget past its soft limit. The call-record backlog is the
``call_records`` health check's (its ``CALL_RECORDS_BACKLOG_MAX_SECONDS``), so it alerts as a
health check.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from apps.core.registry import AlertRule, Firing
from apps.providers.models import CallStatus, LlmCall, LlmCallAttempt
from apps.providers.selectors import call_latency_percentiles, circuit_breaker_list

from .models import Severity


def _window_start() -> timedelta:
    return timedelta(minutes=settings.ALERT_WINDOW_MINUTES)


def provider_error_rate() -> list[Firing]:
    """Providers whose attempts failed more than ``ALERT_ERROR_RATE`` of the time over the
    window (with at least ``ALERT_MIN_CALLS`` of them): every attempt counts, failovers too."""
    since = timezone.now() - _window_start()
    rows = (
        LlmCallAttempt.objects.filter(call__created_at__gte=since)
        .exclude(status=CallStatus.RUNNING)
        .values("provider_name")
        .annotate(total=Count("id"), errors=Count("id", filter=Q(status=CallStatus.ERROR)))
        .order_by()
    )
    firings = []
    bound = settings.ALERT_ERROR_RATE
    for row in rows:
        if row["total"] < settings.ALERT_MIN_CALLS:
            continue
        rate = row["errors"] / row["total"]
        if rate > bound:
            name = row["provider_name"]
            firings.append(
                Firing(
                    name,
                    f"Error rate of {name}: {rate:.0%}",
                    f"{row['errors']} of {row['total']} attempts failed in the last "
                    f"{settings.ALERT_WINDOW_MINUTES:g} minutes (threshold {bound:.0%}).",
                    Severity.CRITICAL if rate >= 0.5 else Severity.WARNING,
                    {"provider": name, "rate": round(rate, 4), "attempts": row["total"]},
                )
            )
    return firings


def provider_p95_latency() -> list[Firing]:
    """Providers whose successful calls' p95 latency over the window is above
    ``ALERT_P95_LATENCY_MS`` (with at least ``ALERT_MIN_CALLS`` calls)."""
    since = timezone.now() - _window_start()
    calls = LlmCall.objects.filter(created_at__gte=since, status=CallStatus.SUCCESS)
    counts = dict(
        calls.values_list("provider_name")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("provider_name", "n")
    )
    busy = [name for name, n in counts.items() if name and n >= settings.ALERT_MIN_CALLS]
    if not busy:
        return []
    found = call_latency_percentiles(
        calls=calls, groups={name: Q(provider_name=name) for name in busy}, fractions=(0.95,)
    )
    bound = settings.ALERT_P95_LATENCY_MS
    return [
        Firing(
            name,
            f"Slow provider {name}: p95 {p95:.0f} ms",
            f"The p95 latency of {counts[name]} successful calls in the last "
            f"{settings.ALERT_WINDOW_MINUTES:g} minutes is {p95:.0f} ms (threshold {bound:g}).",
            Severity.WARNING,
            {"provider": name, "p95_ms": round(p95, 1)},
        )
        for name, (p95,) in found.items()
        if p95 is not None and p95 > bound
    ]


def circuit_open_too_long() -> list[Firing]:
    """Circuits open for longer than ``ALERT_CIRCUIT_OPEN_MINUTES``: the provider has been
    failing its probes all that time."""
    bound = settings.ALERT_CIRCUIT_OPEN_MINUTES * 60
    now = time.time()
    firings = []
    for view in circuit_breaker_list():
        if view.state == "closed" or view.opened_at is None:
            continue
        open_for = now - view.opened_at
        if open_for > bound:
            firings.append(
                Firing(
                    view.provider,
                    f"Circuit of {view.provider} open for {open_for / 60:.0f} min",
                    f"Requests skip {view.provider} since its circuit opened "
                    f"({view.last_error or 'no error recorded'}); it stays open while its probes "
                    "fail.",
                    Severity.CRITICAL,
                    {"provider": view.provider, "open_seconds": round(open_for)},
                )
            )
    return firings


RULES = (
    AlertRule("provider_error_rate", "A provider's attempts fail more often than "
              "ALERT_ERROR_RATE over ALERT_WINDOW_MINUTES.", provider_error_rate),
    AlertRule("provider_p95_latency", "A provider's p95 latency is above ALERT_P95_LATENCY_MS "
              "over ALERT_WINDOW_MINUTES.", provider_p95_latency),
    AlertRule("circuit_open", "A provider's circuit has been open longer than "
              "ALERT_CIRCUIT_OPEN_MINUTES.", circuit_open_too_long),
)  # fmt: skip
