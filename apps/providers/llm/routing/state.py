"""Routing state: shared by every process through Redis, or each process's own while Redis does
not answer.

``routing_state()`` is the state of the running event loop. Its methods go to the shared state
(``shared_state.py``) while Redis answers. The first failure switches the process to its own
state (``local_state.py``), logged once; a probe then pings Redis every second and, once it
answers, routing goes back to the shared state (what was counted meanwhile stays behind). Only
the request that finds Redis gone pays for it: the ones after it do not try Redis until the
probe says it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis

from apps.core.redis import redis_client

from ..config import Deployment, RoutingPolicy
from .breakers import BreakerView
from .local_state import LocalState
from .router import StateReader, StateView
from .shared_state import (
    BUMP_SCRIPT,
    EPOCH,
    VERSION,
    SharedState,
    changes_channel,
    counter_key,
    state_key,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
SHARED, LOCAL = "shared", "local"
PROBE_INTERVAL = 1.0
REDIS_ERRORS = (redis.RedisError, OSError, TimeoutError)

__all__ = [
    "EPOCH", "LOCAL", "SHARED", "VERSION", "RoutingState", "bump_sync", "routing_state",
    "state_key",
]  # fmt: skip


class RoutingState(StateReader):
    """One per event loop (a ``redis.asyncio`` client is bound to the loop it was made on)."""

    def __init__(self) -> None:
        self.shared = SharedState()
        self.local = LocalState()
        self.breakers = Breakers(self)
        self.down_since: float | None = None
        self._prober: asyncio.Task[None] | None = None

    @property
    def mode(self) -> str:
        return LOCAL if self.down_since is not None else SHARED

    async def run(
        self,
        shared: Callable[[SharedState], Awaitable[T]],
        local: Callable[[LocalState], Awaitable[T]],
    ) -> T:
        """``shared`` while Redis answers; ``local`` from the moment it does not."""
        if self.down_since is None:
            try:
                return await shared(self.shared)
            except REDIS_ERRORS as exc:
                self._lost(exc)
        return await local(self.local)

    def _lost(self, exc: BaseException) -> None:
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.shared.discard_counts()
        logger.error(
            "Redis does not answer (%s: %s): routing with this process's own circuit breakers, "
            "limits and cursors until it is back",
            type(exc).__name__,
            exc,
        )
        self._prober = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self.shared.redis.ping()
            except REDIS_ERRORS:
                continue
            self.shared.forget_fetched()
            self.down_since = None
            self.local = LocalState()
            logger.warning("Redis answers again: routing state is shared by every process again")
            return

    # --- what the engine reads and writes ---------------------------------------------------
    async def read(
        self,
        deployments: tuple[Deployment, ...],
        policy: RoutingPolicy,
        cursor_name: str | None = None,
        endpoint: str = "chat",
    ) -> StateView:
        """The state of ``deployments``; resting is per endpoint (a deployment that does not
        serve embeddings may well serve chat)."""
        view = await self.run(
            lambda shared: shared.read(deployments, policy, cursor_name, endpoint),
            lambda local: local.read(deployments, policy, cursor_name, endpoint),
        )
        if self.down_since is None:
            self.local.version = view.version
        return view

    async def version(self) -> int:
        async def local_version(local: LocalState) -> int:
            return local.version

        return await self.run(lambda shared: shared.version(), local_version)

    def note_request(self, provider: str) -> None:
        if self.down_since is None:
            self.shared.note_request(provider)
        else:
            self.local.note_request(provider)

    def note_outcome(self, provider: str, tokens: int, failed_against_circuit: bool) -> None:
        if self.down_since is None:
            self.shared.note_outcome(provider, tokens, failed_against_circuit)
        else:
            self.local.note_outcome(provider, tokens, failed_against_circuit)

    async def cooldown(self, deployment_key: str, seconds: float, endpoint: str = "chat") -> None:
        """Keep a deployment out of rotation for ``seconds`` (in every process, Redis willing)."""
        key = f"{deployment_key}@{endpoint}"
        await self.run(
            lambda shared: shared.cooldown(key, seconds),
            lambda local: local.cooldown(key, seconds),
        )

    async def stop(self) -> None:
        """Flush what is counted and stop listening (at shutdown)."""
        if self._prober is not None:
            self._prober.cancel()
        if self.down_since is None:
            await self.shared.stop()


class Breakers:
    """The circuit breakers, shared or local as the routing state is."""

    def __init__(self, state: RoutingState) -> None:
        self.state = state

    async def failure(self, provider: str, error: str, policy: RoutingPolicy) -> tuple[str, bool]:
        """Count a failure; returns the circuit state it leaves and whether it just opened."""
        return await self.state.run(
            lambda shared: shared.breakers.failure(provider, error, policy),
            lambda local: local.breakers.failure(provider, error, policy),
        )

    def needs_reset(self, view: BreakerView | None) -> bool:
        """After a success: whether failures are on record (here, or as last fetched)."""
        if self.state.down_since is None:
            return self.state.shared.breakers.needs_reset(view)
        return self.state.local.breakers.needs_reset(view)

    async def success(self, provider: str) -> None:
        await self.state.run(
            lambda shared: shared.breakers.success(provider),
            lambda local: local.breakers.success(provider),
        )

    async def reset(self, provider: str) -> None:
        await self.state.run(
            lambda shared: shared.breakers.reset(provider),
            lambda local: local.breakers.reset(provider),
        )

    async def try_probe(self, provider: str, ttl_seconds: float) -> bool:
        """Claim the single probe of a half-open circuit; only one process gets it."""
        return await self.state.run(
            lambda shared: shared.breakers.try_probe(provider, ttl_seconds),
            lambda local: local.breakers.try_probe(provider, ttl_seconds),
        )

    async def views(self, providers: list[str], policy: RoutingPolicy) -> list[BreakerView]:
        return await self.state.run(
            lambda shared: shared.breakers.views(providers, policy),
            lambda local: local.breakers.views(providers, policy),
        )


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoutingState] = (
    weakref.WeakKeyDictionary()
)


_last: tuple[asyncio.AbstractEventLoop, RoutingState] | None = None


def routing_state() -> RoutingState:
    """The routing state of the running event loop (the last one asked for, at once: a request
    asks several times, and a web process runs one loop)."""
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last[1]
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = RoutingState()
    _last = (loop, state)
    return state


def bump_sync(name: str) -> int:
    """Bump the config version or the breaker epoch from synchronous code, and tell every loop
    of this process at once."""
    value = redis_client().register_script(BUMP_SCRIPT)(
        keys=[counter_key(name)], args=[changes_channel(), name]
    )
    for state in list(_states.values()):
        state.shared.learn(name, value)
    return value
