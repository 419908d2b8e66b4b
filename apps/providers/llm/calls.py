"""What callers hand the LLM core and what they get back."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from apps.core.ids import uuid7

from ..models import Endpoint, EntryPoint

CHARS_PER_TOKEN = 4
MAX_TOKEN_COUNT = 2**31 - 1  # the record's token columns
NUMBER_TYPES = (int, float)


def new_call_id() -> uuid.UUID:
    """A call's id: a UUIDv7, ordered by time (see ``apps.core.ids``), like the model's default."""
    return uuid7()


@dataclass(frozen=True)
class Caller:
    """Who calls. ``workspace_id`` comes from the key or the user (the accounts app's
    ``workspace_id_for``), never from what a request says."""

    user_id: int | None = None
    api_key_id: int | None = None
    workspace_id: int | None = None

    @classmethod
    def of(cls, principal: Any) -> Caller:
        """The caller of an authenticated principal (anything with ``user_id``, ``api_key_id``,
        ``workspace_id``)."""
        return cls(principal.user_id, principal.api_key_id, principal.workspace_id)


@dataclass
class LlmRequest:
    """One call for the core to make. Request hooks may change ``model``, ``provider``,
    ``params`` and ``messages`` before routing; the pass-through sends the caller's body with
    those applied. ``experiment`` (the experiment the caller asks to join) is for hooks; ``user``
    (the end user the caller acts for, OpenAI's ``user``) and ``tags`` (the caller's own
    labels) are recorded with the call. None of them goes upstream as such (``/v1`` sends its
    body as it came, OpenAI's ``user`` in it)."""

    messages: list[dict[str, Any]]
    model: str = ""
    provider: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    caller: Caller = field(default_factory=Caller)
    entry_point: str = EntryPoint.INTERNAL
    endpoint: str = Endpoint.CHAT
    request_id: str = ""
    experiment: str = ""
    user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    experiment_variant_id: int | None = None
    build_id: int | None = None
    build_step_id: int | None = None
    agent_id: int | None = None
    call_id: uuid.UUID = field(default_factory=new_call_id)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "estimated": self.estimated,
        }


NO_USAGE = Usage()


@dataclass
class Completion:
    call_id: uuid.UUID
    content: str
    provider: str
    model: str
    finish_reason: str
    usage: Usage
    cost: Decimal
    latency_ms: float


@dataclass
class Chunk:
    """A streamed piece: content (with the provider and model serving it), or (last) the finish
    reason, usage, call id, cost and timings (as the call record has them)."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    provider: str = ""
    model: str = ""
    call_id: uuid.UUID | None = None
    cost: Decimal | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None


def estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    return max(1, chars // CHARS_PER_TOKEN)


def token_count(value: Any) -> int | None:
    """A usage number as the provider sent it, if it is one: a non-negative whole number (given
    as an integer, a float or a numeric string), capped at what a record can hold."""
    if type(value) is int:  # what providers send: no further checks (a bool is not an int here)
        return (value if value <= MAX_TOKEN_COUNT else MAX_TOKEN_COUNT) if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, NUMBER_TYPES) or not math.isfinite(value) or value < 0:
        return None
    return min(int(value), MAX_TOKEN_COUNT)


def usage_from(
    raw: Any, messages: list[dict[str, Any]], output_text: str, chunks: int = 0
) -> Usage:
    """The provider's usage where it sent valid numbers, else an estimate marked as such.

    Usage is read here and nowhere else, so no answer, however malformed its usage, can put a
    number into a record, a metric or a cost that they cannot take.
    """
    usage = raw if isinstance(raw, dict) else {}
    given_input = token_count(usage.get("prompt_tokens", usage.get("input_tokens")))
    given_output = token_count(usage.get("completion_tokens", usage.get("output_tokens")))
    if given_input is not None and given_output is not None:
        return Usage(given_input, given_output)
    if given_input is None:
        given_input = estimate_input_tokens(messages)
    if given_output is None:
        given_output = chunks or max(1 if output_text else 0, len(output_text) // CHARS_PER_TOKEN)
    return Usage(given_input, given_output, estimated=True)
