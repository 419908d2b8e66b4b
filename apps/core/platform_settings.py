"""The platform's runtime settings (``models.PlatformSettings``: the log level and the live
log's) in every process.

The same mechanism as the routing settings (``apps.providers.llm.routing.shared_state``): a save
bumps a version counter in Redis and publishes the bump on a channel. Each long-running process (the
web's ASGI application on its first event, Celery's worker and beat at start) runs a daemon
thread, ``SettingsFollower``, that listens to the channel, and on a bump it has not applied
yet reads the row and applies it. It also reads the counter every ``CHECK_SECONDS`` in case a
message was lost, and again whenever it (re)subscribes. The process that saves applies the
change itself at once, so without Redis it holds at least there; other processes catch up once
Redis answers again.

A blank log level means the level the process started with (``LOG_LEVEL``, or a Celery
worker's ``-l``), remembered before the first change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import redis
from django.db import close_old_connections, connection

from .redis import key, redis_client, redis_url

logger = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
RETRY_SECONDS = 2.0
CONNECT_TIMEOUT = 2.0
# KEYS[1] the counter, ARGV[1] the channel: the new value is the message.
BUMP_SCRIPT = """
local value = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], value)
return value
"""


def version_key() -> str:
    return key("core", "settings", "version")


def changes_channel() -> str:
    return key("core", "settings", "changes")


# --- the log level ------------------------------------------------------------------------------

# The loggers whose level the setting moves: the root and those LOGGING gives LOG_LEVEL.
LEVELLED_LOGGERS = ("", "django")
_started_with: dict[str, int] = {}
_levels_lock = threading.Lock()


def log_level_apply(level: str) -> None:
    """Set this process's log level; blank restores the level it started with."""
    with _levels_lock:
        for name in LEVELLED_LOGGERS:
            target = logging.getLogger(name or None)
            started = _started_with.setdefault(name, target.level)
            target.setLevel(level or started)


def live_log_level_apply(level: str) -> None:
    """Set the level of this process's live log (the Logs page); blank: ``LOG_LIVE_LEVEL``."""
    from django.conf import settings

    from .logging import LiveLogHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, LiveLogHandler):
            handler.setLevel(level or settings.LOG_LIVE_LEVEL)


def started_log_level() -> int:
    """The root logger's level when this process started (what a blank level restores)."""
    with _levels_lock:
        return _started_with.get("", logging.getLogger().level)


def platform_settings_apply() -> None:
    """Apply the stored settings to this process (from the database)."""
    from .models import PlatformSettings

    row = PlatformSettings.objects.first()
    log_level_apply(row.log_level if row else "")
    live_log_level_apply(row.live_log_level if row else "")


# --- telling every process ----------------------------------------------------------------------


def platform_settings_announce() -> None:
    """Tell every other process to apply the settings again (after a save has committed)."""
    try:
        redis_client().register_script(BUMP_SCRIPT)(keys=[version_key()], args=[changes_channel()])
    except redis.RedisError as error:
        logger.warning(
            "could not announce the platform settings (%s): they apply in this process "
            "now and in the others once Redis answers",
            error,
        )


class SettingsFollower(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="orchestra-settings", daemon=True)
        self.pid = os.getpid()
        self.applied: int | None = None  # the version last applied
        self.stopped = threading.Event()
        self.failing = False

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.follow()
            except Exception as error:
                if not self.failing:  # once per outage
                    logger.warning(
                        "not following the platform settings (%s: %s); trying again",
                        type(error).__name__,
                        error,
                    )
                self.failing = True
            self.stopped.wait(RETRY_SECONDS)

    def follow(self) -> None:
        client = redis.Redis.from_url(
            redis_url(), socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=CHECK_SECONDS
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(changes_channel())
            self.catch_up(client)  # after subscribing: no bump falls between the two
            self.failing = False
            while not self.stopped.is_set():
                pubsub.get_message(timeout=CHECK_SECONDS)
                self.catch_up(client)
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()
            client.close()

    def catch_up(self, client: redis.Redis) -> None:
        version = int(client.get(version_key()) or 0)
        if version == self.applied:
            return
        close_old_connections()
        try:
            platform_settings_apply()
        finally:
            connection.close()  # this thread's own; it must not hold one between changes
        self.applied = version


_lock = threading.Lock()
_follower: SettingsFollower | None = None


def start_settings_follower() -> SettingsFollower:
    """Start this process's follower, once (again in a forked child)."""
    global _follower
    with _lock:
        if _follower is None or _follower.pid != os.getpid():
            _follower = SettingsFollower()
            _follower.start()
        return _follower
