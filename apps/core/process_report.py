"""Each long-running process (web, Celery worker, beat) says how it is, every few seconds.

A daemon thread per process, started by the web's ASGI application on its first event and by
Celery's ``worker_init``/``worker_process_init``/``beat_init`` (``apps.monitoring``), every
``PROCESS_STATS_SECONDS``:

* publishes the process's connection pools (``pools.pool_figures()``) as one field of a Redis
  hash, ``<prefix>:processes``, keyed by host and pid. Readers (``process_reports``) skip and
  remove fields older than ``STALE_PERIODS`` periods: a process killed outright drops out within
  them, one that exits cleanly removes its own at once. Redis rather than the metrics directory,
  because processes on several machines share Redis and not a directory;
* with ``PROMETHEUS_MULTIPROC_DIR`` set (several processes behind one ``/metrics``), copies the
  process's memory, CPU and file descriptors (what ``prometheus_client``'s process collector
  reads from ``/proc``, which multiprocess mode cannot export) into gauges of the same names
  (``process_resident_memory_bytes``, ``process_cpu_seconds_total``...) in ``liveall`` mode:
  one series per process, labelled ``pid``, removed from the directory when the process exits
  (and by ``runplatform`` when one of its children dies). Without the directory the default
  registry exports these for the one process itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from django.conf import settings
from prometheus_client import Gauge, ProcessCollector, multiprocess

from .pools import pool_figures
from .redis import key, redis_url

logger = logging.getLogger(__name__)

STALE_PERIODS = 3
TIMEOUT_SECONDS = 1.0
PROCESS_GAUGES = {
    "process_virtual_memory_bytes": "Virtual memory size in bytes.",
    "process_resident_memory_bytes": "Resident memory size in bytes.",
    "process_start_time_seconds": "Start time of the process since unix epoch in seconds.",
    "process_cpu_seconds_total": "Total user and system CPU time spent in seconds.",
    "process_open_fds": "Number of open file descriptors.",
    "process_max_fds": "Maximum number of open file descriptors.",
}


def reports_key() -> str:
    return key("processes")


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def multiprocess_metrics() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _client() -> redis.Redis:
    """A client of the reporter's own, quick to give up: it must never hold a process up."""
    return redis.Redis.from_url(
        redis_url(), socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )


class ProcessGauges:
    """The process collector's figures, as multiprocess gauges with a ``pid`` label."""

    def __init__(self) -> None:
        self.collector = ProcessCollector(registry=None)
        self.gauges = {
            name: Gauge(name, documentation, registry=None, multiprocess_mode="liveall")
            for name, documentation in PROCESS_GAUGES.items()
        }

    def update(self) -> None:
        for family in self.collector.collect():
            for sample in family.samples:
                if gauge := self.gauges.get(sample.name):
                    gauge.set(sample.value)


class ProcessReporter(threading.Thread):
    def __init__(self, role: str, interval: float) -> None:
        super().__init__(name="orchestra-process-report", daemon=True)
        self.role = role
        self.interval = interval
        self.process = process_id()
        self.started_at = time.time()
        self.stopped = threading.Event()
        self.gauges = ProcessGauges() if multiprocess_metrics() else None
        self.redis = _client()
        self.redis_failing = False

    def run(self) -> None:
        while True:
            self.tick()
            if self.stopped.wait(self.interval):
                return

    def tick(self) -> None:
        if self.gauges is not None:
            try:
                self.gauges.update()
            except Exception:
                logger.warning("could not update the process gauges", exc_info=True)
        try:
            self.publish()
        except redis.RedisError as error:
            if not self.redis_failing:  # once per outage
                logger.warning("could not publish this process's figures: %s", error)
            self.redis_failing = True
        else:
            self.redis_failing = False

    def report(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "host": self.process.rpartition(":")[0],
            "pid": os.getpid(),
            "role": self.role,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "pools": pool_figures(),
        }

    def publish(self) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(reports_key(), self.process, json.dumps(self.report()))
            pipe.expire(reports_key(), int(self.interval * STALE_PERIODS * 2) + 1)
            pipe.execute()

    def stop(self) -> None:
        """At exit: no more reports, and this process's figures gone from Redis and /metrics."""
        self.stopped.set()
        with contextlib.suppress(redis.RedisError):  # else it goes stale, and readers drop it
            self.redis.hdel(reports_key(), self.process)
        if self.gauges is not None:
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(os.getpid())


_lock = threading.Lock()
_reporter: ProcessReporter | None = None


def start_process_reporter(role: str) -> ProcessReporter:
    """Start this process's reporter, once (again in a forked child)."""
    global _reporter
    with _lock:
        if _reporter is None or _reporter.process != process_id():
            _reporter = ProcessReporter(role, settings.PROCESS_STATS_SECONDS)
            _reporter.start()
            atexit.register(_reporter.stop)
        return _reporter


def running_reporter() -> ProcessReporter | None:
    reporter = _reporter
    return reporter if reporter is not None and reporter.process == process_id() else None


def process_reports() -> list[dict[str, Any]] | None:
    """The reports of every process heard from lately (None when Redis does not answer)."""
    client = _client()
    try:
        raw = client.hgetall(reports_key())
        now = time.time()
        stale_after = settings.PROCESS_STATS_SECONDS * STALE_PERIODS
        reports, stale = [], []
        for field, value in raw.items():
            report = json.loads(value)
            if now - report.get("updated_at", 0) > stale_after:
                stale.append(field)
            else:
                reports.append(report)
        if stale:
            client.hdel(reports_key(), *stale)
        return reports
    except redis.RedisError:
        return None
    finally:
        client.close()


def current_report() -> dict[str, Any]:
    """This process's figures as of now (from its reporter, or made up here if it has none:
    a process serving a request without one, such as ``runserver``)."""
    reporter = running_reporter()
    if reporter is not None:
        return reporter.report()
    process = process_id()
    return {
        "process": process,
        "host": process.rpartition(":")[0],
        "pid": os.getpid(),
        "role": "web",
        "started_at": None,
        "updated_at": time.time(),
        "pools": pool_figures(),
    }
