"""Which deployments to try for a request, in which order. Pure functions: no I/O here.

Strategies order the deployments that serve the requested model; filtering then drops those
whose provider's circuit is open or whose RPM/TPM limit is spent this minute. A half-open
circuit stays in the list, marked as needing the probe.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import Deployment, RoutingPolicy
from .models import RoutingStrategy
from .state import HALF_OPEN, StateView

EWMA_ALPHA = 0.3
_random = random.Random()  # one generator: seeding a new one per request costs a syscall


@dataclass(frozen=True)
class Candidate:
    deployment: Deployment
    probe: bool = False


@dataclass(frozen=True)
class Plan:
    candidates: list[Candidate]
    skipped: dict[str, str]  # provider name -> why


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
    for deployment in ordered:
        provider = deployment.provider
        breaker = state.breakers.get(provider.name)
        if breaker and not breaker.admits_requests:
            skipped[provider.name] = "circuit open"
        elif provider.rpm_limit and state.requests_this_minute.get(provider.name, 0) >= (
            provider.rpm_limit
        ):
            skipped[provider.name] = "requests-per-minute limit reached"
        elif provider.tpm_limit and state.tokens_this_minute.get(provider.name, 0) >= (
            provider.tpm_limit
        ):
            skipped[provider.name] = "tokens-per-minute limit reached"
        else:
            probe = bool(breaker and breaker.state == HALF_OPEN)
            candidates.append(Candidate(deployment, probe=probe))
    return Plan(candidates, skipped)
