"""Celery beat's heartbeat: a beat that died is otherwise invisible (nothing it schedules runs:
sweeps, approval expiry and escalation, canaries, probes), so its scheduler writes the time of
each tick to the cache, and ``/health`` and the feature status report beat down when that time
is older than ``BEAT_HEARTBEAT_MAX_AGE``. The tick itself writes it, not a task a worker runs,
so a beat is told apart from a worker (which the ``celery`` check pings)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "beat:heartbeat"
HEARTBEAT_SECONDS = 1.0  # at most one write a second, however often beat ticks


class HeartbeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, ticking at least three times per
    ``BEAT_HEARTBEAT_MAX_AGE`` and leaving a heartbeat at each tick."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        interval: float = self.max_interval  # type: ignore[has-type]  # untyped library
        self.max_interval = min(interval, settings.BEAT_HEARTBEAT_MAX_AGE / 3)
        self._beat_at = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.time()
        if now - self._beat_at >= HEARTBEAT_SECONDS:
            try:
                cache.set(HEARTBEAT_KEY, now, timeout=None)
                self._beat_at = now
            except Exception as error:  # Redis away: beat goes on; /health says the cache is down
                logger.warning("beat could not leave its heartbeat (%s)", type(error).__name__)
        return min(super().tick(*args, **kwargs), self.max_interval)


def beat_heartbeat_age() -> float | None:
    """Seconds since beat last ticked; None when it never did (with this cache)."""
    beat_at = cache.get(HEARTBEAT_KEY)
    return None if beat_at is None else max(0.0, time.time() - float(beat_at))
