"""Running one prompt on Celery, for an agent task or a build step.

The prompt goes through the LLM core as a stream. Its tokens go to ``on_token`` as they come;
every ``WATCH_SECONDS`` the run reports a heartbeat (so the sweep can tell a live worker from a
vanished one) and asks whether it is still wanted: when it is not (cancelled), the stream is
closed, which closes the upstream request and records the call as cancelled.

Which agent, build and step a call serves reaches its call record through the core's request
hook ``attribute_call``: the run sets ``current_attribution`` and every LLM call made inside it
carries those ids, so cost and tokens roll up per build and per agent exactly.

What a model returns is stored as it came, but for NUL characters (``\\u0000``): PostgreSQL
cannot hold one in text, and a model that emits one failed its step with a ``DataError``. They
are removed here, from every token and from provider error messages, so build steps, agent tasks,
artifacts and the live tokens all hold the same text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings as django_settings

from apps.core import tracing
from apps.providers.llm import Caller, LlmRequest, ProviderError, llm_request_from, stream

WATCH_SECONDS = 0.5


@dataclass(frozen=True)
class Attribution:
    agent_id: int | None = None
    build_id: int | None = None
    build_step_id: int | None = None


current_attribution: ContextVar[Attribution | None] = ContextVar("attribution", default=None)


async def attribute_call(request: LlmRequest) -> None:
    """The request hook: an LLM call made inside a run carries the run's ids."""
    attribution = current_attribution.get()
    if attribution is not None:
        request.agent_id = attribution.agent_id
        request.build_id = attribution.build_id
        request.build_step_id = attribution.build_step_id


@dataclass(frozen=True)
class ModelSettings:
    """What the call is made with (an agent's or a step's model config)."""

    model: str = ""
    provider: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str = ""

    @classmethod
    def of(cls, config: Any, system_prompt: str = "") -> ModelSettings:
        """The settings of a model config (an ``Agent``, a ``BuildStep``)."""
        return cls(
            model=config.model,
            provider=config.provider.name if config.provider_id else "",
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            system_prompt=system_prompt,
        )

    def payload(self, prompt: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        payload: dict[str, Any] = {"messages": messages}
        for name in ("model", "provider", "temperature", "max_tokens"):
            value = getattr(self, name)
            if value not in ("", None):
                payload[name] = value
        return payload


@dataclass(frozen=True)
class RunOutcome:
    text: str
    input_tokens: int
    output_tokens: int
    cost: Decimal
    call_id: UUID | None
    provider: str
    model: str


def storable(text: str) -> str:
    """``text`` without NUL characters (see the module's docstring)."""
    return text.replace("\x00", "")


class RunFailedError(Exception):
    def __init__(self, message: str, call_id: UUID | None = None) -> None:
        message = storable(message)
        super().__init__(message)
        self.message = message
        self.call_id = call_id


class RunCancelledError(Exception):
    pass


async def run_prompt(
    *,
    prompt: str,
    settings: ModelSettings,
    caller: Caller,
    entry_point: str,
    attribution: Attribution,
    on_token: Callable[[str], Awaitable[None]],
    still_wanted: Callable[[], Awaitable[bool]],
) -> RunOutcome:
    """Run ``prompt`` to its end; raises ``RunCancelledError`` when ``still_wanted`` says no and
    ``RunFailedError`` when the LLM core could not answer or ``BUILD_STEP_TIME_LIMIT`` passed
    (enforced here: Celery's own time limits do not apply in the threads pool workers run).
    When tracing is on, the run is a span (``build.step`` or ``agent.task``) holding its call's."""
    name = "build.step" if attribution.build_step_id is not None else "agent.task"
    ids = {
        "orchestra.build_id": attribution.build_id,
        "orchestra.build_step_id": attribution.build_step_id,
        "orchestra.agent_id": attribution.agent_id,
    }
    with tracing.span_around(name, ids):
        return await _run_prompt(
            request_payload=settings.payload(prompt),
            caller=caller,
            entry_point=entry_point,
            attribution=attribution,
            on_token=on_token,
            still_wanted=still_wanted,
        )


async def _run_prompt(
    *,
    request_payload: dict[str, Any],
    caller: Caller,
    entry_point: str,
    attribution: Attribution,
    on_token: Callable[[str], Awaitable[None]],
    still_wanted: Callable[[], Awaitable[bool]],
) -> RunOutcome:
    try:
        request = llm_request_from(request_payload, caller=caller, entry_point=entry_point)
    except ValueError as error:
        raise RunFailedError(str(error)) from error
    current_attribution.set(attribution)
    work = asyncio.ensure_future(_stream(request, on_token))
    watch = asyncio.ensure_future(_watch(still_wanted))
    try:
        limit = django_settings.BUILD_STEP_TIME_LIMIT
        await asyncio.wait((work, watch), timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            if not watch.done():
                raise RunFailedError(f"Time limit of {limit} s reached.", request.call_id)
            raise RunCancelledError()
        return work.result()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch


async def _watch(still_wanted: Callable[[], Awaitable[bool]]) -> None:
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        if not await still_wanted():
            return


async def _stream(request: LlmRequest, on_token: Callable[[str], Awaitable[None]]) -> RunOutcome:
    parts: list[str] = []
    try:
        async with aclosing(stream(request)) as chunks:
            async for chunk in chunks:
                content = storable(chunk.content or "")
                if content:
                    parts.append(content)
                    await on_token(content)
                elif chunk.usage is not None:
                    return RunOutcome(
                        text="".join(parts),
                        input_tokens=chunk.usage.input_tokens,
                        output_tokens=chunk.usage.output_tokens,
                        cost=chunk.cost or Decimal(0),
                        call_id=chunk.call_id,
                        provider=chunk.provider,
                        model=chunk.model,
                    )
    except ProviderError as error:
        raise RunFailedError(error.message, request.call_id) from error
    raise RunFailedError("The stream ended without its final usage.", request.call_id)
