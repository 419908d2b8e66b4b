"""The ``/ws/`` endpoint. See "WebSocket protocol" in DESIGN.md."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from .auth import BEARER_SUBPROTOCOL, authenticate_key
from .protocol import ProtocolError, error_message, parse_message, reply_id

CLOSE_UNAUTHORIZED = 4401
AUTH_TIMEOUT_SECONDS = 10.0


class OrchestraConsumer(AsyncWebsocketConsumer):
    auth_deadline: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        offered = self.scope.get("subprotocols") or []
        await self.accept(BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None)
        if self.scope.get("auth_error"):
            await self.refuse(self.scope["auth_error"])
        elif not self.authenticated:
            self.auth_deadline = asyncio.get_running_loop().call_later(
                AUTH_TIMEOUT_SECONDS, lambda: asyncio.ensure_future(self.refuse("Auth timeout."))
            )

    async def disconnect(self, code: int) -> None:
        if self.auth_deadline:
            self.auth_deadline.cancel()

    @property
    def authenticated(self) -> bool:
        user = self.scope.get("user")
        return bool(user and user.is_authenticated)

    async def refuse(self, text: str) -> None:
        await self.send_json(error_message("unauthorized", text))
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = parse_message(text_data, bytes_data)
        except ProtocolError as exc:
            await self.send_json(error_message(exc.code, str(exc)))
            return
        if not self.authenticated:
            await self.authenticate(message)
            return
        kind = message.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong", **reply_id(message)})
        else:
            await self.send_json(
                error_message("unknown_type", f"Unknown message type {kind!r}.", message)
            )

    async def authenticate(self, message: dict[str, Any]) -> None:
        token = message.get("token") if message.get("type") == "auth" else None
        api_key = await authenticate_key(token) if isinstance(token, str) else None
        if api_key is None:
            await self.refuse("Authenticate first: send an auth message with a valid API key.")
            return
        if self.auth_deadline:
            self.auth_deadline.cancel()
        self.scope["user"], self.scope["api_key"] = api_key.user, api_key
        await self.send_json({"type": "authenticated", "user": api_key.user.get_username()})

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))
