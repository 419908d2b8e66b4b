"""The event bus: the one way the project publishes live events to WebSocket subscribers.

Apps register their channels and event types from their ``AppConfig.ready()``; a publisher
cannot send a shape that is not registered, so the dashboard always gets what it expects.
``publish`` (sync: Celery tasks, views), ``apublish`` (async: the gateway, consumers) and
``publish_on_commit`` (services that write: sent only once the transaction commits, so no
subscriber hears of data a rollback removed) go through the channel layer to the group of the
channel; every web process's consumers subscribed to it relay the event as
``{"type": "event", "channel", "event", "data"}``.

A channel is a plain name (``alerts``) or, when registered ``per_object``, a family of channels
``<name>:<id>`` (``build:42``) whose events are those of the family.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from .registry import Registry
from .runtime import run_sync

logger = logging.getLogger(__name__)

_PER_OBJECT = re.compile(r"^([a-z][a-z0-9_-]{0,31}):(\d{1,18})$")

FieldTypes = type | tuple[type, ...]


@dataclass(frozen=True)
class Channel:
    name: str
    description: str
    per_object: bool = False  # subscribers name ``<name>:<id>``
    operators_only: bool = False  # subscribers need the operate permission (operator, admin)


@dataclass(frozen=True)
class EventType:
    name: str
    channel: str
    fields: dict[str, FieldTypes] = field(hash=False)
    description: str


channels: Registry[Channel] = Registry("event channel")
event_types: Registry[EventType] = Registry("event type")


class EventError(ValueError):
    pass


def register_channels(*specs: Channel) -> None:
    for spec in specs:
        channels.register(spec.name, spec)


def register_event_types(*kinds: EventType) -> None:
    for kind in kinds:
        if kind.channel not in channels:
            raise EventError(f"event type {kind.name!r} names unknown channel {kind.channel!r}")
        event_types.register(kind.name, kind)


def channel_family(channel: Any) -> Channel | None:
    """The registered channel a subscription name belongs to, or None."""
    if not isinstance(channel, str):
        return None
    spec = channels.get(channel)
    if spec is not None:
        return None if spec.per_object else spec
    match = _PER_OBJECT.match(channel)
    spec = channels.get(match.group(1)) if match else None
    return spec if spec is not None and spec.per_object else None


def valid_channel(channel: Any) -> bool:
    return channel_family(channel) is not None


def channel_names() -> list[str]:
    """How subscribers name the registered channels (``build:<id>`` for a family)."""
    return [f"{c.name}:<id>" if c.per_object else c.name for c in channels.values()]


def group_name(channel: str) -> str:
    """Channel layer group of a channel (group names allow no colon)."""
    return "events." + channel.replace(":", ".")


def validate_event(channel: str, event: str, data: Any) -> None:
    kind = event_types.get(event)
    if kind is None:
        raise EventError(f"unknown event type {event!r}")
    family = channel_family(channel)
    if family is None:
        raise EventError(f"unknown channel {channel!r}")
    if kind.channel != family.name:
        raise EventError(f"{event!r} belongs on {kind.channel!r}, not {channel!r}")
    if not isinstance(data, dict):
        raise EventError("event data must be an object")
    for name, types in kind.fields.items():
        value = data.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise EventError(f"{event!r} needs {name!r} of type {_type_name(types)}")


def _type_name(types: FieldTypes) -> str:
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
    """Publish from sync code (views, Celery tasks), on the process's long-lived async loop so
    the channel layer's connections are reused."""
    validate_event(channel, event, data)
    run_sync(apublish(channel, event, data), timeout=10)


def publish_on_commit(channel: str, event: str, data: dict[str, Any]) -> None:
    """Publish once the current transaction commits (at once outside one); nothing if it rolls
    back. The shape is checked now, so a mistake shows where it was made."""
    validate_event(channel, event, data)
    transaction.on_commit(lambda: publish(channel, event, data))


def event_type_list() -> Iterable[EventType]:
    return sorted(event_types.values(), key=lambda kind: kind.name)
