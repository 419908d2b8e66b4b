"""The ``/ws/`` endpoint; its protocol is described in the README (WebSocket).

The consumer only parses, checks and relays: ``query`` and ``stream`` are handed to a Celery
task (``tasks.llm_ask``) whose replies come back through the channel layer, so the connection
stays responsive however long the providers take. Subscriptions join channel-layer groups fed
by the event bus (``apps.core.events``).

A connection outlives what it was opened with, so the caller is looked at again before each
query and subscription and every ``API_KEY_CACHE_SECONDS`` or so (jittered, through the
per-process cache of ``principal_current``): a revoked key or deactivated user is closed with
4401, a demoted one is refused (``forbidden``) from then on.

The channel layer and the Celery broker live in Redis; authentication does not. Without Redis
a connection stays open and usable for what needs no relay (``ping``), ``query``, ``stream``
and ``subscribe`` are answered ``unavailable``, and the consumer keeps trying the channel layer
with a short back-off, so the same connection works again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from celery import current_app as celery_app
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError

from apps.accounts.limits import Refusal, ip_bucket, limiter, scope_client, usage_tokens
from apps.accounts.principals import Principal, principal_current, principal_for
from apps.core.events import channel_family, channel_names, group_name, valid_channel
from apps.core.registry import SocketAction, SocketReply, socket_actions
from apps.core.request_context import request_id_from

from . import metrics
from .auth import BEARER_SUBPROTOCOL, authenticate_key
from .protocol import (
    LlmAsk,
    ProtocolError,
    error_message,
    message_id,
    parse_llm_ask,
    parse_message,
    reply_id,
)
from .slots import Cap, key_bucket, slots
from .tasks import llm_ask

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNAVAILABLE = 4503  # as HTTP 503; daphne sends only 1000 or 3000-4999
CLOSE_TOO_MANY_CONNECTIONS = 4429
AUTH_TIMEOUT_SECONDS = 10.0
WATCHDOG_INTERVAL = 0.5
RECEIVE_STOP_SECONDS = 0.5
MIN_PRINCIPAL_CHECK_SECONDS = 1.0  # with API_KEY_CACHE_SECONDS = 0 (no cache)
RELAY_RETRY_SECONDS = (0.2, 2.0)  # first and longest wait between tries of the channel layer
CANCEL_TIMEOUT_SECONDS = 2.0
RELAY_DOWN = "the relay to the workers (Redis) does not answer; try again shortly."


def _forget_result(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def run_socket_action(action: SocketAction, message: dict[str, Any], user: Any) -> SocketReply:
    if not user.has_perm(action.permission):
        raise DjangoPermissionDenied(f"Your role may not send {action.type} messages.")
    return action.handler(message, user)


def validation_text(error: DjangoValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            f"{field}: {text}" for field, texts in error.message_dict.items() for text in texts
        )
    return " ".join(error.messages)


class UnavailableError(ProtocolError):
    def __init__(self, what: str) -> None:
        super().__init__("unavailable", f"{what} are unavailable: {RELAY_DOWN}")


class RelayHealth:
    """This process's view of the channel layer, so an outage is logged once, not once per
    connection and retry."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    def down(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                "channel layer unreachable, live queries unavailable: %s: %s",
                type(error).__name__,
                error,
            )

    def up(self) -> None:
        if self.down_since is not None:
            logger.warning("channel layer back after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None


relay_health = RelayHealth()


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
    principal_watch: asyncio.Task | None = None
    closing = False  # closed by us: nothing more is sent or handled
    relay_error: str | None = None  # why the channel layer failed last, while it does

    async def __call__(self, scope, receive, send) -> None:
        """Channels' consumer loop (``AsyncConsumer.__call__``) with two changes: the gauge
        counts the connection for exactly as long as this runs, whatever ends it (a close by
        either side, or a crash, when ``disconnect`` is not called), and the channel layer is
        read through ``receive_relayed``, which outlasts Redis instead of crashing with it."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()  # no Redis round trip
        self.base_send = send
        self.principal: Principal | None = None
        self.principal_checked_at = 0.0  # when the database last vouched for the caller
        self.running: dict[str | int, Running] = {}
        self.subscriptions: set[str] = set()
        self.bucket = TokenBucket(
            settings.WEBSOCKET_MESSAGES_PER_SECOND, settings.WEBSOCKET_MESSAGE_BURST
        )
        metrics.connections.inc()
        try:
            await self.dispatch_until_stopped(receive)
        finally:
            metrics.connections.dec()
            self.stop_background_tasks()
            await slots.release(self.channel_name)

    async def receive_relayed(self) -> dict[str, Any]:
        """The next message on this connection's channel. Channels' loop would end the consumer
        (1011) on the first error of the channel layer, which is every read while Redis is
        down; this marks the relay down, retries with a growing jittered wait, and, once Redis
        answers again, marks it up before blocking on the next message."""
        wait, longest = RELAY_RETRY_SECONDS
        while True:
            try:
                if self.relay_error is not None:
                    await self.ping_channel_layer()
                    self.relay_back()
                return await self.channel_layer.receive(self.channel_name)
            except Exception as error:
                self.relay_down(error)
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, longest)

    async def ping_channel_layer(self) -> None:
        """Redis answers again: the shard holding this connection's channel, that is."""
        layer = self.channel_layer
        if isinstance(layer, RedisChannelLayer):
            await layer.connection(
                layer.consistent_hash(layer.non_local_name(self.channel_name))
            ).ping()

    def relay_down(self, error: BaseException) -> None:
        self.relay_error = repr(error)
        relay_health.down(error)

    def relay_back(self) -> None:
        self.relay_error = None
        relay_health.up()

    async def dispatch_until_stopped(self, receive) -> None:
        """Channels' ``await_many_dispatch`` over the client and the channel layer, except at
        the end: with channels-redis 4.3 and redis-py 8 a receive cancelled while its Redis
        connection is being made loses the cancellation and blocks until the next message for
        this process, which held the consumer (and the gauge) until daphne killed it 10 s
        later. A receive that does not stop at once is woken with a message and left to end."""
        sources = (receive, self.receive_relayed)
        tasks = [asyncio.ensure_future(source()) for source in sources]
        try:
            while True:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for index, task in enumerate(tasks):
                    if task.done():
                        await self.dispatch(task.result())
                        tasks[index] = asyncio.ensure_future(sources[index]())
        except StopConsumer:
            pass
        finally:
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=RECEIVE_STOP_SECONDS)
            if stuck:
                with contextlib.suppress(Exception):
                    wake = self.channel_layer.send(self.channel_name, {"type": "consumer.gone"})
                    await asyncio.wait_for(wake, RECEIVE_STOP_SECONDS)
                for task in stuck:
                    task.add_done_callback(_forget_result)

    async def connect(self) -> None:
        offered = self.scope.get("subprotocols") or []
        await self.accept(BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None)
        address = ip_bucket(scope_client(self.scope))
        cap = await slots.take(
            bucket=f"address:{address}",
            what="address",
            limit=settings.WEBSOCKET_MAX_PER_ADDRESS,
            member=self.channel_name,
        )
        if cap is not None:
            await self.refuse_over_cap(cap)
        elif self.scope.get("auth_error"):
            await self.refuse(self.scope["auth_error"])
        elif self.authenticated:
            await self.load_principal()
        else:
            self.auth_deadline = asyncio.get_running_loop().call_later(
                AUTH_TIMEOUT_SECONDS, lambda: asyncio.ensure_future(self.refuse("Auth timeout."))
            )

    async def disconnect(self, code: int) -> None:
        self.stop_background_tasks()
        for ask_id in list(self.running):
            await self.stop(ask_id)
        for channel in self.subscriptions:
            try:
                await self.channel_layer.group_discard(group_name(channel), self.channel_name)
            except Exception:  # Redis is gone: the group forgets us when its entry expires
                logger.info("could not leave %s on disconnect", channel, exc_info=True)

    def stop_background_tasks(self) -> None:
        if self.auth_deadline:
            self.auth_deadline.cancel()
        for task in (self.watchdog, self.principal_watch):
            if task:
                task.cancel()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """A bad message from a worker or the bus is logged; it does not end the connection."""
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            if message.get("type", "").startswith("websocket."):
                raise
            logger.exception("could not relay %r", message.get("type"))

    # --- authentication ---------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        user = self.scope.get("user")
        return bool(user and user.is_authenticated)

    async def load_principal(self) -> bool:
        """Who the caller is, once it authenticated; False (and the connection closed) when
        its key or user already holds ``WEBSOCKET_MAX_PER_KEY`` connections."""
        principal = await database_sync_to_async(principal_for)(
            self.scope["user"], self.scope.get("api_key")
        )
        what, bucket = key_bucket(api_key_id=principal.api_key_id, user_id=principal.user_id)
        cap = await slots.take(
            bucket=bucket,
            what=what,
            limit=settings.WEBSOCKET_MAX_PER_KEY,
            member=self.channel_name,
        )
        if cap is not None:
            await self.refuse_over_cap(cap)
            return False
        self.principal = principal
        self.principal_checked_at = time.monotonic()
        self.principal_watch = asyncio.ensure_future(self.watch_principal())
        return True

    async def refuse_over_cap(self, cap: Cap) -> None:
        """Like ``refuse``: the error first, then the close, with the reason in both."""
        if self.closing:
            return
        self.closing = True
        await self.send(text_data=json.dumps(error_message("too_many_connections", cap.message)))
        await self.close(code=CLOSE_TOO_MANY_CONNECTIONS, reason=cap.message)

    async def refuse(self, text: str) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send(text_data=json.dumps(error_message("unauthorized", text)))
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
        if await self.load_principal():
            await self.send_json({"type": "authenticated", "user": api_key.user.get_username()})

    async def still_allowed(self) -> bool:
        """Look at the caller again (through the per-process cache): False, and the connection
        closed with 4401, when its key was revoked or expired or its user deactivated; a
        changed role is kept for the next check. While the database does not answer, the caller
        keeps what it had for ``API_KEY_OUTAGE_SECONDS`` after it was last vouched for, as a
        key on ``/v1`` does; past that the connection is closed with 4503 (try again later)."""
        if self.principal is None or self.closing:
            return not self.closing
        try:
            current = await principal_current(self.principal)
        except Exception as error:
            unchecked = time.monotonic() - self.principal_checked_at
            if unchecked <= settings.API_KEY_OUTAGE_SECONDS:
                logger.warning("could not check the caller again (%s)", type(error).__name__)
                return True
            logger.warning("could not check the caller for %.0f s: closing", unchecked)
            self.closing = True
            text = "Your API key could not be checked again; reconnect shortly."
            await self.send(text_data=json.dumps(error_message("unavailable", text)))
            await self.close(code=CLOSE_UNAVAILABLE)
            return False
        if current is None:
            await self.refuse("Your API key was revoked or has expired, or your account is off.")
            return False
        self.principal = current
        self.principal_checked_at = time.monotonic()
        await self.leave_forbidden_channels()
        return True

    def may_subscribe(self, channel: str) -> bool:
        family = channel_family(channel)
        return not (family and family.operators_only) or bool(
            self.principal and self.principal.can_operate
        )

    async def leave_forbidden_channels(self) -> None:
        """A caller demoted since it subscribed stops hearing what its role may no longer see."""
        for channel in [c for c in self.subscriptions if not self.may_subscribe(c)]:
            await self.leave(channel, reason=f"Your role may no longer subscribe to {channel}.")

    async def watch_principal(self) -> None:
        period = max(settings.API_KEY_CACHE_SECONDS, MIN_PRINCIPAL_CHECK_SECONDS)
        while True:
            # Jittered, so connections opened together do not all ask at the same moment.
            await asyncio.sleep(period * random.uniform(0.5, 1.0))
            if not await self.still_allowed():
                return

    # --- messages from the client -------------------------------------------------------------

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
            handler = OrchestraConsumer.on_action
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

    async def on_ask(self, message: dict[str, Any]) -> None:
        ask = parse_llm_ask(message)
        if not await self.still_allowed():
            return
        if not (self.principal and self.principal.can_operate):
            raise ProtocolError("forbidden", "Your role may not run queries.")
        if ask.id in self.running:
            raise ProtocolError("duplicate_id", f"{ask.id!r} is still running.")
        if len(self.running) >= settings.WEBSOCKET_MAX_CONCURRENT:
            limit = settings.WEBSOCKET_MAX_CONCURRENT
            raise ProtocolError("too_many_requests", f"At most {limit} queries/streams at once.")
        if self.relay_error:  # replies could not come back
            raise UnavailableError("live queries")
        refusal = self.rate_limit_refusal()
        if refusal is not None:
            error = error_message(refusal.code, refusal.message, message)
            await self.send_json({**error, "retry_after": refusal.retry_after_seconds})
            return
        try:
            task_id = await self.enqueue(ask)
        except Exception as error:  # the broker (Redis) does not answer
            logger.warning("could not hand a query to the workers: %r", error)
            raise UnavailableError("live queries") from error
        self.running[ask.id] = Running(task_id=task_id)
        self.ensure_watchdog()

    def rate_limit_refusal(self) -> Refusal | None:
        """The per-IP limit, then the key's (``apps.accounts.limits``), counted here in the web
        process: a refused query never reaches a worker, and the connection stays open."""
        client = scope_client(self.scope)
        refusal = limiter.check_ip(client, entry="WebSocket")
        if refusal is None and self.principal is not None:
            refusal = limiter.admit_key(
                api_key_id=self.principal.api_key_id,
                rpm_limit=self.principal.rpm_limit,
                tpm_limit=self.principal.tpm_limit,
                entry="WebSocket",
                client=client,
            ).refusal
        return refusal

    async def enqueue(self, ask: LlmAsk) -> str:
        assert self.principal is not None  # on_ask checked it
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
        try:
            await asyncio.wait_for(self.send_cancel(self.running[ask_id]), CANCEL_TIMEOUT_SECONDS)
        except Exception:  # the worker cannot be told, nor reply: stop relaying it here
            await self.stop(ask_id)
            text = "Cancelled (the worker could not be told; it stops on its own)."
            await self.send_json(error_message("cancelled", text, {"id": ask_id}))

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

    async def on_action(self, message: dict[str, Any]) -> None:
        """A message type an app registered (``apps.core.registry.socket_actions``): a build,
        an agent task. The app's handler does what its REST API does; the client is subscribed
        to the work's channel before the reply, so it misses none of its events."""
        action = socket_actions[message["type"]]
        if not await self.still_allowed():
            return
        try:
            reply = await database_sync_to_async(run_socket_action)(
                action, message, self.scope["user"]
            )
        except DjangoPermissionDenied as error:
            raise ProtocolError("forbidden", str(error) or "Your role may not do this.") from error
        except DjangoValidationError as error:
            raise ProtocolError("invalid_request", validation_text(error)) from error
        if reply.subscribe:
            await self.subscribe(reply.subscribe)
        await self.send_json({"type": action.reply_type, **reply_id(message), **reply.data})

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

    @staticmethod
    def channel_of(message: dict[str, Any]) -> str:
        channel = message.get("channel")
        if not isinstance(channel, str) or not valid_channel(channel):
            raise ProtocolError("unknown_channel", f"Channels: {', '.join(channel_names())}.")
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
                await asyncio.wait_for(self.send_cancel(running), CANCEL_TIMEOUT_SECONDS)

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
                    if self.relay_error:
                        error = error_message("unavailable", f"Lost: {RELAY_DOWN}", {"id": ask_id})
                    else:
                        text = f"No word from the worker for {silence:g} s; giving up."
                        error = error_message("worker_timeout", text, {"id": ask_id})
                    await self.send_json(error)

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
            if self.principal is not None and self.principal.tpm_limit is not None:
                limiter.note_tokens(
                    api_key_id=self.principal.api_key_id,
                    tpm_limit=self.principal.tpm_limit,
                    tokens=usage_tokens(event.get("usage")),
                )
            await self.send_json({**event, "type": kind})

    async def bus_event(self, event: dict[str, Any]) -> None:
        if event["channel"] not in self.subscriptions:  # left meanwhile (demoted, unsubscribed)
            return
        await self.send_json(
            {"type": "event", "channel": event["channel"], "event": event["event"],
             "data": event["data"]}
        )  # fmt: skip

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=json.dumps(content))
