"""Small helpers for raw ASGI scopes (the gateway's hot path, the WebSocket stack)."""

from __future__ import annotations

from typing import Any


def scope_header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as latin-1, or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
