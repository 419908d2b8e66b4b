"""Which deployments to try for a request, in which order. Pure functions: no I/O here.

Strategies order the deployments that serve the requested model; filtering then drops those
whose provider's circuit is open, whose RPM/TPM limit is spent this minute, or which cool down
(a provider that said 429 with a long Retry-After, or that does not know the model). A half-open
circuit stays in the list, marked as needing the probe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...models import RoutingStrategy
from ..config import Deployment, RoutingPolicy
from .breakers import HALF_OPEN, BreakerView

EWMA_ALPHA = 0.3
_random = random.Random()  # one generator: seeding a new one per request costs a syscall


@dataclass(frozen=True)
class StateView:
    """The routing state a request is planned against (shared by every process, or this
    process's own while Redis is away)."""

    version: int
    breakers: dict[str, BreakerView]
    requests_this_minute: dict[str, int]
    tokens_this_minute: dict[str, int]
    cursor: int
    cooldowns: dict[str, float] = field(default_factory=dict)  # deployment key -> seconds left


class StateReader(Protocol):
    """What gives the engine a ``StateView``: the shared state (Redis), this process's own, and
    the routing state that asks one or the other."""

    async def read(
        self,
        deployments: tuple[Deployment, ...],
        policy: RoutingPolicy,
        cursor_name: str | None = None,
        endpoint: str = "chat",
    ) -> StateView:
        """The state of ``deployments``; resting is per endpoint (a deployment that does not
        serve embeddings may well serve chat); a ``cursor_name`` moves that round-robin cursor."""
        ...


@dataclass(frozen=True)
class Candidate:
    deployment: Deployment
    probe: bool = False


@dataclass(frozen=True)
class Plan:
    candidates: list[Candidate]
    skipped: dict[str, str]  # deployment key -> why
    # When every deployment only waits (rate limits, cool-downs): seconds until one is back.
    wait_seconds: float | None = None


class LatencyTracker:
    """Moving average of each deployment's latency in this process (for least-latency).

    Deployments never measured count as fastest, so each is tried and learned once.
    """

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}

    def observe(self, key: str, latency_ms: float) -> None:
        previous = self._ms.get(key)
        self._ms[key] = (
            latency_ms if previous is None else previous + EWMA_ALPHA * (latency_ms - previous)
        )

    def estimate(self, deployment: Deployment) -> float:
        known = self._ms.get(deployment.key)
        if known is not None:
            return known
        return deployment.provider.health_latency_ms or 0.0


def _by_priority(policy: RoutingPolicy) -> Callable[[Deployment], tuple]:
    def key(d: Deployment) -> tuple:
        return (d.provider.name != policy.default_provider, d.provider.priority, d.provider.name)

    return key


def _weighted_order(deployments: list[Deployment], rng: random.Random) -> list[Deployment]:
    """Weighted sampling without replacement (Efraimidis-Spirakis); weight 0 goes last."""

    def draw(d: Deployment) -> float:
        weight = d.provider.weight
        return rng.random() ** (1.0 / weight) if weight > 0 else -1.0

    return sorted(deployments, key=draw, reverse=True)


def order(
    deployments: Sequence[Deployment],
    *,
    strategy: str,
    policy: RoutingPolicy,
    cursor: int = 0,
    latency: LatencyTracker | None = None,
    rng: random.Random | None = None,
) -> list[Deployment]:
    rng = rng or _random
    ranked = sorted(deployments, key=_by_priority(policy))
    if strategy == RoutingStrategy.ROUND_ROBIN and ranked:
        start = (cursor - 1) % len(ranked)
        return ranked[start:] + ranked[:start]
    if strategy == RoutingStrategy.RANDOM:
        rng.shuffle(ranked)
        return ranked
    if strategy == RoutingStrategy.WEIGHTED:
        return _weighted_order(ranked, rng)
    if strategy == RoutingStrategy.LEAST_LATENCY:
        tracker = latency or LatencyTracker()
        return sorted(ranked, key=tracker.estimate)
    if strategy == RoutingStrategy.LOWEST_COST:
        return sorted(
            ranked,
            key=lambda d: d.model.input_price_per_million + d.model.output_price_per_million,
        )
    return ranked


def plan(
    deployments: Sequence[Deployment],
    state: StateView,
    *,
    strategy: str,
    policy: RoutingPolicy,
    latency: LatencyTracker | None = None,
    rng: random.Random | None = None,
) -> Plan:
    ordered = order(
        deployments,
        strategy=strategy,
        policy=policy,
        cursor=state.cursor,
        latency=latency,
        rng=rng,
    )
    candidates: list[Candidate] = []
    skipped: dict[str, str] = {}
    waits: list[float] = []
    next_minute = 60 - time.time() % 60
    for deployment in ordered:
        provider = deployment.provider
        breaker = state.breakers.get(provider.name)
        cooldown = state.cooldowns.get(deployment.key)
        if breaker and not breaker.admits_requests:
            skipped[deployment.key] = "circuit open"
        elif cooldown:
            skipped[deployment.key] = f"cooling down for {cooldown:.0f} s"
            waits.append(cooldown)
        elif provider.rpm_limit and state.requests_this_minute.get(provider.name, 0) >= (
            provider.rpm_limit
        ):
            skipped[deployment.key] = "requests-per-minute limit reached"
            waits.append(next_minute)
        elif provider.tpm_limit and state.tokens_this_minute.get(provider.name, 0) >= (
            provider.tpm_limit
        ):
            skipped[deployment.key] = "tokens-per-minute limit reached"
            waits.append(next_minute)
        else:
            probe = bool(breaker and breaker.state == HALF_OPEN)
            candidates.append(Candidate(deployment, probe=probe))
    only_waiting = bool(waits) and len(waits) == len(skipped)
    return Plan(candidates, skipped, min(waits) if only_waiting else None)
