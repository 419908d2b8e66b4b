"""Health checks for ``/health``: the providers' last probes, the routing state and the call
records."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.core.health import DEGRADED, DISABLED, ERROR, OK, CheckResult, health_check
from apps.core.redis import redis_client

from .llm.recording.records import call_records_backlog
from .models import CallRecordDeadLetter, HealthStatus, Provider
from .selectors import providers_health


@health_check("providers", needs_database=True)
def providers() -> CheckResult:
    """The enabled providers' health by the rule every page shows (``provider_health``)."""
    enabled = providers_health(list(Provider.objects.filter(enabled=True).order_by("name")))
    if not enabled:
        return CheckResult(DISABLED, "no provider configured")
    healthy = sum(health.healthy for _, _, health in enabled)
    summary = f"{healthy}/{len(enabled)} providers healthy"
    failing = [
        f"{provider.name} ({health.label})"
        for provider, _, health in enabled
        if not health.healthy and health.status != HealthStatus.UNKNOWN
    ]
    details = {
        "providers": {
            provider.name: _provider_detail(provider, circuit, health)
            for provider, circuit, health in enabled
        }
    }
    if failing and len(failing) == len(enabled):
        return CheckResult(ERROR, f"{summary}; failing: {', '.join(failing)}", details)
    if failing:
        return CheckResult(DEGRADED, f"{summary}; failing: {', '.join(failing)}", details)
    unknown = [provider.name for provider, _, health in enabled if not health.healthy]
    return CheckResult(
        OK, f"{summary}; not probed yet: {', '.join(unknown)}" if unknown else summary, details
    )


def _provider_detail(provider: Provider, circuit: Any, health: Any) -> dict[str, Any]:
    """One provider as ``/health/detailed`` shows it: its health by the one rule, its circuit
    and its last probe, which that rule reconciles (an open circuit wins over a good probe)."""
    checked = provider.health_checked_at
    return {
        "health": health.status,
        "label": health.label,
        "circuit": circuit.state if circuit else "closed",
        "circuit_opened_at": circuit.opened_at if circuit else None,
        "last_probe": {
            "status": provider.health_status,
            "latency_ms": provider.health_latency_ms,
            "error": provider.health_error,
            "at": checked.isoformat() if checked else None,
        },
    }


@health_check("routing_state")
def routing_state() -> CheckResult:
    """Whether routing state is shared (Redis answers) or kept by each process on its own."""
    try:
        redis_client().ping()
    except Exception as exc:
        return CheckResult(
            DEGRADED,
            "Redis does not answer: each process routes with its own circuit breakers, rate "
            f"limits and round-robin cursors until it is back ({type(exc).__name__})",
            capabilities={"routing_state": "local"},
        )
    return CheckResult(OK, "shared by every process", capabilities={"routing_state": "shared"})


@health_check("call_records", needs_database=True)
def call_records() -> CheckResult:
    """The queue of call records waiting to be stored, and the records the database refused."""
    refused = CallRecordDeadLetter.objects.count()
    try:
        backlog = call_records_backlog()
    except Exception as exc:
        return CheckResult(
            DEGRADED,
            f"Redis does not answer: each process writes its records to the database itself "
            f"({type(exc).__name__}); {refused} refused",
            {"refused": refused},
            capabilities={"call_records": "direct"},
        )
    details = {
        "waiting_batches": backlog.batches,
        "oldest_seconds": round(backlog.oldest_seconds, 1) if backlog.oldest_seconds else None,
        "refused": refused,
    }
    problems = []
    if (backlog.oldest_seconds or 0) > settings.CALL_RECORDS_BACKLOG_MAX_SECONDS:
        waits = "batch waits" if backlog.batches == 1 else "batches wait"
        problems.append(
            f"{backlog.batches} {waits} to be stored, the oldest for "
            f"{backlog.oldest_seconds:.0f} s: is a Celery worker running?"
        )
    if refused:
        noun = "record was" if refused == 1 else "records were"
        problems.append(f"{refused} {noun} refused by the database: see the admin")
    if problems:
        return CheckResult(DEGRADED, "; ".join(problems), details, {"call_records": "queued"})
    return CheckResult(OK, "stored as they come", details, {"call_records": "queued"})
