"""Parsing and shaping the JSON messages of the ``/ws/`` protocol."""

from __future__ import annotations

import json
from typing import Any

MAX_MESSAGE_BYTES = 64 * 1024


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_message(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    raw = text_data if text_data is not None else bytes_data
    if raw is None:
        raise ProtocolError("invalid_message", "Empty message.")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "message_too_large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes."
        )
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", "Message is not valid JSON.") from exc
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "Message must be a JSON object.")
    return message


def reply_id(message: dict[str, Any]) -> dict[str, Any]:
    """Replies echo the client's ``id`` when it is a string or a number."""
    value = message.get("id")
    return {"id": value} if isinstance(value, str | int) and not isinstance(value, bool) else {}


def error_message(code: str, text: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": text, **reply_id(request or {})}
