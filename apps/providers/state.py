"""Routing state shared by every process through Redis (the cache server).

Circuit breakers, request and token counters for rate limits, round-robin cursors and the
routing config version live in Redis so that web processes and Celery workers agree on them.
The hot path reads everything it needs in one pipelined round trip (``read``); its own counter
increments are accumulated in memory and flushed every ``FLUSH_INTERVAL`` seconds, so a
request adds no Redis write unless something fails.
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

from .config import ProviderConfig, RoutingPolicy

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
WINDOW_BUCKETS = 6

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

_FAILURE_SCRIPT = """
-- KEYS[1] breaker hash, KEYS[2..] window buckets (current first)
-- ARGV: now, failure threshold, error rate, min requests, bucket ttl, error text,
--       requests of this process not flushed yet
redis.call('HINCRBY', KEYS[2], 'total', 1 + tonumber(ARGV[7]))
redis.call('HINCRBY', KEYS[2], 'errors', 1)
redis.call('EXPIRE', KEYS[2], ARGV[5])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[6], 'last_failure_at', ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local total, errors = 0, 0
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'total', 'errors')
  total = total + (tonumber(v[1]) or 0)
  errors = errors + (tonumber(v[2]) or 0)
end
local trip = state == 'half_open' or failures >= tonumber(ARGV[2])
  or (total >= tonumber(ARGV[4]) and errors / total >= tonumber(ARGV[3]))
if trip and state ~= 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1])
  return {'open', 1}
end
return {state, 0}
"""


def key_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:llm:"


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
        self.policy = RoutingPolicy()  # the latest seen by ``read``; sizes the error-rate window

    # --- keys ---------------------------------------------------------------------------
    def version_key(self) -> str:
        return f"{self.prefix}config:version"

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
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.version_key())
        for provider in providers:
            pipe.hgetall(self.breaker_key(provider.name))
            pipe.exists(self.probe_key(provider.name))
            pipe.get(self.minute_key("rpm", provider.name, now))
            pipe.get(self.minute_key("tpm", provider.name, now))
        if cursor_name:
            pipe.incr(self.cursor_key(cursor_name))
        replies = await pipe.execute()
        breakers, requests, tokens = {}, {}, {}
        for index, provider in enumerate(providers):
            raw, probing, rpm, tpm = replies[1 + 4 * index : 5 + 4 * index]
            breakers[provider.name] = breaker_view(provider.name, raw, bool(probing), policy, now)
            requests[provider.name] = int(rpm or 0) + self._requests[provider.name]
            tokens[provider.name] = int(tpm or 0) + self._tokens[provider.name]
        return StateView(
            version=int(replies[0] or 0),
            breakers=breakers,
            requests_this_minute=requests,
            tokens_this_minute=tokens,
            cursor=int(replies[-1]) if cursor_name else 0,
        )

    async def version(self) -> int:
        return int(await self.redis.get(self.version_key()) or 0)

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
        keys = [self.breaker_key(provider), *self.window_keys(provider, now)]
        args = [
            repr(now),
            policy.breaker_failure_threshold,
            policy.breaker_error_rate,
            policy.breaker_min_requests,
            policy.breaker_window_seconds * 2,
            error[:200],
            self._window_totals.pop(provider, 0),
        ]
        state, opened = await self._failure(keys=keys, args=args)
        return _text(state), bool(opened)

    async def breaker_success(self, provider: str) -> None:
        await self.redis.delete(self.breaker_key(provider), self.probe_key(provider))

    async def breaker_try_probe(self, provider: str, ttl_seconds: float) -> bool:
        """Claim the single probe of a half-open circuit; only one process gets it."""
        claimed = await self.redis.set(
            self.probe_key(provider), "1", nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        if claimed:
            await self.redis.hset(self.breaker_key(provider), "state", HALF_OPEN)
        return bool(claimed)

    async def breaker_reset(self, provider: str) -> None:
        keys = [self.breaker_key(provider), self.probe_key(provider)]
        await self.redis.delete(*keys, *self.window_keys(provider, time.time()))

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
