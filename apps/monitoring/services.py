from __future__ import annotations

import logging
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import django
import psutil  # type: ignore[import-untyped]
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.health import (
    DEGRADED,
    ERROR,
    OK,
    CheckOutcome,
    health_ran,
    registered_checks,
    run_check,
    run_checks,
)
from apps.core.process_report import current_report, process_reports
from apps.core.registry import features
from apps.providers.selectors import provider_availability

from .models import HealthCheckChange, HealthCheckState

logger = logging.getLogger(__name__)

STARTED_AT = time.monotonic()


def check_document(outcome: CheckOutcome, *, details: bool = True) -> dict[str, Any]:
    """One check as ``/health`` (``details`` only when it has some) and the detailed views show
    it."""
    result = outcome.result
    return {
        "status": result.status,
        "message": result.message,
        "latency_ms": round(outcome.latency_ms, 2),
        "critical": outcome.check.critical,
        **({"details": result.details} if details and result.details else {}),
    }


def health_report(
    outcomes: list[CheckOutcome] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The ``/health`` document, and whether every critical check passed."""
    outcomes = run_checks() if outcomes is None else outcomes
    services: dict[str, str] = {}
    checks: dict[str, dict[str, Any]] = {}
    capabilities: dict[str, str] = {}
    healthy = True
    degraded = False
    for outcome in outcomes:
        result = outcome.result
        services[outcome.name] = result.status
        checks[outcome.name] = check_document(outcome)
        capabilities.update(result.capabilities)
        if outcome.failing:
            degraded = True
            healthy = healthy and not (outcome.check.critical and result.status == ERROR)
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


def health_detailed() -> tuple[dict[str, Any], bool]:
    """``/health`` with each check's details, the host and the providers one by one."""
    outcomes = run_checks()
    report, healthy = health_report(outcomes)
    by_name = {outcome.name: outcome.result.details for outcome in outcomes}
    report["system"] = system_figures()
    report["providers"] = by_name.get("providers", {}).get("providers", {})
    return report, healthy


def system_figures() -> dict[str, Any]:
    """The host and this process: memory, CPU, load, disk of the var and media folders."""
    memory = psutil.virtual_memory()
    process = psutil.Process()
    with process.oneshot():
        process_figures = {
            "pid": process.pid,
            "rss_bytes": process.memory_info().rss,
            "threads": process.num_threads(),
            "cpu_seconds": round(sum(process.cpu_times()[:2]), 3),
        }
    return {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "boot_time": datetime.fromtimestamp(psutil.boot_time(), UTC).isoformat(),
        "memory": {
            "total_bytes": memory.total,
            "available_bytes": memory.available,
            "percent": memory.percent,
        },
        "cpu": {
            "cores": psutil.cpu_count() or 1,
            "percent": psutil.cpu_percent(interval=None),
            "load_average": [round(figure, 2) for figure in os.getloadavg()],
        },
        "disk": {
            name: {"path": str(path), **_usage(str(path))}
            for name, path in (("var", settings.VAR_DIR), ("media", settings.MEDIA_ROOT))
            if os.path.exists(path)
        },
        "process": process_figures,
    }


def _usage(path: str) -> dict[str, Any]:
    usage = psutil.disk_usage(path)
    return {"total_bytes": usage.total, "free_bytes": usage.free, "percent": usage.percent}


def health_run() -> list[CheckOutcome]:
    """The periodic run: every check afresh, each state change stored (``HealthCheckChange``,
    with the current state in ``HealthCheckState``), changes older than
    ``ALERT_RETENTION_DAYS`` dropped, then ``health_ran`` sent so alerts follow."""
    outcomes = run_checks(fresh=True)
    now = timezone.now()
    try:
        _states_store(outcomes, now)
    except Exception:  # the database is down: the run still tells the alerts what it saw
        logger.warning("could not store the health checks' states", exc_info=True)
    for receiver, response in health_ran.send_robust(sender=health_run, outcomes=outcomes):
        if isinstance(response, Exception):
            logger.error("a health run receiver failed (%s)", receiver, exc_info=response)
    return outcomes


def _states_store(outcomes: list[CheckOutcome], now: datetime) -> None:
    with transaction.atomic():
        states = {state.check_name: state for state in HealthCheckState.objects.select_for_update()}
        for outcome in outcomes:
            result = outcome.result
            message = result.message[:500]
            state = states.get(outcome.name)
            if state is None or state.status != result.status:
                HealthCheckChange.objects.create(
                    check_name=outcome.name,
                    status=result.status,
                    previous_status=state.status if state else "",
                    message=message,
                    details=result.details,
                    changed_at=now,
                )
            if state is None:
                state = HealthCheckState(check_name=outcome.name, since=now)
            elif state.status != result.status:
                state.since = now
            state.status, state.message = result.status, message
            state.latency_ms, state.checked_at = round(outcome.latency_ms, 2), now
            state.save()
        cutoff = now - timedelta(days=settings.ALERT_RETENTION_DAYS)
        HealthCheckChange.objects.filter(changed_at__lt=cutoff).delete()


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
