"""Checks on what callers send the LLM core, shared by every entry point (OpenAI-compatible API,
WebSocket, streaming API, query API) so they accept and refuse the same things."""

from __future__ import annotations

from typing import Any

from .models import RoutingStrategy

ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
MAX_NAME_LENGTH = 200


class InvalidRequestError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def messages_from(value: Any, param: str = "messages") -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"'{param}' must be a non-empty array.", param)
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequestError(f"{where} needs a valid 'role'.", where)
        if not isinstance(message.get("content"), str | list | type(None)):
            raise InvalidRequestError(
                f"{where}.content must be a string or an array.", f"{where}.content"
            )
    return value


def prompt_messages(value: Any, param: str = "prompt") -> list[dict[str, Any]]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"'{param}' must be a non-empty string.", param)
    return [{"role": "user", "content": value}]


def name_from(payload: dict[str, Any], param: str) -> str:
    value = payload.get(param) or ""
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"'{param}' must be a string of at most 200 characters.", param)
    return value


def strategy_from(value: Any, param: str = "strategy") -> str:
    if value in (None, ""):
        return ""
    if value not in RoutingStrategy.values:
        choices = ", ".join(RoutingStrategy.values)
        raise InvalidRequestError(f"Unknown strategy {value!r}; use one of {choices}.", param)
    return value


def check_params(payload: dict[str, Any]) -> None:
    """The sampling parameters, where present; others pass through to the provider."""
    for param, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = payload.get(param)
        if value is not None and not (_is_number(value) and low <= value <= high):
            raise InvalidRequestError(f"'{param}' must be a number from {low} to {high}.", param)
    for param in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(param)
        if value is not None and not _is_count(value):
            raise InvalidRequestError(f"'{param}' must be a positive integer.", param)
    stop = payload.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequestError("'stop' must be a string or an array of strings.", "stop")
