"""Circuit breakers, one per provider, shared by every process through Redis.

A circuit opens after ``breaker_failure_threshold`` consecutive failures, or when the error rate
over the last ``breaker_window_seconds`` reaches ``breaker_error_rate`` with at least
``breaker_min_requests`` requests in the window. After ``breaker_cooldown_seconds`` it is
half-open: one process claims the single probe request, whose success closes it and whose failure
opens it again. Every transition bumps the breaker epoch (see ``state.py``), which tells every
process to refetch the breakers on its next request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import RoutingPolicy

if TYPE_CHECKING:
    from .shared_state import SharedState

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
WINDOW_BUCKETS = 6

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


def breaker_view(
    provider: str, raw: dict[bytes, bytes], probing: bool, policy: RoutingPolicy, now: float
) -> BreakerView:
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


class CircuitBreakers:
    """The breakers as one process sees and changes them, through its ``SharedState``."""

    def __init__(self, state: SharedState) -> None:
        self.state = state
        self._failure = state.redis.register_script(_FAILURE_SCRIPT)
        self._failed_here: set[str] = set()  # failures this process counted since a success

    # --- keys -------------------------------------------------------------------------------
    def key(self, provider: str) -> str:
        return self.state.key("breaker", provider)

    def probe_key(self, provider: str) -> str:
        return self.state.key("breaker", provider, "probe")

    def window_keys(self, provider: str, now: float) -> list[str]:
        size = max(1, self.state.policy.breaker_window_seconds // WINDOW_BUCKETS)
        current = int(now // size)
        return [self.state.key("window", provider, str(current - i)) for i in range(WINDOW_BUCKETS)]

    # --- transitions ----------------------------------------------------------------------
    async def failure(self, provider: str, error: str, policy: RoutingPolicy) -> tuple[str, bool]:
        """Count a failure; returns the circuit state it leaves and whether it just opened."""
        now = time.time()
        self.state.policy = policy
        keys = [self.state.epoch_key(), self.key(provider), *self.window_keys(provider, now)]
        args: list[str | int | float] = [
            repr(now),
            policy.breaker_failure_threshold,
            policy.breaker_error_rate,
            policy.breaker_min_requests,
            policy.breaker_window_seconds * 2,
            error[:200],
            self.state.take_unflushed_total(provider),
            self.state.changes_channel(),
        ]
        state, opened = await self._failure(keys=keys, args=args)
        self._failed_here.add(provider)
        if opened:
            self.state.forget_fetched()
        return _text(state), bool(opened)

    def needs_reset(self, view: BreakerView | None) -> bool:
        """After a success: whether failures are on record (here, or as last fetched)."""
        return view is not None and (not view.clean or view.provider in self._failed_here)

    async def success(self, provider: str) -> None:
        self._failed_here.discard(provider)
        await self._change(delete=[self.key(provider), self.probe_key(provider)])

    async def reset(self, provider: str) -> None:
        keys = [self.key(provider), self.probe_key(provider)]
        await self._change(delete=[*keys, *self.window_keys(provider, time.time())])

    async def _change(self, *, delete: list[str]) -> None:
        """Delete breaker keys and bump the epoch, so every process refetches the breakers."""
        await self.state.redis.delete(*delete)
        await self.state.bump_epoch()

    async def try_probe(self, provider: str, ttl_seconds: float) -> bool:
        """Claim the single probe of a half-open circuit; only one process gets it."""
        claimed = await self.state.redis.set(
            self.probe_key(provider), "1", nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        if claimed:
            await self.state.redis.hset(self.key(provider), "state", HALF_OPEN)
            await self.state.bump_epoch()
        return bool(claimed)

    # --- reading ------------------------------------------------------------------------------
    async def views(self, providers: list[str], policy: RoutingPolicy) -> list[BreakerView]:
        now = time.time()
        pipe = self.state.redis.pipeline(transaction=False)
        for provider in providers:
            pipe.hgetall(self.key(provider))
            pipe.exists(self.probe_key(provider))
        replies = await pipe.execute()
        return [
            breaker_view(name, replies[2 * i], bool(replies[2 * i + 1]), policy, now)
            for i, name in enumerate(providers)
        ]
