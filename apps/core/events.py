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

Every event is also kept, for a bounded time, in a Redis stream of its channel (at most
``EVENTS_KEPT_PER_CHANNEL`` entries, none older than ``EVENTS_KEPT_SECONDS``), and carries the
stream's entry id (``"1733500000000-0"``): a subscriber that comes back with the last id it saw
gets what it missed from ``events_since``, in order. Keeping costs the publisher one pipelined
round trip to Redis before the channel layer's; an event Redis cannot keep is still sent live,
without an id.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from redis.exceptions import ResponseError

from .redis import async_redis, key, text
from .registry import Registry
from .runtime import run_sync

logger = logging.getLogger(__name__)

_PER_OBJECT = re.compile(r"^([a-z][a-z0-9_-]{0,31}):(\d{1,18})$")
_EVENT_ID = re.compile(r"^(\d{1,19})(?:-(\d{1,19}))?$")
CLOCK_MARGIN_MS = 1000  # event_id_at: how far this machine's clock may be ahead of Redis's
REPLAY_BATCH = 500

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


async def apublish(channel: str, event: str, data: dict[str, Any]) -> str | None:
    """Publish from async code; raises ``EventError`` for a shape that is not registered.
    Returns the event's id, or None when it could not be kept (it is still sent live)."""
    validate_event(channel, event, data)
    layer = get_channel_layer()
    if layer is None:
        return None
    message = _message(channel, event, data)
    try:
        message["id"] = await _keep(channel, event, data)
    except Exception:  # kept is best effort too: the live event still goes
        logger.warning("could not keep %s on %s", event, channel, exc_info=True)
    try:
        await layer.group_send(group_name(channel), message)
    except Exception:  # live events are best effort; the work that caused them goes on
        logger.warning("could not publish %s on %s", event, channel, exc_info=True)
    return message.get("id")


def publish(channel: str, event: str, data: dict[str, Any]) -> str | None:
    """Publish from sync code (views, Celery tasks), on the process's long-lived async loop so
    the channel layer's connections are reused."""
    validate_event(channel, event, data)
    return run_sync(apublish(channel, event, data), timeout=10)


def publish_on_commit(channel: str, event: str, data: dict[str, Any]) -> None:
    """Publish once the current transaction commits (at once outside one); nothing if it rolls
    back. The shape is checked now, so a mistake shows where it was made."""
    validate_event(channel, event, data)
    transaction.on_commit(lambda: publish(channel, event, data))


def event_type_list() -> Iterable[EventType]:
    return sorted(event_types.values(), key=lambda kind: kind.name)


# --- events kept for subscribers that come back ----------------------------------------------


@dataclass(frozen=True)
class KeptEvent:
    id: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Replay:
    """What a channel kept after an id: its events in order, up to ``last_id``, the id the stream
    had reached when it was read (every event with an id up to it is in ``events``, or was
    published before ``since``). ``complete`` is False when events after ``since`` may no longer
    be kept (the cap or the time bound removed some): the subscriber should reload what it
    shows."""

    events: list[KeptEvent]
    last_id: str
    complete: bool


def stream_key(channel: str) -> str:
    return key("events", channel)


def event_id_order(event_id: str) -> tuple[int, int]:
    """An event id as a pair that sorts as Redis orders stream ids; ``EventError`` if it is not
    one (``"<ms>-<seq>"``, or ``"<ms>"`` for ``"<ms>-0"``)."""
    match = _EVENT_ID.match(event_id) if isinstance(event_id, str) else None
    if match is None:
        raise EventError(f'{event_id!r} is not an event id ("<milliseconds>-<sequence>")')
    return int(match.group(1)), int(match.group(2) or 0)


def valid_event_id(value: Any) -> bool:
    try:
        event_id_order(value)
    except EventError:
        return False
    return True


def event_id_at(moment: datetime) -> str:
    """The id to subscribe ``since`` to get the events published from ``moment`` on: Redis
    numbers a stream's entries by its clock in milliseconds, so this is ``moment`` less
    ``CLOCK_MARGIN_MS`` (a clock a little ahead of Redis's loses nothing; an event or two from
    just before is harmless to a page, which handles any event at any time)."""
    return f"{max(0, int(moment.timestamp() * 1000) - CLOCK_MARGIN_MS)}-0"


def live_since(starts: dict[str, datetime]) -> str:
    """A live page's ``data-live-since`` (``core/live.js``): for each channel, the id its
    subscription starts after, so the page gets every event from that moment on, even those
    published before its socket opened."""
    return json.dumps({channel: event_id_at(moment) for channel, moment in starts.items()})


async def _keep(channel: str, event: str, data: dict[str, Any]) -> str:
    """Add the event to its channel's stream, trimmed to its bounds, in one round trip."""
    stream = stream_key(channel)
    kept_seconds = settings.EVENTS_KEPT_SECONDS
    oldest = int(time.time() * 1000) - kept_seconds * 1000
    pipe = async_redis().pipeline(transaction=False)
    pipe.xadd(
        stream,
        {"m": json.dumps([event, data], separators=(",", ":"))},
        maxlen=settings.EVENTS_KEPT_PER_CHANNEL,
        approximate=True,
    )
    pipe.xtrim(stream, minid=f"{max(oldest, 0)}-0", approximate=True)
    pipe.expire(stream, kept_seconds)
    event_id, *_ = await pipe.execute()
    return text(event_id)


def _kept(entry_id: Any, fields: Any) -> KeptEvent:
    event, data = json.loads(fields[b"m"])
    return KeptEvent(id=text(entry_id), event=event, data=data)


async def events_since(channel: str, since: str) -> Replay:
    """The events ``channel`` kept after ``since`` (an event id, excluded), oldest first."""
    since_order = event_id_order(since)
    client = async_redis()
    stream = stream_key(channel)
    try:
        info = await client.xinfo_stream(stream)
    except ResponseError:  # no such stream: nothing published, or nothing for a long time
        oldest_ms = (time.time() - settings.EVENTS_KEPT_SECONDS) * 1000
        return Replay(events=[], last_id=since, complete=since_order[0] >= oldest_ms)
    last_id = text(info["last-generated-id"])
    # Trimming removes the oldest entries: those after ``since`` are gone only if some are
    # gone and the oldest left is after ``since``.
    first = info.get("first-entry")
    complete = info["entries-added"] <= info["length"] or (
        first is not None and event_id_order(text(first[0])) <= since_order
    )
    if event_id_order(last_id) <= since_order:
        return Replay(events=[], last_id=since, complete=complete)
    events: list[KeptEvent] = []
    start = since
    while True:
        batch = await client.xrange(stream, min=f"({start}", max=last_id, count=REPLAY_BATCH)
        events.extend(_kept(entry_id, fields) for entry_id, fields in batch or [])
        if len(batch or []) < REPLAY_BATCH:
            return Replay(events=events, last_id=last_id, complete=complete)
        start = events[-1].id
