"""Who is calling: authentication (at the handshake, or by a first ``auth`` message), the caps on
connections per address and per key, and the caller looked at again while the connection lasts.

A connection outlives what it was opened with, so the caller is looked at again before each
query and subscription and every ``API_KEY_CACHE_SECONDS`` or so (jittered, through the
per-process cache of ``principal_current``): a revoked key or deactivated user is closed with
4401, a demoted one is refused (``forbidden``) from then on. The periodic look is one sweep per
process over its connections (``PrincipalWatch``), not a sleeping task per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.limits import ip_bucket, scope_client
from apps.accounts.principals import Principal, principal_current, principal_for

from ..auth import BEARER_SUBPROTOCOL, authenticate_key
from ..protocol import error_message
from ..slots import Cap, key_bucket, slots
from .connection import ConnectionConsumer

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNAVAILABLE = 4503  # as HTTP 503; daphne sends only 1000 or 3000-4999
CLOSE_TOO_MANY_CONNECTIONS = 4429
AUTH_TIMEOUT_SECONDS = 10.0
MIN_PRINCIPAL_CHECK_SECONDS = 1.0  # with API_KEY_CACHE_SECONDS = 0 (no cache)


class PrincipalWatch:
    """Looks at each authenticated connection's caller again every ``API_KEY_CACHE_SECONDS``
    or so (``MIN_PRINCIPAL_CHECK_SECONDS`` at least), jittered so connections opened together do
    not all ask at the same moment: one task per process, for as long as it has connections."""

    def __init__(self) -> None:
        self.due: dict[CallerConsumer, float] = {}  # connection -> when its next look is due
        self.checking: set[asyncio.Task] = set()
        self.sweeper: asyncio.Task | None = None

    @staticmethod
    def period() -> float:
        return max(settings.API_KEY_CACHE_SECONDS, MIN_PRINCIPAL_CHECK_SECONDS)

    def add(self, consumer: CallerConsumer) -> None:
        self.due[consumer] = time.monotonic() + self.period() * random.uniform(0.5, 1.0)
        loop = asyncio.get_running_loop()
        if self.sweeper is None or self.sweeper.done() or self.sweeper.get_loop() is not loop:
            self.sweeper = loop.create_task(self.sweep())

    def discard(self, consumer: CallerConsumer) -> None:
        self.due.pop(consumer, None)

    async def sweep(self) -> None:
        while self.due:
            period = self.period()
            await asyncio.sleep(min(period / 10, 1.0))
            now = time.monotonic()
            for consumer in [c for c, at in self.due.items() if at <= now]:
                self.due[consumer] = now + period * random.uniform(0.5, 1.0)
                check = asyncio.ensure_future(self.check(consumer))
                self.checking.add(check)
                check.add_done_callback(self.checking.discard)

    async def check(self, consumer: CallerConsumer) -> None:
        try:
            if not await consumer.still_allowed():
                self.discard(consumer)
        except Exception:
            logger.exception("could not look at a WebSocket caller again")


class CallerConsumer(ConnectionConsumer):
    auth_deadline: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.principal: Principal | None = None
        self.principal_checked_at = 0.0  # when the database last vouched for the caller

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

    def stop_background_tasks(self) -> None:
        super().stop_background_tasks()
        if self.auth_deadline:
            self.auth_deadline.cancel()
        principal_watch.discard(self)

    @property
    def authenticated(self) -> bool:
        user = self.scope.get("user")
        return self.scope.get("principal") is not None or bool(user and user.is_authenticated)

    async def load_principal(self) -> bool:
        """Who the caller is, once it authenticated (its key's principal, or its session's
        user's); False (and the connection closed) when its key or user already holds
        ``WEBSOCKET_MAX_PER_KEY`` connections."""
        principal = self.scope.get("principal") or await database_sync_to_async(principal_for)(
            self.scope["user"]
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
        principal_watch.add(self)
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
        principal = await authenticate_key(token) if isinstance(token, str) else None
        if principal is None:
            await self.refuse("Authenticate first: send an auth message with a valid API key.")
            return
        if self.auth_deadline:
            self.auth_deadline.cancel()
        self.scope["principal"] = principal
        if await self.load_principal():
            await self.send_json({"type": "authenticated", "user": principal.username})

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
        await self.caller_rechecked()
        return True

    async def caller_rechecked(self) -> None:
        """The caller was looked at again and may act on: its role may have changed. Topics
        that hold on to what the role allowed extend this (subscriptions)."""


principal_watch = PrincipalWatch()
