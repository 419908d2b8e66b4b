"""The one LLM core. Every LLM call, from every entry point, goes through ``execute``.

For each request the core resolves the public model name to deployments, reads the shared
routing state in one round trip, lets the router order and filter the deployments, then tries
them: each with retries (exponential backoff, full jitter) for retryable errors, falling back to
the next on failure unless the error is the caller's. It records one ``LlmCall`` with one
``LlmCallAttempt`` per try (buffered, see ``recorder.py``) and updates the metrics.

Entry points use it through ``complete``/``stream`` (the openai SDK: query API, WebSocket,
builds) or ``relay``/``relay_stream`` in ``relay.py`` (the byte pass-through of the
OpenAI-compatible API). They differ only in the ``Attempt`` function they hand to ``execute``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.utils import timezone

from apps.realtime.events import apublish

from . import errors, metrics
from .config import MAX_AGE_SECONDS, Deployment, RoutingConfig, load_routing_config
from .errors import ProviderError
from .models import CallStatus, EntryPoint, RoutingStrategy
from .recorder import recorder
from .router import Candidate, LatencyTracker, plan
from .state import StateView, shared_state
from .transports import error_from_sdk, sdk_client

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHARS_PER_TOKEN = 4
PROBE_GRACE_SECONDS = 5.0

latency_tracker = LatencyTracker()


# --- what callers hand in and get back --------------------------------------------------------


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


# --- the routing config of this process ------------------------------------------------------

_config: RoutingConfig | None = None


async def routing_config(version: int | None = None) -> RoutingConfig:
    """The cached snapshot, reloaded when ``version`` differs from it or it is too old."""
    global _config
    current = _config
    fresh = current and time.monotonic() - current.loaded_at < MAX_AGE_SECONDS
    if current and fresh and (version is None or version == current.version):
        return current
    if version is None:
        version = await shared_state().version()
    _config = await database_sync_to_async(load_routing_config)(version)
    return _config


async def current_routing_config() -> RoutingConfig:
    """The snapshot, checked against the shared version first (one Redis read): for callers
    off the hot path that must see a change made a moment ago."""
    return await routing_config(await shared_state().version())


# --- one execution: attempts, outcome, record -------------------------------------------------


class Execution:
    """Bookkeeping for one request: its attempts, timings and the record written at the end."""

    def __init__(self, request: LlmRequest, *, stream: bool) -> None:
        self.request = request
        self.stream = stream
        self.started = time.perf_counter()
        self.started_at = timezone.now()
        self.attempts: list[dict[str, Any]] = []
        self.first_token_at: float | None = None
        self.deployment: Deployment | None = None
        self.finished = False

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def add_attempt(
        self,
        deployment: Deployment,
        started: float,
        started_at: datetime,
        error: ProviderError | None = None,
        cancelled: bool = False,
    ) -> None:
        status = (
            CallStatus.CANCELLED
            if cancelled
            else (CallStatus.ERROR if error else CallStatus.SUCCESS)
        )
        self.attempts.append(
            {
                "number": len(self.attempts) + 1,
                "provider_id": deployment.provider.id,
                "provider_name": deployment.provider.name,
                "model_name": deployment.model.name,
                "status": status,
                "error_code": error.code if error else ("cancelled" if cancelled else ""),
                "error_message": error.message[:500] if error else "",
                "http_status": error.http_status if error else None,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "started_at": started_at,
            }
        )
        if error:
            metrics.attempt_failures_total.labels(deployment.provider.name, error.code).inc()

    def finish(
        self,
        *,
        status: str,
        usage: Usage = Usage(),
        finish_reason: str = "",
        error: ProviderError | None = None,
    ) -> tuple[Decimal, float]:
        """Record the call once; returns its cost and latency."""
        if self.finished:
            return Decimal(0), 0.0
        self.finished = True
        latency = time.perf_counter() - self.started
        deployment = self.deployment
        cost = (
            deployment.model.cost(usage.input_tokens, usage.output_tokens)
            if deployment
            else Decimal(0)
        )
        ttft = (self.first_token_at - self.started) if self.first_token_at else None
        request = self.request
        recorder.record(
            {
                "id": request.call_id,
                "request_id": request.request_id[:128],
                "created_at": self.started_at,
                "entry_point": request.entry_point,
                "user_id": request.caller.user_id,
                "api_key_id": request.caller.api_key_id,
                "requested_model": request.model[:200],
                "provider_id": deployment.provider.id if deployment else None,
                "model_id": deployment.model.id if deployment else None,
                "provider_name": deployment.provider.name if deployment else "",
                "model_name": deployment.model.name if deployment else "",
                "stream": self.stream,
                "status": status,
                "error_code": error.code
                if error
                else ("cancelled" if status == CallStatus.CANCELLED else ""),
                "error_message": error.message[:500] if error else "",
                "finish_reason": (finish_reason or "")[:32],
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "tokens_estimated": usage.estimated,
                "cost": cost,
                "latency_ms": latency * 1000,
                "time_to_first_token_ms": ttft * 1000 if ttft is not None else None,
                "attempt_count": len(self.attempts),
                "experiment_variant_id": request.experiment_variant_id,
                "build_step_id": request.build_step_id,
                "agent_id": request.agent_id,
            },
            self.attempts,
        )
        if deployment:
            shared_state().note_outcome(deployment.provider.name, usage.total_tokens, False)
        self._observe(status, usage, cost, latency, ttft)
        return cost, latency * 1000

    def _observe(self, status: str, usage: Usage, cost: Decimal, latency: float, ttft) -> None:
        # Without a deployment the label stays fixed: callers' model names are unbounded.
        provider = self.deployment.provider.name if self.deployment else "none"
        model = self.deployment.model.name if self.deployment else "none"
        series = metrics.for_deployment(provider, model)
        series.calls[status].inc()
        series.duration.observe(latency)
        if ttft is not None:
            series.time_to_first_token.observe(ttft)
        if usage.total_tokens:
            series.input_tokens.inc(usage.input_tokens)
            series.output_tokens.inc(usage.output_tokens)
        if cost:
            series.cost.inc(float(cost))
        first = self.attempts[0]["provider_name"] if self.attempts else provider
        if self.deployment and first != provider:
            metrics.fallbacks_total.labels(first, provider).inc()


Attempt = Callable[[Deployment, Execution], Awaitable[T]]


def backoff_seconds(retry: int, base_ms: int, max_ms: int, retry_after: float | None) -> float:
    """Full jitter: uniform in [0, base * 2^retry], capped; never sooner than Retry-After."""
    ceiling = min(max_ms, base_ms * (2**retry)) / 1000
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_ms / 1000))
    return delay


async def _read_state(config: RoutingConfig, deployments, strategy: str, model: str) -> StateView:
    providers = list({d.provider.name: d.provider for d in deployments}.values())
    cursor = model if strategy == RoutingStrategy.ROUND_ROBIN else None
    return await shared_state().read(providers, config.policy, cursor)


async def _resolve(
    request: LlmRequest,
) -> tuple[RoutingConfig, tuple[Deployment, ...], StateView, str]:
    """The deployments serving the request and the shared state they are in. A snapshot found
    older than the shared version is reloaded once; the second look is final."""
    config = await routing_config()
    for final in (False, True):
        deployments = config.deployments_for(request.model, request.provider)
        strategy = request.strategy or config.policy.strategy
        model = request.model or config.policy.default_model
        if deployments:
            view = await _read_state(config, deployments, strategy, model)
            if final or view.version == config.version:
                return config, deployments, view, strategy
            config = await routing_config(view.version)
        else:
            latest = await shared_state().version()
            if final or latest == config.version:
                break
            config = await routing_config(latest)
    raise ProviderError(errors.MODEL_NOT_FOUND, f"no enabled deployment serves model {model!r}")


async def execute(request: LlmRequest, execution: Execution, attempt: Attempt[T]) -> T:
    """Route and try deployments until one answers; the caller records the outcome."""
    config, deployments, view, strategy = await _resolve(request)
    policy = config.policy
    state = shared_state()
    routed = plan(deployments, view, strategy=strategy, policy=policy, latency=latency_tracker)
    candidates = list(routed.candidates)
    if policy.fallback_enabled:
        candidates += _fallback_candidates(config, deployments, routed.candidates)
    last_error: ProviderError | None = None
    for candidate in candidates:
        provider = candidate.deployment.provider
        if candidate.probe:
            ttl = provider.timeout_seconds + PROBE_GRACE_SECONDS
            if not await state.breaker_try_probe(provider.name, ttl):
                continue
        tries = 1 if candidate.probe else provider.max_retries + 1
        for retry in range(tries):
            if retry:
                metrics.retries_total.labels(provider.name).inc()
            result, error = await _try(candidate, execution, attempt, view, policy)
            if error is None:
                return result
            if error.client_error:
                raise error
            last_error = error
            if not (error.retryable and retry + 1 < tries):
                break
            await asyncio.sleep(
                backoff_seconds(
                    retry, policy.retry_base_delay_ms, policy.retry_max_delay_ms, error.retry_after
                )
            )
        if not policy.fallback_enabled:
            break
    if last_error:
        raise last_error
    reasons = ", ".join(f"{name}: {why}" for name, why in routed.skipped.items())
    raise ProviderError(errors.NO_PROVIDER, f"no provider available ({reasons or 'none left'})")


def _fallback_candidates(
    config: RoutingConfig, deployments, tried: list[Candidate]
) -> list[Candidate]:
    """Deployments of the models listed as fallbacks, after the requested model's own."""
    seen = {c.deployment.key for c in tried}
    extra: list[Candidate] = []
    for name in dict.fromkeys(f for d in deployments for f in d.model.fallbacks):
        for deployment in config.deployments_for(name):
            if deployment.key not in seen:
                seen.add(deployment.key)
                extra.append(Candidate(deployment))
    return extra


