"""Home's figures: requests, tokens, cost, error rate and latency over the last hour and day,
active streams, open circuits and the health of each service.

Bounded whatever the number of call records: the windows are read through the ``created_at``
index in one aggregate query, and the latency percentiles come from PostgreSQL's
``percentile_cont`` in one more, or, on a database without it (SQLite in ``make run``), from a
sample: the latest ``LATENCY_SAMPLE`` successful calls of each window (all of them when
fewer), sorted in Python (``call_latency_percentiles``; the Calls page's median is the same).
Latency is that of successful calls; the error rate is errors among finished calls (cancelled
ones included, running streams not).

``figures_snapshot()`` is what pages render first: the figures the beat task published last
(kept in the cache for ``SNAPSHOT_SECONDS``), or fresh ones when there are none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from apps.core.health import registered_checks, run_check
from apps.providers.models import CallStatus, EntryPoint, LlmCall
from apps.providers.selectors import call_latency_percentiles, circuit_breaker_list

logger = logging.getLogger(__name__)

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
SNAPSHOT_KEY = "dashboard:figures"
SNAPSHOT_SECONDS = 20


@dataclass
class Window:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0
    errors: int = 0
    finished: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None


@dataclass
class Figures:
    at: str
    windows: dict[str, Window]
    active_streams: dict[str, int]
    open_circuits: list[dict[str, str]]
    health: dict[str, dict[str, str]]
    partial: list[str] = field(default_factory=list)  # parts that could not be read

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["display"] = display(self)
        return data


def _starts(now: datetime) -> dict[str, datetime]:
    return {name: now - length for name, length in WINDOWS.items()}


def window_totals(now: datetime) -> dict[str, Window]:
    """One aggregate query over the day's records (the hour is a filtered part of it)."""
    starts = _starts(now)
    aggregates: dict[str, Any] = {}
    for name, start in starts.items():
        within = Q(created_at__gte=start)
        aggregates |= {
            f"{name}_requests": Count("id", filter=within),
            f"{name}_tokens": Sum(F("input_tokens") + F("output_tokens"), filter=within),
            f"{name}_cost": Sum("cost", filter=within),
            f"{name}_errors": Count("id", filter=within & Q(status=CallStatus.ERROR)),
            f"{name}_finished": Count("id", filter=within & ~Q(status=CallStatus.RUNNING)),
        }
    row = LlmCall.objects.filter(created_at__gte=min(starts.values())).aggregate(**aggregates)
    windows = {}
    for name in starts:
        finished = row[f"{name}_finished"] or 0
        errors = row[f"{name}_errors"] or 0
        windows[name] = Window(
            requests=row[f"{name}_requests"] or 0,
            tokens=row[f"{name}_tokens"] or 0,
            cost=float(row[f"{name}_cost"] or Decimal(0)),
            errors=errors,
            finished=finished,
            error_rate=errors / finished if finished else 0.0,
        )
    return windows


def window_latencies(now: datetime) -> dict[str, tuple[float | None, float | None]]:
    """(p50, p95) of successful calls' latency per window, in ms."""
    starts = _starts(now)
    found = call_latency_percentiles(
        calls=LlmCall.objects.filter(created_at__gte=min(starts.values())),
        groups={name: Q(created_at__gte=start) for name, start in starts.items()},
        fractions=(0.5, 0.95),
    )
    return {name: (p50, p95) for name, (p50, p95) in found.items()}


def active_streams(now: datetime) -> dict[str, int]:
    """Streams running now, by entry point: the SSE API's from its registry (every web
    process's, in Redis), the others' (WebSocket, OpenAI-compatible) from the records streams
    leave as ``running`` when they start."""
    from apps.gateway.selectors import sse_stream_count

    stale = now - timedelta(seconds=settings.CALL_RECORD_STALE_SECONDS)
    running = (
        LlmCall.objects.filter(status=CallStatus.RUNNING, stream=True, created_at__gte=stale)
        .exclude(entry_point=EntryPoint.SSE)
        .values("entry_point")
        .annotate(count=Count("id"))
        .order_by()
    )
    counts = {EntryPoint.SSE.value: sse_stream_count()}
    for row in running:
        counts[row["entry_point"]] = row["count"]
    counts["total"] = sum(counts.values())
    return counts


def open_circuits() -> list[dict[str, str]]:
    """Providers whose circuit is not closed (open, or half-open while probing)."""
    return [
        {
            "provider": view.provider,
            "state": view.state,
            "label": view.state.replace("_", "-"),
            "error": view.last_error,
        }
        for view in circuit_breaker_list()
        if view.state != "closed"
    ]


def health() -> dict[str, dict[str, str]]:
    """Each registered health check's status and message."""
    results = {}
    for check in registered_checks():
        result, _ = run_check(check)
        results[check.name] = {"status": result.status, "message": result.message}
    return results


def compute_figures(now: datetime | None = None) -> Figures:
    now = now or timezone.now()
    windows = window_totals(now)
    for name, (p50, p95) in window_latencies(now).items():
        windows[name].p50_ms, windows[name].p95_ms = p50, p95
    partial = []
    streams: dict[str, int] = {}
    circuits: list[dict[str, str]] = []
    try:
        streams = active_streams(now)
    except Exception:
        logger.warning("could not count the active streams", exc_info=True)
        partial.append("active_streams")
    try:
        circuits = open_circuits()
    except Exception:
        logger.warning("could not read the circuit breakers", exc_info=True)
        partial.append("open_circuits")
    return Figures(
        at=now.isoformat(),
        windows=windows,
        active_streams=streams,
        open_circuits=circuits,
        health=health(),
        partial=partial,
    )


def figures_remember(data: dict[str, Any]) -> None:
    try:
        cache.set(SNAPSHOT_KEY, {"data": data, "stored": time.time()}, SNAPSHOT_SECONDS)
    except Exception:
        logger.warning("could not keep the dashboard figures in the cache", exc_info=True)


def figures_snapshot() -> dict[str, Any]:
    """The latest published figures if recent, else fresh ones (then kept for the next page)."""
    try:
        kept = cache.get(SNAPSHOT_KEY)
    except Exception:
        kept = None
    if kept and time.time() - kept["stored"] < SNAPSHOT_SECONDS:
        data: dict[str, Any] = kept["data"]
        return data
    data = compute_figures().as_data()
    figures_remember(data)
    return data


# --- how the figures read ------------------------------------------------------------------


def number(value: int) -> str:
    return f"{value:,}"


def money(value: float) -> str:
    return f"${value:,.4f}" if 0 < value < 1 else f"${value:,.2f}"


def rate(value: float) -> str:
    return f"{value * 100:.1f}%"


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def display(figures: Figures) -> dict[str, str]:
    """Each figure as the page shows it, keyed as the page's ``data-figure`` attributes: the
    server formats once, for the first render and for every live update alike."""
    shown: dict[str, str] = {}
    for name, window in figures.windows.items():
        shown |= {
            f"{name}.requests": number(window.requests),
            f"{name}.tokens": number(window.tokens),
            f"{name}.cost": money(window.cost),
            f"{name}.error_rate": rate(window.error_rate),
            f"{name}.errors": number(window.errors),
            f"{name}.p50": duration(window.p50_ms),
            f"{name}.p95": duration(window.p95_ms),
        }
    streams = figures.active_streams
    shown["streams.total"] = number(streams["total"]) if streams else "—"
    shown["circuits.open"] = (
        "—" if "open_circuits" in figures.partial else number(len(figures.open_circuits))
    )
    return shown
