"""Routing state shared by every process through Redis (the cache server).

Circuit breakers, request and token counters for rate limits, round-robin cursors and the
routing config version live in Redis so that web processes and Celery workers agree on them.
Two counters say when something changed: the config version (bumped on every save of a
provider, model or routing settings) and the breaker epoch (bumped on every circuit
transition). Each bump is also published on a Redis channel; each process listens to it, so in
the common case the hot path knows both counters without asking Redis at all (``read``); when
the listener is not connected it reads them per request instead. While both are unchanged, the
breakers last fetched still hold; shared RPM/TPM counts are refetched at least every
``COUNTS_MAX_AGE`` seconds (rate limits hold across processes to within about a second). The
process's own counter increments are accumulated in memory and flushed every ``FLUSH_INTERVAL``
seconds, so a request adds no Redis write unless something fails. Round-robin is the exception:
its shared cursor costs one ``INCR`` per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings

from .config import ProviderConfig, RoutingPolicy, routing_policy_from

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
COUNTS_MAX_AGE = 1.0
WINDOW_BUCKETS = 6

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

_FAILURE_SCRIPT = """
-- KEYS[1] breaker epoch, KEYS[2] breaker hash, KEYS[3..] window buckets (current first)
-- ARGV: now, failure threshold, error rate, min requests, bucket ttl, error text,
--       requests of this process not flushed yet, the changes channel
redis.call('HINCRBY', KEYS[3], 'total', 1 + tonumber(ARGV[7]))
redis.call('HINCRBY', KEYS[3], 'errors', 1)
redis.call('EXPIRE', KEYS[3], ARGV[5])
local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
redis.call('HSET', KEYS[2], 'last_error', ARGV[6], 'last_failure_at', ARGV[1])
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
local total, errors = 0, 0
for i = 3, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'total', 'errors')
  total = total + (tonumber(v[1]) or 0)
  errors = errors + (tonumber(v[2]) or 0)
end
local trip = state == 'half_open' or failures >= tonumber(ARGV[2])
  or (total >= tonumber(ARGV[4]) and errors / total >= tonumber(ARGV[3]))
if trip and state ~= 'open' then
  redis.call('HSET', KEYS[2], 'state', 'open', 'opened_at', ARGV[1])
  redis.call('PUBLISH', ARGV[8], 'epoch:' .. redis.call('INCR', KEYS[1]))
  return {'open', 1}
end
return {state, 0}
"""


# KEYS[1] the counter; ARGV[1] the channel, ARGV[2] the counter's name in the message.
BUMP_SCRIPT = """
local value = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ':' .. value)
return value
"""
VERSION, EPOCH = "version", "epoch"


def key_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:llm:"


def changes_channel() -> str:
    return f"{key_prefix()}changes"


def version_key() -> str:
    return f"{key_prefix()}config:version"


@dataclass(frozen=True)
class BreakerView:
    """A provider's circuit as seen at one moment; ``state`` accounts for the cool-down."""

    provider: str
    state: str = CLOSED
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""
    probing: bool = False

    @property
    def clean(self) -> bool:
        return self.state == CLOSED and self.failures == 0

    @property
    def admits_requests(self) -> bool:
        return self.state == CLOSED or (self.state == HALF_OPEN and not self.probing)


def breaker_view(provider: str, raw: dict, probing: bool, policy: RoutingPolicy, now: float):
    state = _text(raw.get(b"state")) or CLOSED
    opened_at = float(raw[b"opened_at"]) if b"opened_at" in raw else None
    if (
        state == OPEN
        and opened_at is not None
        and now - opened_at >= policy.breaker_cooldown_seconds
    ):
        state = HALF_OPEN
    return BreakerView(
        provider=provider,
        state=state,
        failures=int(raw.get(b"failures", 0)),
        opened_at=opened_at,
        last_error=_text(raw.get(b"last_error")),
        probing=probing,
    )


def _text(value: bytes | None) -> str:
    return value.decode() if value else ""


@dataclass(frozen=True)
class StateView:
    version: int
    breakers: dict[str, BreakerView]
    requests_this_minute: dict[str, int]
    tokens_this_minute: dict[str, int]
    cursor: int


@dataclass(frozen=True)
class _Fetched:
    """Shared state as last fetched for one set of providers."""

    version: int
    epoch: int
    minute: int
    at: float
    breakers: dict[str, tuple[dict, bool]]
    requests: dict[str, int]
    tokens: dict[str, int]


