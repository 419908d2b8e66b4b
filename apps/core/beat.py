"""Celery beat's heartbeat: a beat that died is otherwise invisible (nothing it schedules runs:
sweeps, approval expiry and escalation, canaries, probes), so its scheduler writes the time of
each tick to the cache, and ``/health`` and the feature status report beat down when that time
is older than ``BEAT_HEARTBEAT_MAX_AGE``. The tick itself writes it, not a task a worker runs,
so a beat is told apart from a worker (which the ``celery`` check pings).

The tasks of ``BEAT_IN_PROCESS_TASKS`` are scheduled like any other (``CELERY_BEAT_SCHEDULE``,
editable in the admin) but run by beat itself, in a thread of its own, instead of being sent:
the health run must report a stopped worker or an unreachable broker, so it cannot depend on
either. One run of each at a time: a turn due while the last one still runs is skipped."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections
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
        self._in_process: dict[str, threading.Thread] = {}

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.time()
        if now - self._beat_at >= HEARTBEAT_SECONDS:
            try:
                cache.set(HEARTBEAT_KEY, now, timeout=None)
                self._beat_at = now
            except Exception as error:  # Redis away: beat goes on; /health says the cache is down
                logger.warning("beat could not leave its heartbeat (%s)", type(error).__name__)
        return min(super().tick(*args, **kwargs), self.max_interval)

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if entry.task not in settings.BEAT_IN_PROCESS_TASKS:
            return super().apply_async(entry, producer, advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        running = self._in_process.get(entry.task)
        if running is not None and running.is_alive():
            logger.warning("%s is still running: this turn is skipped", entry.task)
            return None
        task = self.app.tasks[entry.task]
        thread = threading.Thread(
            target=_run_here,
            args=(task, list(entry.args or ()), dict(entry.kwargs or {})),
            name=f"beat:{entry.task}",
            daemon=True,
        )
        self._in_process[entry.task] = thread
        thread.start()
        return None


def _run_here(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    try:
        result = task.apply(args=args, kwargs=kwargs)
        if result.failed():
            logger.error("%s failed in beat: %r", task.name, result.result)
    finally:
        connections.close_all()


def beat_heartbeat_age() -> float | None:
    """Seconds since beat last ticked; None when it never did (with this cache)."""
    beat_at = cache.get(HEARTBEAT_KEY)
    return None if beat_at is None else max(0.0, time.time() - float(beat_at))
