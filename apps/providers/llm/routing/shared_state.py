"""Routing state shared by every process through Redis (``state.py`` falls back to each
process's own, ``local_state.py``, while Redis does not answer).

Circuit breakers (``breakers.py``), request and token counters for rate limits, round-robin
cursors and the routing config version live in Redis so that web processes and Celery workers
agree on them. Two counters say when something changed: the config version (bumped on every
save of a provider, model or routing settings) and the breaker epoch (bumped on every circuit
transition). Each bump is also published on a Redis channel; each process listens to it, so in
the common case the hot path knows both counters without asking Redis at all (``read``); when
the listener is not connected it reads them per request instead. While both are unchanged, the
breakers last fetched still hold; shared RPM/TPM counts are refetched at least every
``COUNTS_MAX_AGE`` seconds (rate limits hold across processes to within about a second): in the
background once they are half that old, so under steady traffic no request waits for the fetch,
and once per stale state for the requests that do (``SingleFlight``). The
process's own counter increments are accumulated in memory and flushed every ``FLUSH_INTERVAL``
seconds, so a request adds no Redis write unless something fails. Round-robin is the exception:
its shared cursor costs one ``INCR`` per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass

from apps.core.redis import async_redis
from apps.core.redis import key as platform_key
from apps.core.runtime import SingleFlight

from ..config import Deployment, RoutingPolicy, routing_policy_from
from .breakers import CLOSED, BreakerView, CircuitBreakers, breaker_view
from .router import StateReader, StateView

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
COUNTS_MAX_AGE = 1.0
NAMESPACE = "llm"

# KEYS[1] the counter; ARGV[1] the channel, ARGV[2] the counter's name in the message.
BUMP_SCRIPT = """
local value = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ':' .. value)
return value
"""
VERSION, EPOCH = "version", "epoch"


def state_key(*parts: str) -> str:
    return platform_key(NAMESPACE, *parts)


def changes_channel() -> str:
    return state_key("changes")


def counter_key(name: str) -> str:
    return state_key("config", "version") if name == VERSION else state_key("breaker", "epoch")


@dataclass(slots=True)
class _Fetched:
    """Shared state as last fetched for one set of providers; ``views`` caches the breaker
    views made of it (``SharedState._breaker_views``)."""

    version: int
    epoch: int
    minute: int
    at: float
    breakers: dict[str, tuple[dict, bool]]
    requests: dict[str, int]
    tokens: dict[str, int]
    cooldowns: dict[str, float]  # deployment key -> when it ends (epoch seconds)
    views: tuple[RoutingPolicy, dict[str, BreakerView]] | None = None


class SharedState(StateReader):
    """One per event loop: a redis.asyncio client is bound to the loop it was created on."""

    def __init__(self) -> None:
        self.redis = async_redis()
        self._requests: Counter[str] = Counter()
        self._tokens: Counter[str] = Counter()
        self._window_totals: Counter[str] = Counter()
        self._flusher: asyncio.Task | None = None
        self._fetched: dict[tuple[str, ...], _Fetched] = {}
        self._fetches = SingleFlight()  # one fetch at a time per state fetched
        self._refreshing: dict[tuple[str, ...], asyncio.Task[None]] = {}
        self._bump = self.redis.register_script(BUMP_SCRIPT)
        self._known: dict[str, int] = {}  # version and epoch as the listener last heard them
        self._listener: asyncio.Task | None = None
        # The latest policy seen by ``read``; it sizes the error-rate window.
        self.policy = routing_policy_from(None)
        self.breakers = CircuitBreakers(self)

    # --- keys -------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return state_key(*parts)

    def changes_channel(self) -> str:
        return changes_channel()

    def version_key(self) -> str:
        return counter_key(VERSION)

    def epoch_key(self) -> str:
        return counter_key(EPOCH)

    def minute_key(self, kind: str, provider: str, now: float) -> str:
        return self.key(kind, provider, str(int(now // 60)))

    def cursor_key(self, name: str) -> str:
        return self.key("cursor", name)

    def cooldown_key(self, deployment_key: str) -> str:
        return self.key("cooldown", deployment_key)

    # --- the one read of the hot path -----------------------------------------------------
    async def read(
        self,
        deployments: tuple[Deployment, ...],
        policy: RoutingPolicy,
        cursor_name: str | None = None,
        endpoint: str = "chat",
    ) -> StateView:
        now = time.time()
        self.policy = policy
        keys = (*(deployment.key for deployment in deployments), endpoint)
        version, epoch = await self._counters()
        cursor = await self.redis.incr(self.cursor_key(cursor_name)) if cursor_name else 0
        fetched = self._fetched.get(keys)
        wanted = (version, epoch, int(now // 60))
        age = time.monotonic() - fetched.at if fetched else math.inf
        if not (fetched and (fetched.version, fetched.epoch, fetched.minute) == wanted) or (
            age >= COUNTS_MAX_AGE
        ):
            fetched = await self._fetches.run(
                (keys, wanted), lambda: self._fetch_into(keys, deployments, now, endpoint)
            )
        elif age >= COUNTS_MAX_AGE / 2:
            self._refresh(keys, wanted, deployments, endpoint)
        requests, tokens = self._requests, self._tokens
        return StateView(
            version=fetched.version,
            breakers=self._breaker_views(fetched, policy, now),
            requests_this_minute={n: c + requests.get(n, 0) for n, c in fetched.requests.items()},
            tokens_this_minute={n: c + tokens.get(n, 0) for n, c in fetched.tokens.items()},
            cursor=cursor,
            cooldowns={k: end - now for k, end in fetched.cooldowns.items() if end > now}
            if fetched.cooldowns
            else {},
        )

    @staticmethod
    def _breaker_views(
        fetched: _Fetched, policy: RoutingPolicy, now: float
    ) -> dict[str, BreakerView]:
        """The breakers as fetched, seen now. Made once per fetch and policy while every circuit
        is closed (a closed circuit looks the same at any moment); an open one turns half-open
        with time, so then they are made for each request."""
        if fetched.views is not None and fetched.views[0] is policy:
            return fetched.views[1]
        views = {
            name: breaker_view(name, raw, probing, policy, now)
            for name, (raw, probing) in fetched.breakers.items()
        }
        if all(view.state == CLOSED for view in views.values()):
            fetched.views = (policy, views)
        return views

    async def _fetch_into(
        self, keys: tuple[str, ...], deployments: tuple[Deployment, ...], now: float, endpoint: str
    ) -> _Fetched:
        fetched = self._fetched[keys] = await self._fetch(deployments, now, endpoint)
        return fetched

    def _refresh(
        self,
        keys: tuple[str, ...],
        wanted: tuple[int, int, int],
        deployments: tuple[Deployment, ...],
        endpoint: str,
    ) -> None:
        """Fetch the counts again in the background once they are half ``COUNTS_MAX_AGE`` old,
        so that under steady traffic no request waits for the fetch. Fetched on the request path,
        with the requests that found the state stale meanwhile each sending their own, it
        delayed 1,000 streams' first tokens by up to a second (``bench/README.md``); a fetch
        that fails here is left to the request that finds the counts too old."""
        running = self._refreshing.get(keys)
        if running is not None and not running.done():
            return

        async def refresh() -> None:
            with contextlib.suppress(Exception):
                await self._fetches.run(
                    (keys, wanted),
                    lambda: self._fetch_into(keys, deployments, time.time(), endpoint),
                )

        self._refreshing[keys] = asyncio.get_running_loop().create_task(refresh())

    async def _fetch(
        self, deployments: tuple[Deployment, ...], now: float, endpoint: str
    ) -> _Fetched:
        names = list(dict.fromkeys(deployment.provider.name for deployment in deployments))
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget(self.version_key(), self.epoch_key())
        for name in names:
            pipe.hgetall(self.breakers.key(name))
            pipe.exists(self.breakers.probe_key(name))
            pipe.get(self.minute_key("rpm", name, now))
            pipe.get(self.minute_key("tpm", name, now))
        for deployment in deployments:
            pipe.pttl(self.cooldown_key(f"{deployment.key}@{endpoint}"))
        replies = await pipe.execute()
        version, epoch = (int(value or 0) for value in replies[0])
        breakers, requests, tokens = {}, {}, {}
        for index, name in enumerate(names):
            raw, probing, rpm, tpm = replies[1 + 4 * index : 5 + 4 * index]
            breakers[name] = (raw, bool(probing))
            requests[name] = int(rpm or 0)
            tokens[name] = int(tpm or 0)
        ttls = replies[1 + 4 * len(names) :]
        cooldowns = {
            deployment.key: now + ttl / 1000
            for deployment, ttl in zip(deployments, ttls, strict=True)
            if ttl and ttl > 0
        }
        return _Fetched(
            version, epoch, int(now // 60), time.monotonic(), breakers, requests, tokens, cooldowns
        )

    async def cooldown(self, key: str, seconds: float) -> None:
        """Keep a deployment (``provider/model@endpoint``) out of rotation in every process."""
        await self.redis.set(self.cooldown_key(key), "1", px=max(1, int(seconds * 1000)))
        await self.bump_epoch()

    def forget_fetched(self) -> None:
        self._fetched.clear()

    async def version(self) -> int:
        return (await self._counters())[0]

    async def _counters(self) -> tuple[int, int]:
        """Config version and breaker epoch: as heard by the listener, or read from Redis."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if len(self._known) == 2:
            return self._known[VERSION], self._known[EPOCH]
        values = await self.redis.mget(self.version_key(), self.epoch_key())
        return int(values[0] or 0), int(values[1] or 0)

    async def _listen(self) -> None:
        """Follow the changes channel; while it is not followed, ``_known`` stays empty."""
        lost = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(changes_channel())
                current = await self.redis.mget(self.version_key(), self.epoch_key())
                self._known = {VERSION: int(current[0] or 0), EPOCH: int(current[1] or 0)}
                lost = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        name, _, value = message["data"].decode().partition(":")
                        self._known[name] = int(value)  # bumps are published in order
            except asyncio.CancelledError:
                raise
            except Exception:
                if not lost:
                    logger.warning("lost the routing changes channel; polling until back")
                lost = True
            finally:
                self._known = {}
                await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Flush the counters and stop listening (at shutdown)."""
        if self._listener is not None:
            self._listener.cancel()
        await self.flush()

    # --- counters, flushed in the background ----------------------------------------------
    def note_request(self, provider: str) -> None:
        self._requests[provider] += 1
        self._ensure_flusher()

    def note_outcome(self, provider: str, tokens: int, failed_against_circuit: bool) -> None:
        """Tokens for the TPM limit; the window total (failures are counted by the breakers)."""
        if tokens:
            self._tokens[provider] += tokens
        if not failed_against_circuit:
            self._window_totals[provider] += 1
        self._ensure_flusher()

    def take_unflushed_total(self, provider: str) -> int:
        """This process's requests to ``provider`` not yet in the shared window (the breakers
        count them with a failure, so the error rate sees every request)."""
        return self._window_totals.pop(provider, 0)

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        while self._requests or self._tokens or self._window_totals:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                # Redis away: counts this old would land in a later minute; they are dropped.
                self.discard_counts()

    async def flush(self) -> None:
        requests, tokens, totals = self._requests, self._tokens, self._window_totals
        self._requests, self._tokens, self._window_totals = Counter(), Counter(), Counter()
        if not (requests or tokens or totals):
            return
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for kind, counts in (("rpm", requests), ("tpm", tokens)):
            for provider, count in counts.items():
                key = self.minute_key(kind, provider, now)
                pipe.incrby(key, count)
                pipe.expire(key, 120)
        for provider, count in totals.items():
            key = self.breakers.window_keys(provider, now)[0]
            pipe.hincrby(key, "total", count)
            pipe.expire(key, self.policy.breaker_window_seconds * 2)
        await pipe.execute()

    def discard_counts(self) -> None:
        self._requests, self._tokens, self._window_totals = Counter(), Counter(), Counter()

    # --- change counters ------------------------------------------------------------------
    async def bump_epoch(self) -> None:
        self.learn(
            EPOCH, await self._bump(keys=[self.epoch_key()], args=[changes_channel(), EPOCH])
        )
        self._fetched.clear()

    def learn(self, name: str, value: int) -> None:
        """A bump made by this process: known at once, not when the channel brings it back."""
        if self._known:
            self._known[name] = value
