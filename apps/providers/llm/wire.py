"""What the OpenAI wire format says, endpoint by endpoint: the text, usage, finish reason and end
of an answer or of one stream event, read from the parsed JSON.

The core passes bodies through (``relay.py``) and only reads them for its own accounting; each
endpoint has a ``Reading``: where it is served, how to read a whole answer (raising
``ProviderError`` for one that is malformed) and how to read one stream event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..models import Endpoint
from . import errors
from .errors import ProviderError

Event = dict[str, Any] | None  # a parsed stream event; None is the [DONE] marker


@dataclass(frozen=True)
class Said:
    """What one answer or stream event says."""

    text: str = ""
    finish_reason: str = ""
    usage: Any = None
    done: bool = False  # the end of the stream ([DONE], response.completed)
    content: bool = False  # something a caller sees: text, a tool call, a finish, the end


NOTHING = Said()
END = Said(done=True, content=True)


def malformed(detail: str) -> ProviderError:
    return ProviderError(
        errors.MALFORMED_RESPONSE, f"the provider sent a malformed answer: {detail}"
    )


# --- chat completions ---------------------------------------------------------------------------


def _first_choice(data: Any, *keys: str) -> dict[str, Any]:
    """The first choice of an answer, which must hold ``keys``."""
    try:
        choice = data["choices"][0]
        for name in keys:
            choice[name]  # a KeyError says the answer is malformed
    except (KeyError, IndexError, TypeError) as exc:
        raise malformed(f"no choices ({type(exc).__name__})") from exc
    return choice


def chat_answer(data: Any) -> Said:
    choice = _first_choice(data, "message")
    message = choice["message"] or {}
    if not isinstance(message, dict):
        raise malformed("a choice's message is not an object")
    content = message.get("content")
    return Said(
        text=content if isinstance(content, str) else "",
        finish_reason=choice.get("finish_reason") or "",
        usage=data.get("usage"),
    )


def chat_event(data: Event) -> Said:
    if data is None:
        return END
    text, finish, content = "", "", False
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        piece = delta.get("content")
        if piece:
            text += piece
        finish = choice.get("finish_reason") or finish
        content = content or bool(piece or delta.get("tool_calls") or finish)
    usage = data.get("usage")
    if not (text or finish or usage or content):
        return NOTHING
    return Said(text=text, finish_reason=finish, usage=usage, content=content)


# --- legacy completions -------------------------------------------------------------------------


def completion_answer(data: Any) -> Said:
    choice = _first_choice(data)
    return Said(
        text=choice.get("text") or "",
        finish_reason=choice.get("finish_reason") or "",
        usage=data.get("usage"),
    )


def completion_event(data: Event) -> Said:
    if data is None:
        return END
    text, finish = "", ""
    for choice in data.get("choices") or ():
        text += choice.get("text") or ""
        finish = choice.get("finish_reason") or finish
    return Said(
        text=text, finish_reason=finish, usage=data.get("usage"), content=bool(text or finish)
    )


# --- embeddings ---------------------------------------------------------------------------------


def embedding_answer(data: Any) -> Said:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise malformed("no data")
    usage = data.get("usage")
    if isinstance(usage, dict):  # embeddings produce no output tokens
        usage = {**usage, "completion_tokens": 0}
    return Said(finish_reason="stop", usage=usage)


def no_events(data: Event) -> Said:  # pragma: no cover - embeddings do not stream
    raise malformed("an embeddings answer does not stream")


# --- the Responses API --------------------------------------------------------------------------

RESPONSE_ENDS = {
    "response.completed": "stop",
    "response.incomplete": "length",
    "response.failed": "error",
}


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part.get("text") or ""
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def response_answer(data: Any) -> Said:
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise malformed("no output")
    status = data.get("status")
    finish = "length" if status == "incomplete" else ("stop" if status == "completed" else "")
    return Said(text=output_text(data), finish_reason=finish, usage=data.get("usage"))


def response_event(data: Event) -> Said:
    if data is None:  # some servers end with [DONE] too
        return END
    kind = data.get("type")
    if kind == "response.output_text.delta":
        return Said(text=data.get("delta") or "", content=True)
    if kind == "response.function_call_arguments.delta":
        return Said(content=True)
    if kind in RESPONSE_ENDS:
        response = data.get("response") or {}
        usage = response.get("usage") if isinstance(response, dict) else None
        return Said(finish_reason=RESPONSE_ENDS[kind], usage=usage, done=True, content=True)
    if kind == "error":
        message = str(data.get("message") or "the provider reported an error mid-stream")
        raise ProviderError(errors.UNAVAILABLE, message[:300])
    return NOTHING


@dataclass(frozen=True)
class Reading:
    path: str
    answer: Callable[[Any], Said]
    event: Callable[[Event], Said]
    streams: bool = True


READINGS: dict[str, Reading] = {
    Endpoint.CHAT: Reading("/chat/completions", chat_answer, chat_event),
    Endpoint.COMPLETIONS: Reading("/completions", completion_answer, completion_event),
    Endpoint.EMBEDDINGS: Reading("/embeddings", embedding_answer, no_events, streams=False),
    Endpoint.RESPONSES: Reading("/responses", response_answer, response_event),
}
