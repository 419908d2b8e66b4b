"""The built-in health checks: database, cache, channel layer and Celery workers."""

from __future__ import annotations

import math
import uuid

import psycopg
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.core.beat import beat_heartbeat_age
from apps.core.health import CheckResult, health_check


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


@health_check("celery", cache_seconds=10.0)
def celery_workers() -> CheckResult:
    """Cached briefly: a broadcast ping waits its whole timeout when no worker answers."""
    from celery import current_app as app

    with app.connection_for_write() as connection:
        try:  # fail fast: a ping through a broker that is down retries for seconds
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
        except Exception as exc:
            return CheckResult("error", f"the Celery broker does not answer ({type(exc).__name__})")
    replies = app.control.ping(timeout=1.0, limit=1)
    if not replies:
        return CheckResult("error", "no worker answered")
    return CheckResult("ok", f"{len(replies)} worker(s) answered")


@health_check("beat")
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
