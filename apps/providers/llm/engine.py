"""Routing, retries, fallback and recording: what every LLM call goes through.

For each request the engine resolves the public model name to deployments, takes the shared
routing state (see ``state.py``), lets the router order and filter the deployments, then tries
them: each with retries (exponential backoff, full jitter) for retryable errors, falling back to
the next on failure unless the error is the caller's. Each request's ``Execution``
(``bookkeeping.py``) keeps its attempts and writes its one record. How one attempt talks to a
provider is the caller's ``Attempt`` function, each in ``relay.py``: ``complete``, ``stream`` and
the byte pass-through.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from channels.db import database_sync_to_async

from apps.accounts.admission import admit_budget
from apps.core.events import apublish
from apps.core.registry import request_hooks
from apps.core.runtime import SingleFlight

from ..models import CallStatus, Endpoint, RoutingStrategy
from . import errors, metrics
from .bookkeeping import Execution
from .calls import LlmRequest
from .config import MAX_AGE_SECONDS, Deployment, RoutingConfig, RoutingPolicy, load_routing_config
from .errors import ProviderError
from .routing.router import Candidate, LatencyTracker, StateView, plan
from .routing.state import RoutingState, routing_state

logger = logging.getLogger(__name__)

T = TypeVar("T")
PROBE_GRACE_SECONDS = 5.0

latency_tracker = LatencyTracker()


# --- the routing config of this process ------------------------------------------------------

_config: RoutingConfig | None = None
_reloads = SingleFlight()  # the requests that find the snapshot stale share one reload


async def routing_config(version: int | None = None) -> RoutingConfig:
    """The cached snapshot, reloaded when ``version`` differs from it or it is too old."""
    global _config
    current = _config
    fresh = current and time.monotonic() - current.loaded_at < MAX_AGE_SECONDS
    if current and fresh and (version is None or version == current.version):
        return current
    return await _reloads.run(version, lambda: _reload(version))


async def _reload(version: int | None) -> RoutingConfig:
    global _config
    if version is None:
        version = await routing_state().version()
    _config = await database_sync_to_async(load_routing_config)(version)
    return _config


async def current_routing_config() -> RoutingConfig:
    """The snapshot, checked against the shared config version first: for callers that must
    see a change made a moment ago even when no request has been routed since."""
    return await routing_config(await routing_state().version())


Attempt = Callable[[Deployment, Execution], Awaitable[T]]


def backoff_seconds(retry: int, base_ms: int, max_ms: int, retry_after: float | None) -> float:
    """Full jitter: uniform in [0, base * 2^retry], capped; never sooner than Retry-After."""
    ceiling = min(max_ms, base_ms * (2**retry)) / 1000
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_ms / 1000))
    return delay


async def _read_state(
    config: RoutingConfig,
    deployments: tuple[Deployment, ...],
    strategy: str,
    request: LlmRequest,
    state: RoutingState,
) -> StateView:
    model = request.model or config.policy.default_model
    cursor = f"{model}@{request.endpoint}" if strategy == RoutingStrategy.ROUND_ROBIN else None
    return await state.read(deployments, config.policy, cursor, request.endpoint)


async def _resolve(
    request: LlmRequest, state: RoutingState
) -> tuple[RoutingConfig, tuple[Deployment, ...], StateView, str]:
    """The deployments serving the request and the shared state they are in. A snapshot found
    older than the shared version is reloaded once; the second look is final."""
    config = await routing_config()
    for final in (False, True):
        deployments = config.deployments_for(request.model, request.provider, request.endpoint)
        strategy = request.strategy or config.policy.strategy
        model = request.model or config.policy.default_model
        if deployments:
            view = await _read_state(config, deployments, strategy, request, state)
            if final or view.version == config.version:
                return config, deployments, view, strategy
            config = await routing_config(view.version)
        else:
            latest = await state.version()
            if final or latest == config.version:
                break
            config = await routing_config(latest)
    if any(config.deployments_for(request.model, request.provider, other) for other in Endpoint):
        raise ProviderError(
            errors.MODEL_NOT_FOUND, f"the model {model!r} does not serve {request.endpoint}"
        )
    raise ProviderError(errors.MODEL_NOT_FOUND, f"no enabled deployment serves model {model!r}")


async def run_request_hooks(request: LlmRequest) -> None:
    """What other apps add to a call before it is routed (see ``apps.core.registry``)."""
    for hook in request_hooks.values():
        await hook(request)


async def execute(request: LlmRequest, execution: Execution, attempt: Attempt[T]) -> T:
    """Route and try deployments until one answers; the caller records the outcome."""
    if request_hooks:
        await run_request_hooks(request)
    state = routing_state()
    config, deployments, view, strategy = await _resolve(request, state)
    policy = config.policy
    routed = plan(deployments, view, strategy=strategy, policy=policy, latency=latency_tracker)
    candidates = list(routed.candidates)
    if policy.fallback_enabled:
        candidates += _fallback_candidates(config, deployments, routed.candidates, request)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "routing %s (%s, %s): candidates %s; skipped %s",
            request.model or policy.default_model,
            request.endpoint,
            strategy,
            ", ".join(c.deployment.key for c in candidates) or "none",
            ", ".join(f"{name} ({why})" for name, why in routed.skipped.items()) or "none",
        )
    last_error: ProviderError | None = None
    for candidate in candidates:
        provider = candidate.deployment.provider
        if candidate.probe:
            ttl = provider.timeout_seconds + PROBE_GRACE_SECONDS
            if not await state.breakers.try_probe(provider.name, ttl):
                continue
        tries = 1 if candidate.probe else provider.max_retries + 1
        for retry in range(tries):
            if retry:
                metrics.retries_total.labels(provider.name).inc()
            result, error = await _try(candidate, execution, attempt, view, policy, state)
            if error is None:
                return result
            if error.client_error:
                raise error
            last_error = error
            cooldown = _cooldown_seconds(error, policy)
            if cooldown:
                await state.cooldown(candidate.deployment.key, cooldown, request.endpoint)
                break
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
    if routed.wait_seconds is not None:
        raise ProviderError(
            errors.RATE_LIMITED,
            f"every deployment is rate limited or cooling down ({reasons})",
            retry_after=routed.wait_seconds,
        )
    raise ProviderError(errors.NO_PROVIDER, f"no provider available ({reasons or 'none left'})")


def _cooldown_seconds(error: ProviderError, policy: RoutingPolicy) -> float | None:
    """How long a deployment should stay out of rotation after this error, if at all: one that
    does not know the model, or that asks to wait longer than a retry would."""
    if error.code == errors.MODEL_UNAVAILABLE:
        return errors.MODEL_UNAVAILABLE_COOLDOWN_SECONDS
    wait = error.retry_after if error.code == errors.RATE_LIMITED else None
    return wait if wait is not None and wait * 1000 > policy.retry_max_delay_ms else None


def _fallback_candidates(
    config: RoutingConfig,
    deployments: tuple[Deployment, ...],
    tried: list[Candidate],
    request: LlmRequest,
) -> list[Candidate]:
    """Deployments of the models listed as fallbacks, after the requested model's own."""
    seen = {c.deployment.key for c in tried}
    extra: list[Candidate] = []
    for name in dict.fromkeys(f for d in deployments for f in d.model.fallbacks):
        for deployment in config.deployments_for(name, endpoint=request.endpoint):
            if deployment.key not in seen:
                seen.add(deployment.key)
                extra.append(Candidate(deployment))
    return extra


