"""Parsing and shaping the JSON messages of the ``/ws/`` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.core.json import JsonError, NulCharacterError, loads
from apps.providers.llm import Caller, EntryPoint, InvalidRequestError, llm_request_from

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
        message = loads(raw)
    except NulCharacterError as exc:  # valid JSON, but a value no entry point accepts
        raise ProtocolError("invalid_request", f"{exc}.") from exc
    except JsonError as exc:  # RecursionError included: 60,000 "[" fit in 64 KiB
        raise ProtocolError("invalid_json", f"Message is not valid JSON: {exc}.") from exc
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "Message must be a JSON object.")
    return message


def reply_id(message: dict[str, Any]) -> dict[str, Any]:
    """Replies echo the client's ``id`` when it is a string or a number."""
    value = message.get("id")
    return {"id": value} if isinstance(value, str | int) and not isinstance(value, bool) else {}


def error_message(code: str, text: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": text, **reply_id(request or {})}


MAX_ID_LENGTH = 64
ASK_FIELDS = (
    "messages", "prompt", "model", "provider", "strategy", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "user",
    "tags",
)  # fmt: skip


@dataclass(frozen=True)
class LlmAsk:
    """A validated ``query`` or ``stream`` message: what a worker needs to run it."""

    id: str | int
    stream: bool
    payload: dict[str, Any]


def message_id(message: dict[str, Any]) -> str | int:
    value = message.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProtocolError("invalid_request", "This message needs an 'id' (string or number).")
    if isinstance(value, str) and not 0 < len(value) <= MAX_ID_LENGTH:
        raise ProtocolError("invalid_request", f"'id' must have 1 to {MAX_ID_LENGTH} characters.")
    return value


def parse_llm_ask(message: dict[str, Any]) -> LlmAsk:
    """Validate a query/stream message with the same rules as every other entry point."""
    ask_id = message_id(message)
    payload = {name: message[name] for name in ASK_FIELDS if name in message}
    try:
        llm_request_from(
            payload, caller=Caller(), entry_point=EntryPoint.WEBSOCKET, allow_prompt=True
        )
    except InvalidRequestError as error:
        raise ProtocolError("invalid_request", error.message) from error
    return LlmAsk(id=ask_id, stream=message["type"] == "stream", payload=payload)
