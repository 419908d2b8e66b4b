"""The message types other apps register (``apps.core.registry.socket_actions``): a build, an
agent task. The app's handler does what its REST API does, under the caller's permissions."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError

from apps.accounts.selectors import user_get
from apps.core.registry import SocketAction, SocketReply, socket_actions

from ..protocol import ProtocolError, reply_id
from .subscriptions import SubscriptionsConsumer


def run_socket_action(action: SocketAction, message: dict[str, Any], user_id: int) -> SocketReply:
    """The app's handler, as the caller's user now is (connections keep only its id)."""
    user = user_get(pk=user_id)
    if not user.has_perm(action.permission):
        raise DjangoPermissionDenied(f"Your role may not send {action.type} messages.")
    return action.handler(message, user)


def validation_text(error: DjangoValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            f"{field}: {text}" for field, texts in error.message_dict.items() for text in texts
        )
    return " ".join(error.messages)


class ActionsConsumer(SubscriptionsConsumer):
    async def on_action(self, message: dict[str, Any]) -> None:
        """A message type an app registered (``apps.core.registry.socket_actions``): a build,
        an agent task. The app's handler does what its REST API does; the client is subscribed
        to the work's channel before the reply, so it misses none of its events."""
        action = socket_actions[message["type"]]
        if not await self.still_allowed() or self.principal is None:
            return
        try:
            reply = await database_sync_to_async(run_socket_action)(
                action, message, self.principal.user_id
            )
        except DjangoPermissionDenied as error:
            raise ProtocolError("forbidden", str(error) or "Your role may not do this.") from error
        except DjangoValidationError as error:
            raise ProtocolError("invalid_request", validation_text(error)) from error
        if reply.subscribe:
            await self.subscribe(reply.subscribe)
        await self.send_json({"type": action.reply_type, **reply_id(message), **reply.data})
