from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiKey
from .services import api_key_authenticate


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>``. A key that is present but wrong is refused, not ignored."""

    def authenticate(self, request: Request) -> tuple | None:
        header = request.headers.get("Authorization")
        if not header or not header.lower().startswith("bearer"):
            return None
        token = bearer_token(header)
        api_key = api_key_authenticate(raw_key=token) if token else None
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def request_api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def request_user(request: Request) -> User:
    """The authenticated user of a request that passed the role permission checks."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user
