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
