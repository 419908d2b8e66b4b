"""The Redis clients every part of the platform shares, and the one key prefix.

Redis (the cache server, ``CACHES["default"]``) holds what several processes must agree on:
routing state, call records waiting to be stored, running streams. Everything the project keeps
there starts with ``key_prefix()``, the cache's ``KEY_PREFIX`` and a colon, so one Redis can
serve several deployments (and several test runs).

``redis_client()`` is the process's synchronous client (threads share its pool; a forked child
makes its own); ``async_redis()`` is the client of the running event loop (a ``redis.asyncio``
client is bound to the loop it was made on), ``async_redis(url)`` the loop's client of another
Redis (the Celery broker's, when it is not this one). Its pool (``REDIS_MAX_CONNECTIONS``, else 100)
makes a command wait for a free connection, up to ``ASYNC_TIMEOUT``, when all are busy: a
burst of requests must queue, not be told that Redis does not answer.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings

CONNECT_TIMEOUT = 2.0
SYNC_TIMEOUT = 5.0
ASYNC_TIMEOUT = 2.0
ASYNC_POOL_SIZE = 100  # redis-py's own default, when the URL sets none


def text(value: bytes | str) -> str:
    """A reply as text (the clients return bytes; their types allow str too)."""
    return value.decode() if isinstance(value, bytes) else value


def redis_url() -> str:
    return settings.CACHES["default"]["LOCATION"]


def key_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:"


def key(*parts: str) -> str:
    """A key under the platform's prefix: ``key("llm", "streams")`` → ``<prefix>:llm:streams``."""
    return key_prefix() + ":".join(parts)


@cache
def _client_of(pid: int) -> redis.Redis:
    return redis.Redis.from_url(
        redis_url(), socket_timeout=SYNC_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )


def redis_client() -> redis.Redis:
    return _client_of(os.getpid())


# loop -> URL -> its client on that loop
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def async_redis(url: str | None = None) -> aioredis.Redis:
    """The running loop's client of ``url``, the platform's Redis unless given."""
    url = url or redis_url()
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=ASYNC_POOL_SIZE,
            timeout=ASYNC_TIMEOUT,
            socket_timeout=ASYNC_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
        client = clients[url] = aioredis.Redis.from_pool(pool)
    return client


def async_clients() -> list[aioredis.Redis]:
    """Every loop's clients, for the pools' figures."""
    return [client for clients in list(_async_clients.values()) for client in clients.values()]


async def close_async_redis() -> None:
    """Close the running loop's clients (at shutdown)."""
    for client in _async_clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
