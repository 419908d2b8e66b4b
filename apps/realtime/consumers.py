"""The ``/ws/`` endpoint. See "WebSocket protocol" in DESIGN.md and the README.

The consumer only parses, checks and relays: ``query`` and ``stream`` are handed to a Celery
task (``tasks.llm_ask``) whose replies come back through the channel layer, so the connection
stays responsive however long the providers take. Subscriptions join channel-layer groups fed
by the event bus (``events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.accounts.principals import Principal, principal_for
from apps.core.request_context import request_id_from
from orchestra.celery import app as celery_app

from . import metrics
from .auth import BEARER_SUBPROTOCOL, authenticate_key
from .events import group_name, valid_channel
from .protocol import (
    LlmAsk,
    ProtocolError,
    error_message,
    message_id,
    parse_llm_ask,
    parse_message,
    reply_id,
)
from .tasks import llm_ask

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
AUTH_TIMEOUT_SECONDS = 10.0
WATCHDOG_INTERVAL = 0.5


@dataclass
class Running:
    """A query or stream handed to a worker, as this connection tracks it."""

    task_id: str
    last_heard: float = field(default_factory=time.monotonic)
    control: str | None = None  # the worker's control channel, once it has started
    cancel_requested: bool = False


class TokenBucket:
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


class OrchestraConsumer(AsyncWebsocketConsumer):
    auth_deadline: asyncio.TimerHandle | None = None
    watchdog: asyncio.Task | None = None

    async def connect(self) -> None:
        self.principal: Principal | None = None
        self.running: dict[str | int, Running] = {}
        self.subscriptions: set[str] = set()
        self.bucket = TokenBucket(
            settings.WEBSOCKET_MESSAGES_PER_SECOND, settings.WEBSOCKET_MESSAGE_BURST
        )
        offered = self.scope.get("subprotocols") or []
        await self.accept(BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None)
        metrics.connections.inc()
        if self.scope.get("auth_error"):
            await self.refuse(self.scope["auth_error"])
        elif self.authenticated:
            await self.load_principal()
        else:
            self.auth_deadline = asyncio.get_running_loop().call_later(
                AUTH_TIMEOUT_SECONDS, lambda: asyncio.ensure_future(self.refuse("Auth timeout."))
            )

    async def disconnect(self, code: int) -> None:
        metrics.connections.dec()
        if self.auth_deadline:
            self.auth_deadline.cancel()
        if self.watchdog:
            self.watchdog.cancel()
        for ask_id in list(self.running):
            await self.stop(ask_id)
        for channel in self.subscriptions:
            await self.channel_layer.group_discard(group_name(channel), self.channel_name)

    # --- authentication ---------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        user = self.scope.get("user")
        return bool(user and user.is_authenticated)

    async def load_principal(self) -> None:
        self.principal = await database_sync_to_async(principal_for)(
            self.scope["user"], self.scope.get("api_key")
        )

    async def refuse(self, text: str) -> None:
        await self.send_json(error_message("unauthorized", text))
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def authenticate(self, message: dict[str, Any]) -> None:
        token = message.get("token") if message.get("type") == "auth" else None
        api_key = await authenticate_key(token) if isinstance(token, str) else None
        if api_key is None:
            await self.refuse("Authenticate first: send an auth message with a valid API key.")
            return
        if self.auth_deadline:
            self.auth_deadline.cancel()
        self.scope["user"], self.scope["api_key"] = api_key.user, api_key
        await self.load_principal()
        await self.send_json({"type": "authenticated", "user": api_key.user.get_username()})

    # --- messages from the client -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
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
        handler = self.HANDLERS.get(message.get("type"))
        if handler is None:
            text = f"Unknown message type {message.get('type')!r}."
            await self.send_json(error_message("unknown_type", text, message))
            return
        try:
            await handler(self, message)
        except ProtocolError as exc:
            await self.send_json(error_message(exc.code, str(exc), message))

    async def on_ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", **reply_id(message)})

    async def on_ask(self, message: dict[str, Any]) -> None:
        ask = parse_llm_ask(message)
        if not (self.principal and self.principal.can_operate):
            raise ProtocolError("forbidden", "Your role may not run queries.")
        if ask.id in self.running:
            raise ProtocolError("duplicate_id", f"{ask.id!r} is still running.")
        if len(self.running) >= settings.WEBSOCKET_MAX_CONCURRENT:
            limit = settings.WEBSOCKET_MAX_CONCURRENT
            raise ProtocolError("too_many_requests", f"At most {limit} queries/streams at once.")
        task_id = await self.enqueue(ask)
        self.running[ask.id] = Running(task_id=task_id)
        self.ensure_watchdog()

    async def enqueue(self, ask: LlmAsk) -> str:
        caller = {"user_id": self.principal.user_id, "api_key_id": self.principal.api_key_id}
        result = await sync_to_async(llm_ask.apply_async, thread_sensitive=False)(
            args=(self.channel_name, asdict(ask), caller, request_id_from(None)),
            queue=settings.WEBSOCKET_TASK_QUEUE,
            expires=settings.WEBSOCKET_WORKER_SILENCE_SECONDS,
        )
        return result.id

    async def on_cancel(self, message: dict[str, Any]) -> None:
        ask_id = message_id(message)
        if ask_id not in self.running:
            raise ProtocolError("unknown_id", f"Nothing is running under {ask_id!r}.")
        self.running[ask_id].cancel_requested = True
        await self.send_cancel(self.running[ask_id])

    async def on_subscribe(self, message: dict[str, Any]) -> None:
        channel = self.channel_of(message)
        await self.channel_layer.group_add(group_name(channel), self.channel_name)
        self.subscriptions.add(channel)
        await self.send_json({"type": "subscribed", "channel": channel})

    async def on_unsubscribe(self, message: dict[str, Any]) -> None:
        channel = self.channel_of(message)
        await self.channel_layer.group_discard(group_name(channel), self.channel_name)
        self.subscriptions.discard(channel)
        await self.send_json({"type": "unsubscribed", "channel": channel})

    @staticmethod
    def channel_of(message: dict[str, Any]) -> str:
        channel = message.get("channel")
        if not valid_channel(channel):
            raise ProtocolError(
                "unknown_channel",
                "Channels: builds, build:<id>, approvals, logs, metrics, alerts.",
            )
        return channel

    async def on_auth(self, message: dict[str, Any]) -> None:
        raise ProtocolError("invalid_message", "Already authenticated.")

    HANDLERS = {
        "ping": on_ping,
        "query": on_ask,
        "stream": on_ask,
        "cancel": on_cancel,
        "subscribe": on_subscribe,
        "unsubscribe": on_unsubscribe,
        "auth": on_auth,
    }

    # --- stopping work ------------------------------------------------------------------------

    async def send_cancel(self, running: Running) -> None:
        """Tell a started worker to stop; a task not started yet is revoked instead."""
        if running.control:
            await self.channel_layer.send(running.control, {"type": "cancel"})
        else:
            await sync_to_async(celery_app.control.revoke, thread_sensitive=False)(running.task_id)

    async def stop(self, ask_id) -> None:
        running = self.running.pop(ask_id, None)
        if running:
            with contextlib.suppress(Exception):
                await self.send_cancel(running)

    def ensure_watchdog(self) -> None:
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = asyncio.ensure_future(self.watch_workers())

    async def watch_workers(self) -> None:
        """A worker silent for too long (dead, or never started) ends its request with an error."""
        silence = settings.WEBSOCKET_WORKER_SILENCE_SECONDS
        while self.running:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            now = time.monotonic()
            for ask_id, running in list(self.running.items()):
                if now - running.last_heard > silence:
                    await self.stop(ask_id)
                    text = f"No word from the worker for {silence:g} s; giving up."
                    await self.send_json(error_message("worker_timeout", text, {"id": ask_id}))

    # --- messages from workers and the event bus (channel layer) ------------------------------

    def heard(self, event: dict[str, Any]) -> Running | None:
        running = self.running.get(event["id"])
        if running:
            running.last_heard = time.monotonic()
        return running

    async def llm_started(self, event: dict[str, Any]) -> None:
        running = self.heard(event)
        if running is None:
            await self.channel_layer.send(event["control"], {"type": "cancel"})
            return
        running.control = event["control"]
        if running.cancel_requested:
            await self.send_cancel(running)

    async def llm_heartbeat(self, event: dict[str, Any]) -> None:
        self.heard(event)

    async def llm_token(self, event: dict[str, Any]) -> None:
        if self.heard(event):
            await self.send_json({"type": "token", "id": event["id"], "content": event["content"]})

    async def llm_done(self, event: dict[str, Any]) -> None:
        await self.finish(event, "done")

    async def llm_response(self, event: dict[str, Any]) -> None:
        await self.finish(event, "response")

    async def llm_error(self, event: dict[str, Any]) -> None:
        await self.finish(event, "error")

    async def finish(self, event: dict[str, Any], kind: str) -> None:
        if self.running.pop(event["id"], None) is not None:
            await self.send_json({**event, "type": kind})

    async def bus_event(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "event", "channel": event["channel"], "event": event["event"],
             "data": event["data"]}
        )  # fmt: skip

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))