async def _try(
    candidate: Candidate, execution: Execution, attempt: Attempt[T], view: StateView, policy
):
    deployment = candidate.deployment
    provider = deployment.provider.name
    state = shared_state()
    state.note_request(provider)
    started, started_at = time.perf_counter(), timezone.now()
    try:
        result = await attempt(deployment, execution)
    except ProviderError as error:
        execution.add_attempt(deployment, started, started_at, error)
        if error.counts_against_circuit:
            description = f"{error.code}: {error.message}"
            circuit, opened = await state.breaker_failure(provider, description, policy)
            metrics.circuit_state.labels(provider).set(metrics.CIRCUIT_STATE_VALUES.get(circuit, 0))
            if opened:
                await apublish(
                    "alerts", "circuit.opened", {"provider": provider, "error": description}
                )
        else:
            state.note_outcome(provider, 0, failed_against_circuit=False)
        return None, error
    except asyncio.CancelledError:
        execution.add_attempt(deployment, started, started_at, cancelled=True)
        raise
    execution.deployment = deployment
    execution.add_attempt(deployment, started, started_at)
    latency_tracker.observe(deployment.key, (time.perf_counter() - started) * 1000)
    if candidate.probe or state.breaker_needs_reset(view.breakers.get(provider)):
        await state.breaker_success(provider)
        metrics.circuit_state.labels(provider).set(0)
        if candidate.probe:
            await apublish("alerts", "circuit.closed", {"provider": provider})
    return result, None


