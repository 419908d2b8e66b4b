"""Connection pools of this process, and how full they are (``GET /api/v1/connection-stats``).

Each group of pools is a *source*: a function returning ``{name: figures}`` where figures are
``{"pools", "size", "in_use", "idle"}`` (``size`` the most connections the pools may open, None
for no limit). The core knows the database and Redis pools; other apps register theirs (the LLM
core its HTTP clients per provider) with ``register_pool_source``. Sources are read from the
process reporter's thread (``apps.core.process_report``) while the pools are in use elsewhere:
they read counts only, and a read that races a change is retried once.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.conf import settings

from .registry import Registry

logger = logging.getLogger(__name__)

Figures = dict[str, Any]
PoolSource = Callable[[], dict[str, Figures]]

pool_sources: Registry[PoolSource] = Registry("pool source")


def register_pool_source(group: str, source: PoolSource) -> None:
    """Add ``source`` as the pools of ``group`` (``http``, ``database``, ``redis``...)."""
    pool_sources.register(group, source)


def figures_of(pools: Iterable[Any], size: Callable[[Any], int | None], in_use, idle) -> Figures:
    """The figures of several pools of one kind, summed (``size`` None if any is unlimited)."""
    total: Figures = {"pools": 0, "size": 0, "in_use": 0, "idle": 0}
    for pool in pools:
        total["pools"] += 1
        limit = size(pool)
        total["size"] = None if limit is None or total["size"] is None else total["size"] + limit
        total["in_use"] += in_use(pool)
        total["idle"] += idle(pool)
    return total


def _settled(read: Callable[[], Any]) -> Any:
    """``read()``, again if it raced another thread changing what it iterates."""
    try:
        return read()
    except RuntimeError:  # "changed size during iteration"
        return read()


def pool_figures() -> dict[str, dict[str, Figures]]:
    """Every registered source's figures; a source that fails is left out (and logged)."""
    found: dict[str, dict[str, Figures]] = {}
    for group, source in pool_sources.items():
        try:
            found[group] = _settled(source)
        except Exception:
            logger.warning("could not read the %s pools", group, exc_info=True)
    return found


# --- Redis ----------------------------------------------------------------------------------

# Pools of the Django cache: one per thread (the cache handler is thread-local), made by this
# class (``CACHES["default"]["OPTIONS"]["pool_class"]``), which keeps track of them.
_cache_pools: weakref.WeakSet[redis.ConnectionPool] = weakref.WeakSet()


class TrackedConnectionPool(redis.ConnectionPool):
    """redis-py's pool, remembered (weakly) so its figures can be read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _cache_pools.add(self)


def _redis_figures(pools: Iterable[Any]) -> Figures:
    return figures_of(
        pools,
        size=lambda pool: pool.max_connections,
        in_use=lambda pool: len(pool._in_use_connections),
        idle=lambda pool: len(pool._available_connections),
    )


def _shared_redis_pools() -> list[Any]:
    from . import redis as shared

    pools: list[Any] = [shared.redis_client().connection_pool]
    pools += [client.connection_pool for client in shared.async_clients()]
    return pools


def _channel_layer_pools() -> list[Any]:
    from channels.layers import channel_layers

    layer = channel_layers.backends.get("default")  # only the one this process made
    loop_layers = list(getattr(layer, "_layers", {}).values())
    return [
        connection.connection_pool
        for loop_layer in loop_layers
        for connection in list(getattr(loop_layer, "_connections", {}).values())
    ]


def redis_pools() -> dict[str, Figures]:
    return {
        "cache": _redis_figures(list(_cache_pools)),
        "shared": _redis_figures(_shared_redis_pools()),
        "channel_layer": _redis_figures(_channel_layer_pools()),
    }


# --- the database -----------------------------------------------------------------------------


def database_pools() -> dict[str, Figures]:
    """psycopg's pool per database (Django keeps one per process); unpooled databases show
    ``pools: 0``. A pool is made on first use: until then it shows as empty, at its size."""
    from django.db import connections

    found: dict[str, Figures] = {}
    for alias in settings.DATABASES:
        options = settings.DATABASES[alias].get("OPTIONS", {}).get("pool")
        pool = getattr(connections[alias], "_connection_pools", {}).get(alias)
        figures: Figures = {"pools": 0, "size": None, "in_use": 0, "idle": 0}
        if pool is not None:
            stats = pool.get_stats()
            figures = {
                "pools": 1, "size": stats["pool_max"], "idle": stats["pool_available"],
                "in_use": stats["pool_size"] - stats["pool_available"],
                "waiting": stats.get("requests_waiting", 0),
            }  # fmt: skip
        elif options:  # not opened yet in this process
            size = options.get("max_size") if isinstance(options, dict) else None
            figures = {"pools": 0, "size": size, "in_use": 0, "idle": 0, "waiting": 0}
        found[alias] = {"engine": connections[alias].vendor, **figures}
    return found
