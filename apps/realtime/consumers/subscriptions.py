"""Subscriptions: ``subscribe`` and ``unsubscribe`` join and leave channel-layer groups fed by
the event bus (``apps.core.events``), whose events reach the client as ``event`` messages.
Channels only operators may hear are left when the caller is demoted."""

from __future__ import annotations

import logging
from typing import Any

from apps.core.events import channel_family, channel_names, group_name, valid_channel

from ..protocol import ProtocolError
from .caller import CallerConsumer
from .connection import UnavailableError

logger = logging.getLogger(__name__)


class SubscriptionsConsumer(CallerConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: set[str] = set()

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
        if not await self.still_allowed():
            return
        if not self.may_subscribe(channel):
            raise ProtocolError("forbidden", f"Your role may not subscribe to {channel}.")
        await self.subscribe(channel)

    async def subscribe(self, channel: str) -> None:
        if self.relay_error:
            raise UnavailableError("live events")
        try:
            await self.channel_layer.group_add(group_name(channel), self.channel_name)
        except Exception as error:
            logger.warning("could not subscribe to %s: %r", channel, error)
            raise UnavailableError("live events") from error
        self.subscriptions.add(channel)
        await self.send_json({"type": "subscribed", "channel": channel})

    async def on_unsubscribe(self, message: dict[str, Any]) -> None:
        await self.leave(self.channel_of(message))

    async def leave(self, channel: str, reason: str = "") -> None:
        self.subscriptions.discard(channel)
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
        if event["channel"] not in self.subscriptions:  # left meanwhile (demoted, unsubscribed)
            return
        await self.send_json(
            {"type": "event", "channel": event["channel"], "event": event["event"],
             "data": event["data"]}
        )  # fmt: skip