async def run_recorded(request: LlmRequest, execution: Execution, attempt: Attempt[T]) -> T:
    """``execute``, recording the call as failed or cancelled if no attempt succeeds."""
    try:
        return await execute(request, execution, attempt)
    except ProviderError as error:
        execution.finish(status=CallStatus.ERROR, error=error)
        raise
    except asyncio.CancelledError:
        execution.finish(status=CallStatus.CANCELLED)
        raise


# --- the SDK entry points: complete and stream ------------------------------------------------


def _sdk_arguments(request: LlmRequest, deployment: Deployment) -> dict[str, Any]:
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": deployment.model.name, "messages": request.messages, "extra_body": params}


async def complete(request: LlmRequest) -> Completion:
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution):
        try:
            response = await sdk_client(deployment.provider).chat.completions.create(
                **_sdk_arguments(request, deployment)
            )
        except Exception as exc:
            raise error_from_sdk(exc) from exc
        if not getattr(response, "choices", None):
            raise ProviderError(errors.MALFORMED_RESPONSE, "the provider answered without choices")
        return response

    response = await run_recorded(request, execution, attempt)
    choice = response.choices[0]
    content = choice.message.content or ""
    raw_usage = response.usage.model_dump() if response.usage else None
    usage = usage_from(raw_usage, request.messages, content)
    finish_reason = choice.finish_reason or ""
    cost, latency_ms = execution.finish(
        status=CallStatus.SUCCESS, usage=usage, finish_reason=finish_reason
    )
    return Completion(
        call_id=request.call_id,
        content=content,
        provider=execution.deployment.provider.name,
        model=execution.deployment.model.name,
        finish_reason=finish_reason,
        usage=usage,
        cost=cost,
        latency_ms=latency_ms,
    )


