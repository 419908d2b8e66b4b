"""What every streamed answer goes through: the core's own ``stream`` and the byte pass-through's
``relay_stream`` (both in ``relay.py``).

Until its first content a stream can still fail over: ``read_until_content`` holds the events
back until one says something. From then on ``StreamRun`` accounts for what each event says
(``wire.py``: text, usage, finish reason) and ends the stream once: a stream is complete when it
carried a finish reason or its end marker, and one that stops before either failed. A failure
mid-stream counts against the provider's circuit like any other failed attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from ..models import CallStatus
from . import errors
from .bookkeeping import Execution
from .calls import Usage, usage_from
from .engine import count_failure, count_success
from .errors import ProviderError
from .wire import NOTHING, Said

E = TypeVar("E")


async def read_until_content(
    read: Callable[[], Awaitable[list[E]]], said_of: Callable[[E], Said]
) -> list[E]:
    """The events up to the first one with content (or the end): a provider that fails before
    saying anything can still be failed over, since nothing has reached the caller."""
    events: list[E] = []
    while not any(said_of(event).content for event in events):
        more = await read()
        if not more:
            if not events:
                raise ProviderError(errors.UNAVAILABLE, "the provider sent an empty stream")
            break
        events += more
    return events


class StreamRun:
    """One stream from its first content to its end."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        execution.record_started()
        self.parts: list[str] = []
        self.pieces = 0
        self.raw_usage: Any = None
        self.finish_reason = ""
        self.done = False
        self.cost: Decimal | None = None  # and the latency, once ended (as recorded)
        self.latency_ms: float | None = None

    def add(self, said: Said) -> str:
        """Account for what one event said; returns its text."""
        if said is NOTHING:
            return ""
        self.done = self.done or said.done
        self.raw_usage = said.usage or self.raw_usage
        self.finish_reason = said.finish_reason or self.finish_reason
        if said.text:
            self.execution.mark_first_token()
            self.parts.append(said.text)
            self.pieces += 1
        return said.text

    def check_complete(self) -> None:
        if not (self.done or self.finish_reason):
            raise ProviderError(
                errors.UNAVAILABLE, "the provider closed the stream before the end of its answer"
            )

    @property
    def usage(self) -> Usage:
        messages = self.execution.request.messages
        return usage_from(self.raw_usage, messages, "".join(self.parts), self.pieces)

    async def end(self, status: str, error: ProviderError | None = None) -> None:
        """Record the call (once); a failure counts against the serving provider's circuit."""
        execution = self.execution
        try:
            if error is not None and error.counts_against_circuit and execution.deployment:
                await count_failure(execution.deployment.provider.name, error)
            elif status == CallStatus.SUCCESS:
                await count_success(execution)
        finally:
            self.cost, self.latency_ms = execution.finish(
                status=status, usage=self.usage, finish_reason=self.finish_reason, error=error
            )