class SharedState:
    """One per event loop: a redis.asyncio client is bound to the loop it was created on."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = key_prefix()
        self._failure = self.redis.register_script(_FAILURE_SCRIPT)
        self._requests: Counter[str] = Counter()
        self._tokens: Counter[str] = Counter()
        self._window_totals: Counter[str] = Counter()
        self._flusher: asyncio.Task | None = None
        self._fetched: dict[tuple[str, ...], _Fetched] = {}
        self._failed_here: set[str] = set()  # failures this process counted since a success
        self._bump = self.redis.register_script(BUMP_SCRIPT)
        self._known: dict[str, int] = {}  # version and epoch as the listener last heard them
        self._listener: asyncio.Task | None = None
        # The latest policy seen by ``read``; it sizes the error-rate window.
        self.policy = routing_policy_from(None)

    # --- keys ---------------------------------------------------------------------------
    def version_key(self) -> str:
        return version_key()

    def epoch_key(self) -> str:
        return f"{self.prefix}breaker:epoch"

    def breaker_key(self, provider: str) -> str:
        return f"{self.prefix}breaker:{provider}"

    def probe_key(self, provider: str) -> str:
        return f"{self.prefix}breaker:{provider}:probe"

    def minute_key(self, kind: str, provider: str, now: float) -> str:
        return f"{self.prefix}{kind}:{provider}:{int(now // 60)}"

    def cursor_key(self, name: str) -> str:
        return f"{self.prefix}cursor:{name}"

    def window_keys(self, provider: str, now: float) -> list[str]:
        size = max(1, self.policy.breaker_window_seconds // WINDOW_BUCKETS)
        current = int(now // size)
        return [f"{self.prefix}window:{provider}:{current - i}" for i in range(WINDOW_BUCKETS)]

    # --- the one read of the hot path -----------------------------------------------------
    async def read(
        self,
        providers: list[ProviderConfig],
        policy: RoutingPolicy,
        cursor_name: str | None = None,
    ) -> StateView:
        now = time.time()
        self.policy = policy
        names = tuple(provider.name for provider in providers)
        version, epoch = await self._counters()
        cursor = await self.redis.incr(self.cursor_key(cursor_name)) if cursor_name else 0
        fetched = self._fetched.get(names)
        if not (
            fetched
            and (fetched.version, fetched.epoch, fetched.minute) == (version, epoch, int(now // 60))
            and time.monotonic() - fetched.at < COUNTS_MAX_AGE
        ):
            fetched = self._fetched[names] = await self._fetch(names, now)
        return StateView(
            version=fetched.version,
            breakers={
                name: breaker_view(name, raw, probing, policy, now)
                for name, (raw, probing) in fetched.breakers.items()
            },
            requests_this_minute={n: c + self._requests[n] for n, c in fetched.requests.items()},
            tokens_this_minute={n: c + self._tokens[n] for n, c in fetched.tokens.items()},
            cursor=cursor,
        )

    async def _fetch(self, names: tuple[str, ...], now: float) -> _Fetched:
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget(self.version_key(), self.epoch_key())
        for name in names:
            pipe.hgetall(self.breaker_key(name))
            pipe.exists(self.probe_key(name))
            pipe.get(self.minute_key("rpm", name, now))
            pipe.get(self.minute_key("tpm", name, now))
        replies = await pipe.execute()
        version, epoch = (int(value or 0) for value in replies[0])
        breakers, requests, tokens = {}, {}, {}
        for index, name in enumerate(names):
            raw, probing, rpm, tpm = replies[1 + 4 * index : 5 + 4 * index]
            breakers[name] = (raw, bool(probing))
            requests[name] = int(rpm or 0)
            tokens[name] = int(tpm or 0)
        return _Fetched(
            version, epoch, int(now // 60), time.monotonic(), breakers, requests, tokens
        )

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
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(changes_channel())
                current = await self.redis.mget(self.version_key(), self.epoch_key())
                self._known = {VERSION: int(current[0] or 0), EPOCH: int(current[1] or 0)}
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        name, _, value = message["data"].decode().partition(":")
                        self._known[name] = int(value)  # bumps are published in order
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("lost the routing changes channel; polling until back")
            finally:
                self._known = {}
                await pubsub.aclose()
            await asyncio.sleep(1.0)

    # --- counters, flushed in the background ----------------------------------------------
    def note_request(self, provider: str) -> None:
        self._requests[provider] += 1
        self._ensure_flusher()

    def note_outcome(self, provider: str, tokens: int, failed_against_circuit: bool) -> None:
        """Tokens for the TPM limit; the window total (failures are counted by the script)."""
        if tokens:
            self._tokens[provider] += tokens
        if not failed_against_circuit:
            self._window_totals[provider] += 1
        self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        while self._requests or self._tokens or self._window_totals:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:  # Redis away: keep counting locally, try again
                logger.warning("could not flush routing counters to Redis", exc_info=True)

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
            key = self.window_keys(provider, now)[0]
            pipe.hincrby(key, "total", count)
            pipe.expire(key, self.policy.breaker_window_seconds * 2)
        try:
            await pipe.execute()
        except Exception:
            self._requests.update(requests)
            self._tokens.update(tokens)
            self._window_totals.update(totals)
            raise

    # --- circuit breakers -----------------------------------------------------------------
    async def breaker_failure(
        self, provider: str, error: str, policy: RoutingPolicy
    ) -> tuple[str, bool]:
        """Count a failure; returns the circuit state it leaves and whether it just opened."""
        now = time.time()
        self.policy = policy
        keys = [self.epoch_key(), self.breaker_key(provider), *self.window_keys(provider, now)]
        args = [
            repr(now),
            policy.breaker_failure_threshold,
            policy.breaker_error_rate,
            policy.breaker_min_requests,
            policy.breaker_window_seconds * 2,
            error[:200],
            self._window_totals.pop(provider, 0),
            changes_channel(),
        ]
        state, opened = await self._failure(keys=keys, args=args)
        self._failed_here.add(provider)
        if opened:
            self._fetched.clear()
        return _text(state), bool(opened)

    def breaker_needs_reset(self, view: BreakerView | None) -> bool:
        """After a success: whether failures are on record (here, or as last fetched)."""
        return view is not None and (not view.clean or view.provider in self._failed_here)

    async def breaker_success(self, provider: str) -> None:
        self._failed_here.discard(provider)
        await self._breaker_change(delete=[self.breaker_key(provider), self.probe_key(provider)])

    async def _breaker_change(self, *, delete: list[str]) -> None:
        """Delete breaker keys and bump the epoch, so every process refetches the breakers."""
        await self.redis.delete(*delete)
        await self.bump_epoch()

    async def bump_epoch(self) -> None:
        self.learn(
            EPOCH, await self._bump(keys=[self.epoch_key()], args=[changes_channel(), EPOCH])
        )
        self._fetched.clear()

    def learn(self, name: str, value: int) -> None:
        """A bump made by this process: known at once, not when the channel brings it back."""
        if self._known:
            self._known[name] = value

    async def breaker_try_probe(self, provider: str, ttl_seconds: float) -> bool:
        """Claim the single probe of a half-open circuit; only one process gets it."""
        claimed = await self.redis.set(
            self.probe_key(provider), "1", nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        if claimed:
            await self.redis.hset(self.breaker_key(provider), "state", HALF_OPEN)
            await self.bump_epoch()
        return bool(claimed)

    async def breaker_reset(self, provider: str) -> None:
        keys = [self.breaker_key(provider), self.probe_key(provider)]
        await self._breaker_change(delete=[*keys, *self.window_keys(provider, time.time())])

    async def breakers(self, providers: list[str], policy: RoutingPolicy) -> list[BreakerView]:
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for provider in providers:
            pipe.hgetall(self.breaker_key(provider))
            pipe.exists(self.probe_key(provider))
        replies = await pipe.execute()
        return [
            breaker_view(name, replies[2 * i], bool(replies[2 * i + 1]), policy, now)
            for i, name in enumerate(providers)
        ]


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedState] = (
    weakref.WeakKeyDictionary()
)


def shared_state() -> SharedState:
    """The state client of the running event loop."""
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = SharedState(settings.CACHES["default"]["LOCATION"])
    return state


def bumped_here(name: str, value: int) -> None:
    """Tell every loop's state of this process about a bump this process just made."""
    for state in list(_states.values()):
        state.learn(name, value)
