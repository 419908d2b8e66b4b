"""Recent alerts: what was published on the ``alerts`` channel, kept so a page opened later can
list it before the live ones arrive.

The bus keeps nothing, so the dashboard listens: a channel of the channel layer,
``ALERT_LOG_CHANNEL``, is a member of the ``alerts`` group like any WebSocket subscriber, and a
Celery worker reads it (``alert_log_follow``, run by the beat task with the figures, which also
renews the membership) into a Redis list of the latest ``KEPT`` alerts. Every worker may follow
it: each message is read by one of them. While no worker reads, the channel layer holds the
alerts for its ``expiry`` (60 s) and then drops them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer

from apps.core.events import group_name
from apps.core.redis import async_redis, key, redis_client

logger = logging.getLogger(__name__)

ALERT_LOG_CHANNEL = "dashboard.alert-log"
KEPT = 50
SHOWN = 20

_follower: asyncio.Task[None] | None = None


def _list_key() -> str:
    return key("dashboard", "alerts")


def alert_text(event: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """(title, detail, severity) of an alert, as Home shows it (``live.js`` says the same)."""
    provider = str(data.get("provider", ""))
    if event == "circuit.opened":
        return f"Circuit opened: {provider}", str(data.get("error", "")), "error"
    if event == "circuit.closed":
        return f"Circuit closed: {provider}", "", "ok"
    if event == "alert.raised":
        return str(data.get("title", "")), str(data.get("detail", "")), str(data.get("severity"))
    if event == "alert.resolved":
        return f"Resolved: {data.get('title', '')}", "", "ok"
    if event == "alert.acknowledged":
        return f"Acknowledged: {data.get('title', '')}", f"by {data.get('acknowledged_by')}", "info"
    return event, ", ".join(f"{k}: {v}" for k, v in data.items()), "info"


def alert_entry(event: str, data: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    title, detail, severity = alert_text(event, data)
    return {
        "at": (at or datetime.now(UTC)).isoformat(),
        "event": event,
        "title": title,
        "detail": detail,
        "severity": severity,
    }


def alerts_recent(limit: int = SHOWN) -> list[dict[str, Any]]:
    """The latest alerts, newest first; none when Redis does not answer."""
    try:
        raw = redis_client().lrange(_list_key(), 0, limit - 1)
    except Exception:
        logger.warning("could not read the recent alerts", exc_info=True)
        return []
    return [json.loads(item) for item in raw]


async def alert_keep(event: str, data: dict[str, Any]) -> None:
    entry = json.dumps(alert_entry(event, data))
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.lpush(_list_key(), entry)
        pipe.ltrim(_list_key(), 0, KEPT - 1)
        await pipe.execute()


async def _follow() -> None:
    layer = get_channel_layer()
    failing = False
    while True:
        try:
            message = await layer.receive(ALERT_LOG_CHANNEL)
            if message.get("type") == "bus.event":
                await alert_keep(message["event"], message.get("data") or {})
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception:
            if not failing:
                logger.warning("could not keep an alert; trying again", exc_info=True)
            failing = True
            await asyncio.sleep(2.0)


async def alert_log_follow() -> None:
    """Renew the log's membership of the ``alerts`` group and make sure this process reads it
    (on the process's long-lived loop, ``apps.core.runtime``)."""
    global _follower
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_add(group_name("alerts"), ALERT_LOG_CHANNEL)
    if _follower is None or _follower.done():
        _follower = asyncio.ensure_future(_follow())
