"""The built-in health checks: database, Redis, cache, channel layer, Celery workers and beat,
and the host (disk space of the var and media folders, memory, CPU, through psutil)."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.core.beat import beat_heartbeat_age
from apps.core.health import DEGRADED, OK, CheckResult, health_check
from apps.core.redis import redis_client, text


@health_check("database", critical=True)
def database() -> CheckResult:
    """PostgreSQL through a connection of its own, bounded by ``HEALTH_DATABASE_TIMEOUT``: a
    pooled one could wait for a busy pool, or for a database that does not answer, longer
    than a load balancer waits for ``/health``."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return CheckResult("ok", connection.vendor)
    timeout = settings.HEALTH_DATABASE_TIMEOUT
    params = {
        name: value
        for name, value in connection.get_connection_params().items()
        if name in ("dbname", "user", "password", "host", "port", "sslmode", "service")
    }
    try:
        with psycopg.connect(
            **params,
            connect_timeout=max(1, math.ceil(timeout)),
            options=f"-c statement_timeout={int(timeout * 1000)}",
            autocommit=True,
        ) as direct:
            direct.execute("SELECT 1")
    except psycopg.Error as error:
        return CheckResult("error", f"the database does not answer ({type(error).__name__})")
    return CheckResult("ok", connection.vendor)


@health_check("cache")
def cache_roundtrip() -> CheckResult:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        return CheckResult("error", "value written was not read back")
    cache.delete(key)
    return CheckResult("ok")


@health_check("channel_layer")
def channel_layer() -> CheckResult:
    """A round trip through the channel layer: WebSocket replies and live events need it."""
    layer = get_channel_layer()
    if layer is None:
        return CheckResult("disabled", "no channel layer configured")

    async def roundtrip() -> bool:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        return (await layer.receive(channel))["type"] == "health.ping"

    try:
        ok = async_to_sync(roundtrip)()
    except Exception as exc:
        return CheckResult(
            "error",
            f"{type(exc).__name__}: {exc}; WebSocket queries and live events are unavailable",
            capabilities={"websocket_relay": "down"},
        )
    relay = "up" if ok else "down"
    return CheckResult(
        "ok" if ok else "error", type(layer).__name__, capabilities={"websocket_relay": relay}
    )


@health_check("celery", title="Celery workers", cache_seconds=10.0)
def celery_workers() -> CheckResult:
    """Cached briefly: a broadcast ping waits its whole timeout when no worker answers."""
    from celery import current_app as app

    with app.connection_for_write() as connection:
        try:  # fail fast: a ping through a broker that is down retries for seconds
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
        except Exception as exc:
            return CheckResult("error", f"the Celery broker does not answer ({type(exc).__name__})")
    replies = app.control.ping(timeout=1.0)
    if not replies:
        return CheckResult("error", "no worker answered", {"workers": 0})
    names = sorted(name for reply in replies for name in reply)
    return CheckResult(
        "ok", f"{len(names)} worker(s) answered", {"workers": len(names), "names": names}
    )


@health_check("beat", title="Celery beat")
def beat() -> CheckResult:
    """Celery beat's heartbeat: without beat nothing runs on a schedule (sweeps, approval
    expiry and escalation, canaries, provider probes, Home's figures)."""
    bound = settings.BEAT_HEARTBEAT_MAX_AGE
    try:
        age = beat_heartbeat_age()
    except Exception as exc:
        return CheckResult("error", f"beat's heartbeat cannot be read ({type(exc).__name__})")
    if age is None:
        return CheckResult("error", "Celery beat has left no heartbeat: is it running?")
    if age > bound:
        return CheckResult(
            "error",
            f"Celery beat last ticked {age:.0f} s ago (more than {bound:g} s): sweeps, approval "
            "expiry and canaries are not running",
            {"age_seconds": round(age, 1)},
        )
    return CheckResult("ok", f"ticked {age:.1f} s ago", {"age_seconds": round(age, 1)})


@health_check("redis")
def redis_server() -> CheckResult:
    """Redis itself: the platform goes on without it (each process on its own state, records
    written directly), so it is degraded, not an error; the checks of what needs it say more."""
    try:
        info = redis_client().info()
    except Exception as exc:
        return CheckResult(DEGRADED, f"Redis does not answer ({type(exc).__name__})")
    details = {
        "version": text(info.get("redis_version", "")),
        "used_memory_bytes": info.get("used_memory"),
        "connected_clients": info.get("connected_clients"),
    }
    return CheckResult(OK, f"Redis {details['version']}", details)


def _disk(path: Path) -> dict[str, Any]:
    while not path.exists() and path != path.parent:
        path = path.parent  # a folder not made yet lives on its parent's disk
    usage = psutil.disk_usage(str(path))
    return {
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "free_percent": round(100.0 - usage.percent, 1),
    }


@health_check("disk", cache_seconds=10.0)
def disk() -> CheckResult:
    """Free space where the platform writes: the var folder (SQLite, logs, metrics) and the
    media folder (artifacts)."""
    bound = settings.HEALTH_DISK_FREE_MIN_PERCENT
    folders = {"var": Path(settings.VAR_DIR), "media": Path(settings.MEDIA_ROOT)}
    details = {name: {"path": str(path), **_disk(path)} for name, path in folders.items()}
    short = [
        f"{name} has {figures['free_percent']:g}% free"
        for name, figures in details.items()
        if figures["free_percent"] < bound
    ]
    if short:
        return CheckResult(DEGRADED, f"{'; '.join(short)} (less than {bound:g}%)", details)
    lowest = min(float(figures["free_percent"]) for figures in details.values())
    return CheckResult(OK, f"at least {lowest:g}% free", details)


@health_check("memory", cache_seconds=5.0)
def memory() -> CheckResult:
    """The host's memory in use (psutil), and this process's resident size."""
    host = psutil.virtual_memory()
    details = {
        "percent": host.percent,
        "available_bytes": host.available,
        "total_bytes": host.total,
        "process_rss_bytes": psutil.Process().memory_info().rss,
    }
    bound = settings.HEALTH_MEMORY_MAX_PERCENT
    if host.percent > bound:
        return CheckResult(DEGRADED, f"{host.percent:g}% in use (more than {bound:g}%)", details)
    return CheckResult(OK, f"{host.percent:g}% in use", details)


_cpu_primed = False


@health_check("cpu", title="CPU", cache_seconds=5.0)
def cpu() -> CheckResult:
    """The host's CPU use since the previous run of this check in this process (the first run
    measures a fifth of a second), with the load averages."""
    global _cpu_primed
    percent = psutil.cpu_percent(interval=None if _cpu_primed else 0.2)
    _cpu_primed = True
    load = [round(figure, 2) for figure in psutil.getloadavg()]
    details = {"percent": percent, "cores": psutil.cpu_count() or 1, "load_average": load}
    bound = settings.HEALTH_CPU_MAX_PERCENT
    if percent > bound:
        return CheckResult(DEGRADED, f"{percent:g}% busy (more than {bound:g}%)", details)
    return CheckResult(OK, f"{percent:g}% busy", details)