async def _try(
    candidate: Candidate,
    execution: Execution,
    attempt: Attempt[T],
    view: StateView,
    policy: RoutingPolicy,
    state: RoutingState,
):
    deployment = candidate.deployment
    provider = deployment.provider.name
    state.note_request(provider)
    started, started_at = time.perf_counter(), datetime.now(UTC)
    try:
        result = await attempt(deployment, execution)
    except ProviderError as error:
        execution.add_attempt(deployment, started, started_at, error)
        if error.counts_against_circuit:
            await count_failure(provider, error, policy)
        else:
            state.note_outcome(provider, 0, failed_against_circuit=False)
        return None, error
    except asyncio.CancelledError:
        execution.add_attempt(deployment, started, started_at, cancelled=True)
        raise
    execution.deployment = deployment
    execution.add_attempt(deployment, started, started_at)
    latency_tracker.observe(deployment.key, (time.perf_counter() - started) * 1000)
    execution.success_pending = candidate.probe or state.breakers.needs_reset(
        view.breakers.get(provider)
    )
    execution.probed = candidate.probe
    if not execution.stream:  # a stream has succeeded only once it has ended (StreamRun.end)
        await count_success(execution)
    return result, None


async def count_success(execution: Execution) -> None:
    """A call served: clear the failures on record against its provider, close a probed
    circuit and announce it."""
    if not (execution.success_pending and execution.deployment):
        return
    provider = execution.deployment.provider.name
    execution.success_pending = False
    await routing_state().breakers.success(provider)
    metrics.circuit_state.labels(provider).set(0)
    if execution.probed:
        await apublish("alerts", "circuit.closed", {"provider": provider})


async def count_failure(
    provider: str, error: ProviderError, policy: RoutingPolicy | None = None
) -> None:
    """Count a failure against the provider's circuit; announce the circuit opening."""
    policy = policy or (await routing_config()).policy
    description = f"{error.code}: {error.message}"
    circuit, opened = await routing_state().breakers.failure(provider, description, policy)
    metrics.circuit_state.labels(provider).set(metrics.CIRCUIT_STATE_VALUES.get(circuit, 0))
    if opened:
        await apublish("alerts", "circuit.opened", {"provider": provider, "error": description})


async def run_recorded(request: LlmRequest, execution: Execution, attempt: Attempt[T]) -> T:
    """``execute``, recording the call as failed or cancelled if no attempt succeeds. A call
    over one of its caller's budgets is refused first (``apps.accounts.admission``): no record,
    no request upstream."""
    refusal = await admit_budget(request.caller, end_user=request.user, entry=request.entry_point)
    if refusal is not None:
        execution.discard()
        raise ProviderError(errors.INSUFFICIENT_QUOTA, refusal.message, 429, refusal.retry_after)
    try:
        return await execute(request, execution, attempt)
    except ProviderError as error:
        execution.finish(status=CallStatus.ERROR, error=error)
        raise
    except asyncio.CancelledError:
        execution.finish(status=CallStatus.CANCELLED)
        raise
    except Exception as exc:  # a bug of ours: the call is still recorded
        message = f"internal error: {type(exc).__name__}"
        execution.finish(status=CallStatus.ERROR, error=ProviderError(errors.INTERNAL, message))
        raise
