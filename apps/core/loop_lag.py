"""How late each process's event loop runs what is due: ``ai_orchestra_event_loop_lag_seconds``.

A timer is set every ``EVENT_LOOP_LAG_SECONDS`` (0.25 s) on the loop watched; when it fires, how
late it fired (``loop.time()`` against its deadline) goes into the histogram. A loop that keeps
up fires it on time (0, or a millisecond of uvloop's clock); a callback that holds the loop, or
a process kept off its core by others (record storage, the Celery worker, another process in a
burst), shows as lag, and every request waiting on that loop waits as long. One timer callback
per interval: no task, nothing per request.

``role`` labels the series (``web``, ``worker``), never the pid: with
``PROMETHEUS_MULTIPROC_DIR`` the histograms of every process are summed into one per label set,
so ``/metrics`` shows each role's lag over all its processes (per process, read the directory's
``histogram_<pid>.db`` files, as ``bench.gateway`` does). Watched: the web process's loop, from
its first ASGI event (``orchestra/asgi.py``), and a Celery worker's loop for async work
(``apps.core.runtime``, which runs the WebSocket LLM calls), once the worker declared its role
(``watch_runtime_loops``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref

from django.conf import settings
from prometheus_client import Histogram

BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1,
)  # fmt: skip

event_loop_lag_seconds = Histogram(
    "ai_orchestra_event_loop_lag_seconds",
    "How late a timer set on a process's event loop fired (sampled every "
    "EVENT_LOOP_LAG_SECONDS), by process role.",
    ["role"],
    buckets=BUCKETS,
)


class LoopLagMonitor:
    """Runs on ``loop`` only: ``start`` and every firing are callbacks of that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, role: str, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.series = event_loop_lag_seconds.labels(role)
        self.deadline = 0.0

    def start(self) -> None:
        self.deadline = self.loop.time() + self.interval
        self.loop.call_at(self.deadline, self.fire)

    def fire(self) -> None:
        now = self.loop.time()
        self.series.observe(max(0.0, now - self.deadline))
        self.deadline = now + self.interval
        self.loop.call_at(self.deadline, self.fire)


_lock = threading.Lock()
_watched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_runtime_role: str | None = None


def watch_loop_lag(role: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Measure the lag of ``loop`` (by default the running one) as ``role``'s, from now on;
    once per loop, from any thread. ``EVENT_LOOP_LAG_SECONDS`` 0 measures none."""
    interval = settings.EVENT_LOOP_LAG_SECONDS
    if interval <= 0:
        return
    loop = loop if loop is not None else asyncio.get_running_loop()
    with _lock:
        if loop in _watched:
            return
        _watched.add(loop)
    loop.call_soon_threadsafe(LoopLagMonitor(loop, role, interval).start)


def watch_runtime_loops(role: str) -> None:
    """From now on, the loop ``apps.core.runtime`` makes for sync code in this process (and in
    its forked children) is watched as ``role``'s. A Celery worker declares it at start: its
    loop is made on the first task that needs it, in the process that runs the task."""
    global _runtime_role
    _runtime_role = role


def runtime_loop_made(loop: asyncio.AbstractEventLoop) -> None:
    """Called by ``apps.core.runtime`` for each loop it makes."""
    if _runtime_role is not None:
        watch_loop_lag(_runtime_role, loop)
