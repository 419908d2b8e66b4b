"""The event bus: the one way the project publishes live events to WebSocket subscribers.

Every event type is registered here with its channel and the fields its data must carry, so a
publisher cannot send a shape the dashboard does not expect. ``publish`` (sync: Celery tasks,
views) and ``apublish`` (async: the gateway, consumers) send through the channel layer to the
group of the channel; every web process's consumers subscribed to it relay the event.

Subscribers see ``{"type": "event", "channel", "event", "data"}``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer

from apps.core.runtime import run_sync

logger = logging.getLogger(__name__)

CHANNELS = ("builds", "approvals", "logs", "metrics", "alerts")
BUILD_CHANNEL = re.compile(r"^build:(\d{1,18})$")


@dataclass(frozen=True)
class EventType:
    channel: str  # a channel name, or "build:" for the per-build channels
    fields: dict[str, type | tuple[type, ...]]
    description: str


EVENT_TYPES: dict[str, EventType] = {
    "circuit.opened": EventType(
        "alerts", {"provider": str, "error": str}, "A provider's circuit opened."
    ),
    "circuit.closed": EventType("alerts", {"provider": str}, "A provider's circuit closed."),
    "provider.health": EventType(
        "metrics",
        {"provider": str, "status": str, "latency_ms": (int, float)},
        "A provider health probe finished.",
    ),
    "log.record": EventType(
        "logs", {"level": str, "logger": str, "message": str}, "A log line worth watching."
    ),
    "alert.raised": EventType(
        "alerts", {"title": str, "severity": str}, "An operator-facing alert."
    ),
    "build.updated": EventType(
        "builds", {"id": int, "status": str}, "A build changed (also sent to build:<id>)."
    ),
    "approval.updated": EventType(
        "approvals", {"id": int, "status": str}, "An approval request changed."
    ),
}


class EventError(ValueError):
    pass


def valid_channel(channel: Any) -> bool:
    return isinstance(channel, str) and (channel in CHANNELS or bool(BUILD_CHANNEL.match(channel)))


def group_name(channel: str) -> str:
    """Channel layer group of a channel (group names allow no colon)."""
    return "events." + channel.replace(":", ".")


def validate_event(channel: str, event: str, data: Any) -> None:
    kind = EVENT_TYPES.get(event)
    if kind is None:
        raise EventError(f"unknown event type {event!r}")
    if not valid_channel(channel):
        raise EventError(f"unknown channel {channel!r}")
    expected = "build:" if channel.startswith("build:") else channel
    if kind.channel != expected and not (event == "build.updated" and expected == "build:"):
        raise EventError(f"{event!r} belongs on {kind.channel!r}, not {channel!r}")
    if not isinstance(data, dict):
        raise EventError("event data must be an object")
    for name, types in kind.fields.items():
        value = data.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise EventError(f"{event!r} needs {name!r} of type {_type_name(types)}")


def _type_name(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def _message(channel: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "bus.event", "channel": channel, "event": event, "data": data}


async def apublish(channel: str, event: str, data: dict[str, Any]) -> None:
    """Publish from async code; raises ``EventError`` for a shape that is not registered."""
    validate_event(channel, event, data)
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group_name(channel), _message(channel, event, data))
    except Exception:  # live events are best effort; the work that caused them goes on
        logger.warning("could not publish %s on %s", event, channel, exc_info=True)


def publish(channel: str, event: str, data: dict[str, Any]) -> None:
    """Publish from sync code (views, Celery tasks), on the process's long-lived LLM loop so the
    channel layer's connections are reused."""
    validate_event(channel, event, data)
    run_sync(apublish(channel, event, data), timeout=10)