async def stream(request: LlmRequest) -> AsyncIterator[Chunk]:
    """Content chunks as they come, then one closing chunk with finish reason and usage.

    Fallback happens only before the first chunk; closing the iterator (or cancelling its
    task) closes the upstream connection and records the call as cancelled.
    """
    execution = Execution(request, stream=True)

    async def attempt(deployment: Deployment, _: Execution):
        arguments = _sdk_arguments(request, deployment)
        if deployment.provider.stream_usage:
            arguments["stream_options"] = {"include_usage": True}
        try:
            upstream = await sdk_client(deployment.provider).chat.completions.create(
                stream=True, **arguments
            )
        except Exception as exc:
            raise error_from_sdk(exc) from exc
        try:
            return upstream, await _read_until_content(upstream, deployment)
        except BaseException:
            await upstream.close()
            raise

    upstream, opening = await run_recorded(request, execution, attempt)
    deployment = execution.deployment
    parts: list[str] = []
    raw_usage = None
    finish_reason = ""
    pieces = 0
    status, error = CallStatus.CANCELLED, None
    try:
        event = opening.pop(0)
        while event is not None:
            raw_usage = event.usage.model_dump() if getattr(event, "usage", None) else raw_usage
            for choice in event.choices or ():
                text = choice.delta.content if choice.delta else None
                if text:
                    execution.mark_first_token()
                    parts.append(text)
                    pieces += 1
                    yield Chunk(content=text)
                finish_reason = choice.finish_reason or finish_reason
            event = opening.pop(0) if opening else await _next_event(upstream, deployment)
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        raise
    finally:
        await upstream.close()
        usage = usage_from(raw_usage, request.messages, "".join(parts), pieces)
        execution.finish(status=status, usage=usage, finish_reason=finish_reason, error=error)
    yield Chunk(
        finish_reason=finish_reason,
        usage=usage,
        provider=deployment.provider.name,
        model=deployment.model.name,
        call_id=request.call_id,
    )


def _event_has_content(event) -> bool:
    return any(
        (choice.delta and choice.delta.content) or choice.finish_reason
        for choice in event.choices or ()
    )


async def _read_until_content(upstream, deployment: Deployment) -> list:
    """Events up to the first with content or a finish (or the end, as ``None``): until then
    nothing has reached the caller, so a failing provider can still be failed over."""
    events: list = []
    while not events or (events[-1] is not None and not _event_has_content(events[-1])):
        events.append(await _next_event(upstream, deployment))
        if events[0] is None:
            raise ProviderError(errors.UNAVAILABLE, "the provider sent an empty stream")
    return events


async def _next_event(upstream, deployment: Deployment):
    """The next SDK stream event, or None at the end; a silent provider times out."""
    try:
        async with asyncio.timeout(deployment.provider.timeout_seconds):
            return await anext(upstream)
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        raise ProviderError(errors.TIMEOUT, "the provider stopped sending") from exc
    except Exception as exc:
        raise error_from_sdk(exc) from exc


async def collect(request: LlmRequest) -> tuple[str, Chunk]:
    """Run a stream to its end: the whole text and the closing chunk (for tests and tasks)."""
    parts: list[str] = []
    last = Chunk()
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.content)
            last = chunk
    return "".join(parts), last
