"""Subscriptions: ``subscribe`` and ``unsubscribe`` join and leave channel-layer groups fed by
the event bus (``apps.core.events``), whose events reach the client as ``event`` messages.
Channels only operators may hear are left when the caller is demoted.

A ``subscribe`` with ``since`` (the last event id the client saw) first gets what the channel
kept after it, then live events, with no gap and no event twice: the connection joins the group
first, then reads the stream up to the id it has reached, and drops the live events whose id is
not past that (they were replayed, or came before ``since``). Messages of this connection are
handled one at a time, so no live event is sent while the replay is."""

from __future__ import annotations

import logging
from typing import Any

from apps.core.events import (
    Replay,
    channel_family,
    channel_names,
    event_id_order,
    events_since,
    group_name,
    valid_channel,
    valid_event_id,
)

from ..protocol import ProtocolError
from .caller import CallerConsumer
from .connection import UnavailableError

logger = logging.getLogger(__name__)


class SubscriptionsConsumer(CallerConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: set[str] = set()
        self.replayed_up_to: dict[str, tuple[int, int]] = {}  # channel -> the last id replayed

    def may_subscribe(self, channel: str) -> bool:
        family = channel_family(channel)
        return not (family and family.operators_only) or bool(
            self.principal and self.principal.can_operate
        )

    async def caller_rechecked(self) -> None:
        await super().caller_rechecked()
        await self.leave_forbidden_channels()

    async def leave_forbidden_channels(self) -> None:
        """A caller demoted since it subscribed stops hearing what its role may no longer see."""
        for channel in [c for c in self.subscriptions if not self.may_subscribe(c)]:
            await self.leave(channel, reason=f"Your role may no longer subscribe to {channel}.")

    async def on_subscribe(self, message: dict[str, Any]) -> None:
        channel = self.channel_of(message)
        since = message.get("since")
        if since is not None and not valid_event_id(since):
            text = "'since' must be an event id (\"<milliseconds>-<sequence>\"), as events carry."
            raise ProtocolError("invalid_request", text)
        if not await self.still_allowed():
            return
        if not self.may_subscribe(channel):
            raise ProtocolError("forbidden", f"Your role may not subscribe to {channel}.")
        await self.subscribe(channel, since=since)

    async def subscribe(self, channel: str, *, since: str | None = None) -> None:
        if self.relay_error:
            raise UnavailableError("live events")
        try:
            await self.channel_layer.group_add(group_name(channel), self.channel_name)
        except Exception as error:
            logger.warning("could not subscribe to %s: %r", channel, error)
            raise UnavailableError("live events") from error
        self.subscriptions.add(channel)
        if since is None:
            self.replayed_up_to.pop(channel, None)
            await self.send_json({"type": "subscribed", "channel": channel})
            return
        replay = await self.kept_since(channel, since)
        self.replayed_up_to[channel] = event_id_order(replay.last_id)
        await self.send_json(
            {
                "type": "subscribed",
                "channel": channel,
                "since": since,
                "replayed": len(replay.events),
                "complete": replay.complete,
            }
        )
        for kept in replay.events:
            await self.send_json(
                {
                    "type": "event",
                    "channel": channel,
                    "event": kept.event,
                    "data": kept.data,
                    "id": kept.id,
                }
            )

    @staticmethod
    async def kept_since(channel: str, since: str) -> Replay:
        """What the channel kept after ``since``; nothing, and not complete, when Redis cannot
        say (the live events still come)."""
        try:
            return await events_since(channel, since)
        except Exception as error:
            logger.warning("could not read what %s kept: %r", channel, error)
            return Replay(events=[], last_id=since, complete=False)

    async def on_unsubscribe(self, message: dict[str, Any]) -> None:
        await self.leave(self.channel_of(message))

    async def leave(self, channel: str, reason: str = "") -> None:
        self.subscriptions.discard(channel)
        self.replayed_up_to.pop(channel, None)
        try:
            await self.channel_layer.group_discard(group_name(channel), self.channel_name)
        except Exception:  # nothing reaches us from it meanwhile; the entry expires
            logger.info("could not leave %s", channel, exc_info=True)
        await self.send_json(
            {"type": "unsubscribed", "channel": channel, **({"reason": reason} if reason else {})}
        )

    async def leave_all(self) -> None:
        """On disconnect: leave every group, telling no one."""
        for channel in self.subscriptions:
            try:
                await self.channel_layer.group_discard(group_name(channel), self.channel_name)
            except Exception:  # Redis is gone: the group forgets us when its entry expires
                logger.info("could not leave %s on disconnect", channel, exc_info=True)

    @staticmethod
    def channel_of(message: dict[str, Any]) -> str:
        channel = message.get("channel")
        if not isinstance(channel, str) or not valid_channel(channel):
            raise ProtocolError("unknown_channel", f"Channels: {', '.join(channel_names())}.")
        return channel

    async def bus_event(self, event: dict[str, Any]) -> None:
        channel = event["channel"]
        if channel not in self.subscriptions:  # left meanwhile (demoted, unsubscribed)
            return
        event_id = event.get("id")
        replayed_up_to = self.replayed_up_to.get(channel)
        if replayed_up_to and event_id and event_id_order(event_id) <= replayed_up_to:
            return  # sent already by the replay, or older than what the client asked for
        await self.send_json(
            {
                "type": "event",
                "channel": channel,
                "event": event["event"],
                "data": event["data"],
                **({"id": event_id} if event_id else {}),
            }
        )
