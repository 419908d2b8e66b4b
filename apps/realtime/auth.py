"""WebSocket authentication: a session cookie, or an API key.

Browsers cannot set headers on a WebSocket, so besides ``Authorization: Bearer <key>`` the key
is accepted as the subprotocol pair ``Sec-WebSocket-Protocol: bearer, <key>`` (the server
answers with ``bearer``) or in a first ``{"type": "auth", "token": "<key>"}`` message.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from apps.accounts.authentication import bearer_token
from apps.accounts.principals import Principal, principal_for_key
from apps.core.http import scope_header

BEARER_SUBPROTOCOL = "bearer"


def token_from_scope(scope: dict) -> str | None:
    token = bearer_token(scope_header(scope, b"authorization"))
    if token:
        return token
    subprotocols = scope.get("subprotocols") or []
    if BEARER_SUBPROTOCOL in subprotocols:
        index = subprotocols.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(subprotocols):
            return subprotocols[index + 1]
    return None


@database_sync_to_async
def authenticate_key(token: str) -> Principal | None:
    return principal_for_key(token)


class ApiKeyAuthMiddleware(BaseMiddleware):
    """Puts the key's principal in ``scope["principal"]`` (who calls and what it may do, not
    the user and key objects: with the user's permission caches those were about 12 KiB per
    connection); a wrong key is remembered, not ignored.

    A connection that brings a key goes straight on to the consumer: Channels' session and
    cookie middleware (``sessions``, which a session login needs) would only add a session
    store, an anonymous user, a database round trip and their copies of the scope, kept for as
    long as the connection lasts. Without a key, they run as usual (``sessions``) and put the
    session's user in ``scope["user"]``."""

    def __init__(self, inner, sessions) -> None:
        super().__init__(inner)
        self.sessions = sessions

    async def __call__(self, scope, receive, send):
        token = token_from_scope(scope)
        if not token:
            return await self.sessions(dict(scope, principal=None, auth_error=None), receive, send)
        principal = await authenticate_key(token)
        error = None if principal else "Invalid, revoked or expired API key."
        return await self.inner(dict(scope, principal=principal, auth_error=error), receive, send)


def WebSocketAuthStack(inner):  # noqa: N802  (named like Channels' AuthMiddlewareStack)
    return ApiKeyAuthMiddleware(inner, sessions=AuthMiddlewareStack(inner))
