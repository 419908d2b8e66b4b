"""Routing, retries, fallback and recording: what every LLM call goes through.

For each request the engine resolves the public model name to deployments, takes the shared
routing state (see ``state.py``), lets the router order and filter the deployments, then tries
them: each with retries (exponential backoff, full jitter) for retryable errors, falling back to
the next on failure unless the error is the caller's. It records one ``LlmCall`` with one
``LlmCallAttempt`` per try (see ``recorder.py``) and updates the metrics. How one attempt talks
to a provider is the caller's ``Attempt`` function: the SDK in ``core.py``, the byte
pass-through in ``relay.py``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.utils import timezone

from apps.realtime.events import apublish

from . import errors, metrics
from .calls import NO_USAGE, LlmRequest, Usage
from .config import MAX_AGE_SECONDS, Deployment, RoutingConfig, load_routing_config
from .errors import ProviderError
from .models import CallStatus, RoutingStrategy
from .recorder import recorder
from .router import Candidate, LatencyTracker, plan
from .state import StateView, shared_state

logger = logging.getLogger(__name__)

T = TypeVar("T")
PROBE_GRACE_SECONDS = 5.0

latency_tracker = LatencyTracker()


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
    """The snapshot, checked against the shared config version first: for callers that must
    see a change made a moment ago even when no request has been routed since."""
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
        usage: Usage = NO_USAGE,
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
