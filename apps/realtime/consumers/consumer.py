"""The ``/ws/`` consumer: each message from the client, checked and handed to its topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from django.conf import settings

from apps.core.registry import socket_actions

from ..protocol import ProtocolError, error_message, parse_message, reply_id
from .actions import ActionsConsumer
from .queries import QueriesConsumer
from .subscriptions import SubscriptionsConsumer

logger = logging.getLogger(__name__)

Handler = Callable[[Any, dict[str, Any]], Awaitable[None]]


class TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")  # one per connection

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class OrchestraConsumer(ActionsConsumer, QueriesConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bucket = TokenBucket(
            settings.WEBSOCKET_MESSAGES_PER_SECOND, settings.WEBSOCKET_MESSAGE_BURST
        )

    async def disconnect(self, code: int) -> None:
        self.stop_background_tasks()
        await self.stop_all()
        await self.leave_all()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        try:
            message = parse_message(text_data, bytes_data)
        except ProtocolError as exc:
            await self.send_json(error_message(exc.code, str(exc)))
            return
        if not self.authenticated:
            await self.authenticate(message)
            return
        if not self.bucket.take():
            await self.send_json(
                error_message("rate_limited", "Too many messages; slow down.", message)
            )
            return
        kind = message.get("type")
        handler = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None and isinstance(kind, str) and kind in socket_actions:
            handler = ActionsConsumer.on_action
        if handler is None:
            text = f"Unknown message type {message.get('type')!r}."
            await self.send_json(error_message("unknown_type", text, message))
            return
        try:
            await handler(self, message)
        except ProtocolError as exc:
            await self.send_json(error_message(exc.code, str(exc), message))
        except Exception:
            logger.exception("could not handle a %r message", kind)
            text = "Something went wrong with this message; it was logged."
            await self.send_json(error_message("internal_error", text, message))

    async def on_ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", **reply_id(message)})

    async def on_auth(self, message: dict[str, Any]) -> None:
        raise ProtocolError("invalid_message", "Already authenticated.")

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "ping": on_ping,
        "query": QueriesConsumer.on_ask,
        "stream": QueriesConsumer.on_ask,
        "cancel": QueriesConsumer.on_cancel,
        "subscribe": SubscriptionsConsumer.on_subscribe,
        "unsubscribe": SubscriptionsConsumer.on_unsubscribe,
        "auth": on_auth,
    }
