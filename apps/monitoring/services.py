from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from apps.core.health import DEGRADED, ERROR, OK, CheckResult, registered_checks, run_check
from apps.core.process_report import current_report, process_reports
from apps.core.registry import features
from apps.providers.selectors import provider_availability

STARTED_AT = time.monotonic()


def health_report() -> tuple[dict[str, Any], bool]:
    """The ``/health`` document, and whether every critical check passed."""
    services: dict[str, str] = {}
    checks: dict[str, dict[str, Any]] = {}
    capabilities: dict[str, str] = {}
    healthy = True
    degraded = False
    for check in sorted(registered_checks(), key=lambda check: check.needs_database):
        if check.needs_database and not healthy:
            result, latency_ms = CheckResult(ERROR, "not run: the database does not answer"), 0.0
        else:
            result, latency_ms = run_check(check)
        services[check.name] = result.status
        checks[check.name] = {
            "status": result.status,
            "message": result.message,
            "latency_ms": round(latency_ms, 2),
            "critical": check.critical,
            **({"details": result.details} if result.details else {}),
        }
        capabilities.update(result.capabilities)
        if result.status in (ERROR, DEGRADED):
            degraded = True
            healthy = healthy and not (check.critical and result.status == ERROR)
    report = {
        "status": OK if not degraded else (DEGRADED if healthy else ERROR),
        "timestamp": datetime.now(UTC).isoformat(),
        "uptime": round(time.monotonic() - STARTED_AT, 3),
        "version": settings.VERSION,
        "environment": settings.ENVIRONMENT,
        "capabilities": capabilities,
        "services": services,
        "checks": checks,
    }
    return report, healthy


# Optional parts: (name in the answer, the health check telling, what happens without it).
OPTIONAL_PARTS = [
    (
        "redis",
        "cache",
        "each process routes with circuit breakers, limits and cursors of its own and writes its "
        "call records to the database itself; SSE streams are listed per process",
    ),
    ("channel_layer", "channel_layer", "none: WebSocket replies and live events need it"),
    (
        "celery_worker",
        "celery",
        "WebSocket queries and builds wait in the queue until a worker starts, and LLM call "
        "records wait in Redis until one stores them; the HTTP APIs (/v1, /api/v1/query, "
        "/api/streaming) answer in the web process",
    ),
    (
        "celery_beat",
        "beat",
        "nothing runs on a schedule: stale build steps and agent tasks are not swept, approvals "
        "neither expire nor escalate, canaries do not advance, providers are not probed",
    ),
]


def feature_status() -> dict[str, Any]:
    """Which optional parts are up, and what stands in for each one that is not."""
    statuses = {check.name: run_check(check)[0].status for check in registered_checks()}
    up = {name: statuses.get(check) == "ok" for name, check, _ in OPTIONAL_PARTS}
    providers, routes, failover = provider_availability()
    return {
        "available": {
            **up,
            "streaming": True,
            **{name: feature.enabled() for name, feature in features.items()},
            "providers": {provider["name"]: provider["available"] for provider in providers},
        },
        "fallbacks": {
            **{name: None if up[name] else without for name, _, without in OPTIONAL_PARTS},
            "provider_failover": failover,
            "models": routes,
        },
        "providers": providers,
    }


# --- connection pools of every process ----------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


def _summed(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of one pool in several processes: numbers added (a size of None, no limit, stays
    None), other values kept when they agree."""
    total: dict[str, Any] = {}
    for one in figures:
        for name, value in one.items():
            if name not in total:
                total[name] = value
            elif isinstance(value, bool) or not isinstance(value, int | None):
                total[name] = value if total[name] == value else None
            else:
                total[name] = None if value is None or total[name] is None else total[name] + value
    return total


def connection_stats() -> dict[str, Any]:
    """The pools of every process heard from in the last few ``PROCESS_STATS_SECONDS`` (web
    processes, Celery workers, beat; as each last reported them, this one as of now), and
    their sum. Without Redis, only this process's (``shared`` false)."""
    reports = process_reports()
    here = current_report()
    processes = [report for report in reports or [] if report["process"] != here["process"]]
    processes = sorted([*processes, here], key=lambda r: (r["role"], r["host"], r["pid"]))
    now = time.time()
    by_pool: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for report in processes:
        for group, pools in report["pools"].items():
            for name, figures in pools.items():
                by_pool.setdefault((group, name), []).append(figures)
    total: dict[str, dict[str, Any]] = {}
    for (group, name), figures in sorted(by_pool.items()):
        total.setdefault(group, {})[name] = _summed(figures)
    return {
        "interval_seconds": settings.PROCESS_STATS_SECONDS,
        "shared": reports is not None,
        "processes": [
            {
                **report,
                "started_at": _iso(report["started_at"]),
                "updated_at": _iso(report["updated_at"]),
                "age_seconds": round(max(0.0, now - report["updated_at"]), 3),
            }
            for report in processes
        ],
        "total": {"processes": len(processes), "pools": total},
    }
