from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from .registry import registered_checks, run_check

STARTED_AT = time.monotonic()


def health_report() -> tuple[dict[str, Any], bool]:
    """The ``/health`` document, and whether every critical check passed."""
    services: dict[str, str] = {}
    checks: dict[str, dict[str, Any]] = {}
    healthy = True
    degraded = False
    for check in registered_checks():
        result, latency_ms = run_check(check)
        services[check.name] = result.status
        checks[check.name] = {
            "status": result.status,
            "message": result.message,
            "latency_ms": round(latency_ms, 2),
            "critical": check.critical,
        }
        if result.status == "error":
            degraded = True
            healthy = healthy and not check.critical
    report = {
        "status": "ok" if not degraded else ("degraded" if healthy else "error"),
        "timestamp": datetime.now(UTC).isoformat(),
        "uptime": round(time.monotonic() - STARTED_AT, 3),
        "version": settings.VERSION,
        "environment": "development" if settings.DEBUG else "production",
        "services": services,
        "checks": checks,
    }
    return report, healthy


# Optional parts: (name in the answer, the health check telling, what happens without it).
OPTIONAL_PARTS = [
    ("redis", "cache", "none: routing state, the cache and rate limits need Redis"),
    ("channel_layer", "channel_layer", "none: WebSocket replies and live events need it"),
    (
        "celery_worker",
        "celery",
        "WebSocket queries and builds wait in the queue until a worker starts, and LLM call "
        "records wait in Redis until one stores them; the HTTP APIs (/v1, /api/v1/query, "
        "/api/streaming) answer in the web process",
    ),
]


def feature_status() -> dict[str, Any]:
    """Which optional parts are up, and what stands in for each one that is not (seed 004)."""
    from apps.providers.services import provider_availability

    statuses = {check.name: run_check(check)[0].status for check in registered_checks()}
    up = {name: statuses.get(check) == "ok" for name, check, _ in OPTIONAL_PARTS}
    providers, routes, failover = provider_availability()
    return {
        "available": {
            **up,
            "streaming": True,
            "providers": {provider["name"]: provider["available"] for provider in providers},
        },
        "fallbacks": {
            **{name: None if up[name] else without for name, _, without in OPTIONAL_PARTS},
            "provider_failover": failover,
            "models": routes,
        },
        "providers": providers,
    }
