"""What callers hand the LLM core and what they get back."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .models import EntryPoint

CHARS_PER_TOKEN = 4


def new_call_id() -> uuid.UUID:
    """A random (version 4) UUID without the ``os.urandom`` syscall of ``uuid4``: call ids need
    to be unique, not unpredictable."""
    return uuid.UUID(int=random.getrandbits(128), version=4)


@dataclass(frozen=True)
class Caller:
    user_id: int | None = None
    api_key_id: int | None = None


@dataclass
class LlmRequest:
    messages: list[dict[str, Any]]
    model: str = ""
    provider: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    caller: Caller = field(default_factory=Caller)
    entry_point: str = EntryPoint.INTERNAL
    request_id: str = ""
    experiment_variant_id: int | None = None
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
    """A streamed piece: content, or (last) the finish reason, usage and call id."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    provider: str = ""
    model: str = ""
    call_id: uuid.UUID | None = None


def estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    return max(1, chars // CHARS_PER_TOKEN)


def usage_from(raw: dict[str, Any] | None, messages, output_text: str, chunks: int = 0) -> Usage:
    """The provider's usage when it sent one, else an estimate marked as such."""
    if isinstance(raw, dict) and isinstance(raw.get("prompt_tokens"), int):
        return Usage(raw["prompt_tokens"], int(raw.get("completion_tokens") or 0))
    output = chunks or max(1 if output_text else 0, len(output_text) // CHARS_PER_TOKEN)
    return Usage(estimate_input_tokens(messages), output, estimated=True)
