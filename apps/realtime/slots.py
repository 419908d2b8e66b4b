"""How many ``/ws/`` connections one key (or logged-in user) and one client address may hold
open at once, across every web process: ``WEBSOCKET_MAX_PER_KEY`` and
``WEBSOCKET_MAX_PER_ADDRESS`` (0: no cap). Each open connection costs a web process memory
that it does not return when the connection ends (2,000 on one key grew it by 140 MB), and the
rate limits count messages, not connections.

A cap's holders are a Redis sorted set per key or address: each connection is a member (its
channel name) scored with when its lease ends. Taking a slot drops expired members, counts the
rest and adds the connection if it is under the cap, in one script; closing removes it. Every
process renews the leases of its open connections every ``RENEW_SECONDS`` in one pipeline, so
the slots of a process that died (no close ran) free themselves within ``LEASE_SECONDS``.
Without Redis each process counts its own connections against the caps (logged once), and
shares again once Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis

from apps.core.redis import async_redis
from apps.core.redis import key as platform_key

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
RENEW_SECONDS = LEASE_SECONDS / 3
REDIS_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)

# KEYS[1]: the holders; ARGV: now, lease end, member, cap. 1 if the slot is taken (or held).
TAKE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false
        and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


@dataclass(frozen=True)
class Cap:
    """A cap that refused a connection: the close reason and the error message say it."""

    what: str  # "key", "user" or "address"
    limit: int

    @property
    def message(self) -> str:
        return (
            f"Too many open WebSocket connections for this {self.what} (at most "
            f"{self.limit}); close one and connect again."
        )


def key_bucket(*, api_key_id: int | None, user_id: int) -> tuple[str, str]:
    """What a caller's connections count under: its key, or its user for a session."""
    return ("key", f"key:{api_key_id}") if api_key_id is not None else ("user", f"user:{user_id}")


class ConnectionSlots:
    """This process's side of the caps: the slots its connections hold, and their leases."""

    def __init__(self) -> None:
        self.held: dict[str, set[str]] = {}  # Redis key -> members (channel names) held here
        self.renewer: asyncio.Task | None = None
        self.down_since: float | None = None

    async def take(self, *, bucket: str, what: str, limit: int, member: str) -> Cap | None:
        """Hold a slot of ``bucket`` for ``member``: None, or the cap that refused it."""
        if limit <= 0:
            return None
        holders = platform_key("ws", "slots", bucket)
        now = time.time()
        try:
            taken = await async_redis().eval(
                TAKE_SCRIPT, 1, holders, now, now + LEASE_SECONDS, member, limit
            )
            self.up()
        except REDIS_ERRORS as error:
            self.down(error)
            local = self.held.get(holders, set())
            taken = member in local or len(local) < limit
        if not taken:
            return Cap(what, limit)
        self.held.setdefault(holders, set()).add(member)
        self.ensure_renewer()
        return None

    async def release(self, member: str) -> None:
        """Give back every slot ``member`` holds (a connection that ends)."""
        buckets = [holders for holders, members in self.held.items() if member in members]
        for holders in buckets:
            self.held[holders].discard(member)
            if not self.held[holders]:
                del self.held[holders]
        if not buckets:
            return
        try:
            pipe = async_redis().pipeline(transaction=False)
            for holders in buckets:
                pipe.zrem(holders, member)
            await pipe.execute()
        except REDIS_ERRORS as error:  # its lease ends on its own
            self.down(error)

    def ensure_renewer(self) -> None:
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.ensure_future(self.renew_forever())

    async def renew_forever(self) -> None:
        while self.held:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self.renew()
            except REDIS_ERRORS as error:
                self.down(error)
            except Exception:  # never stop renewing: every slot would expire under its holder
                logger.exception("WebSocket connection slots: could not renew the leases")

    async def renew(self) -> None:
        """Push back the lease of every slot held here (and add those Redis lost)."""
        if not self.held:
            return
        ends = time.time() + LEASE_SECONDS
        pipe = async_redis().pipeline(transaction=False)
        for holders, members in self.held.items():
            pipe.zadd(holders, dict.fromkeys(members, ends))
            pipe.expire(holders, LEASE_SECONDS + 1)
        await pipe.execute()
        self.up()

    def down(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.error(
                "WebSocket connection caps: Redis does not answer (%s: %s); each process caps "
                "its own connections until it is back",
                type(error).__name__,
                error,
            )

    def up(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "WebSocket connection caps: Redis answers again after %.1f s",
                time.monotonic() - self.down_since,
            )
            self.down_since = None


slots = ConnectionSlots()
