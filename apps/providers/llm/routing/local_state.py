"""Routing state kept by one process alone: what routing falls back to while Redis is away.

It follows the same rules as the shared state (``shared_state.py``, ``breakers.py``): circuits
open after consecutive failures or an error rate over a window and let one probe through after
the cool-down; requests and tokens are counted per minute for the RPM/TPM limits; round-robin
has its cursors; deployments cool down. It only knows what this process saw, and starts empty
each time Redis goes away: limits hold per process rather than across them, and a circuit
opens after this process's own failures.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from ..config import Deployment, RoutingPolicy, routing_policy_from
from .breakers import CLOSED, HALF_OPEN, OPEN, WINDOW_BUCKETS, BreakerView
from .router import StateReader, StateView


@dataclass
class _Circuit:
    state: str = CLOSED
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""
    probe_until: float = 0.0
    window: dict[int, list[int]] = field(default_factory=dict)  # bucket -> [total, errors]


class LocalBreakers:
    def __init__(self, state: LocalState) -> None:
        self.state = state
        self._circuits: dict[str, _Circuit] = {}
        self._failed_here: set[str] = set()

    def _bucket(self, now: float) -> int:
        return int(now // max(1, self.state.policy.breaker_window_seconds // WINDOW_BUCKETS))

    def count_request(self, provider: str) -> None:
        circuit = self._circuits.setdefault(provider, _Circuit())
        circuit.window.setdefault(self._bucket(time.time()), [0, 0])[0] += 1

    async def failure(self, provider: str, error: str, policy: RoutingPolicy) -> tuple[str, bool]:
        now = time.time()
        self.state.policy = policy
        circuit = self._circuits.setdefault(provider, _Circuit())
        current = self._bucket(now)
        for bucket in [b for b in circuit.window if b <= current - WINDOW_BUCKETS]:
            del circuit.window[bucket]
        counts = circuit.window.setdefault(current, [0, 0])
        counts[0] += 1
        counts[1] += 1
        circuit.failures += 1
        circuit.last_error = error[:200]
        total = sum(c[0] for c in circuit.window.values())
        errors = sum(c[1] for c in circuit.window.values())
        self._failed_here.add(provider)
        error_rate_reached = (
            total >= policy.breaker_min_requests and errors / total >= policy.breaker_error_rate
        )
        trip = (
            circuit.state == HALF_OPEN
            or circuit.failures >= policy.breaker_failure_threshold
            or error_rate_reached
        )
        if trip and circuit.state != OPEN:
            circuit.state, circuit.opened_at = OPEN, now
            return OPEN, True
        return circuit.state, False

    def needs_reset(self, view: BreakerView | None) -> bool:
        return view is not None and (not view.clean or view.provider in self._failed_here)

    async def success(self, provider: str) -> None:
        self._failed_here.discard(provider)
        circuit = self._circuits.get(provider)
        if circuit:
            circuit.state, circuit.failures, circuit.opened_at = CLOSED, 0, None
            circuit.last_error, circuit.probe_until = "", 0.0

    async def reset(self, provider: str) -> None:
        self._failed_here.discard(provider)
        self._circuits.pop(provider, None)

    async def try_probe(self, provider: str, ttl_seconds: float) -> bool:
        circuit = self._circuits.setdefault(provider, _Circuit())
        now = time.time()
        if circuit.probe_until > now:
            return False
        circuit.probe_until, circuit.state = now + ttl_seconds, HALF_OPEN
        return True

    def view(self, provider: str, policy: RoutingPolicy, now: float) -> BreakerView:
        circuit = self._circuits.get(provider)
        if circuit is None:
            return BreakerView(provider)
        state, opened_at = circuit.state, circuit.opened_at
        cooled = opened_at is not None and now - opened_at >= policy.breaker_cooldown_seconds
        if state == OPEN and cooled:
            state = HALF_OPEN
        return BreakerView(
            provider=provider,
            state=state,
            failures=circuit.failures,
            opened_at=opened_at,
            last_error=circuit.last_error,
            probing=circuit.probe_until > now,
        )

    async def views(self, providers: list[str], policy: RoutingPolicy) -> list[BreakerView]:
        now = time.time()
        return [self.view(provider, policy, now) for provider in providers]


class LocalState(StateReader):
    def __init__(self) -> None:
        self.policy = routing_policy_from(None)
        self.version = 0  # the config version last seen in Redis
        self.breakers = LocalBreakers(self)
        self._counts: Counter[tuple[str, str, int]] = Counter()  # (kind, provider, minute)
        self._cursors: Counter[str] = Counter()
        self._cooldowns: dict[str, float] = {}  # deployment key -> when it ends

    async def read(
        self,
        deployments: tuple[Deployment, ...],
        policy: RoutingPolicy,
        cursor_name: str | None = None,
        endpoint: str = "chat",
    ) -> StateView:
        now = time.time()
        self.policy = policy
        minute = int(now // 60)
        names = list(dict.fromkeys(deployment.provider.name for deployment in deployments))
        cursor = 0
        if cursor_name:
            self._cursors[cursor_name] += 1
            cursor = self._cursors[cursor_name]
        return StateView(
            version=self.version,
            breakers={name: self.breakers.view(name, policy, now) for name in names},
            requests_this_minute={name: self._counts["rpm", name, minute] for name in names},
            tokens_this_minute={name: self._counts["tpm", name, minute] for name in names},
            cursor=cursor,
            cooldowns={
                d.key: self._cooldowns[f"{d.key}@{endpoint}"] - now
                for d in deployments
                if self._cooldowns.get(f"{d.key}@{endpoint}", 0) > now
            },
        )

    def note_request(self, provider: str) -> None:
        minute = int(time.time() // 60)
        if len(self._counts) > 10_000:
            self._counts = Counter({k: v for k, v in self._counts.items() if k[2] >= minute})
        self._counts["rpm", provider, minute] += 1

    def note_outcome(self, provider: str, tokens: int, failed_against_circuit: bool) -> None:
        if tokens:
            self._counts["tpm", provider, int(time.time() // 60)] += tokens
        if not failed_against_circuit:
            self.breakers.count_request(provider)

    async def cooldown(self, key: str, seconds: float) -> None:
        """``key`` is ``provider/model@endpoint``."""
        self._cooldowns[key] = time.time() + seconds
