"""What ``/metrics`` exposes besides the metrics each module defines: Celery's tasks and queues.

Task metrics are counted by Celery's signals in the worker that runs the task and written, like
every other metric, to ``PROMETHEUS_MULTIPROC_DIR``, so the web's ``/metrics`` sums them with
the web processes' own: one scrape target, one access rule (``METRICS_ALLOWED_NETWORKS``,
``METRICS_TOKEN``), and the LLM calls a worker makes (WebSocket queries, builds) counted in the
same series as the web's. A worker that does not share the directory with a web process
counts into its own memory, which nothing exposes.

The Celery queue lengths and the call-record backlog are read from Redis when ``/metrics`` is
scraped (a pipelined round trip each, the broker's given up on after a second), never counted
along the way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from django.conf import settings
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.providers.selectors import call_records_backlog

logger = logging.getLogger(__name__)

TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# kombu's Redis transport keeps a queue's messages of priority p > 0 in "<queue>\x06\x16<p>".
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
BROKER_TIMEOUT_SECONDS = 1.0

tasks_total = Counter(
    "ai_orchestra_celery_tasks_total",
    "Celery tasks run, by task and final state (success, failure, retry...).",
    ["task", "state"],
)
task_duration_seconds = Histogram(
    "ai_orchestra_celery_task_duration_seconds",
    "Time a Celery task ran, by task.",
    ["task"],
    buckets=TASK_BUCKETS,
)

# --- Celery's signals, in the worker ------------------------------------------------------------

_started: dict[str, float] = {}
_series: dict[tuple[str, str], tuple[Any, Any]] = {}  # labels() looked up once per pair


def task_started(task_id: str | None = None, **kwargs: Any) -> None:
    """``task_prerun``."""
    if task_id:
        _started[task_id] = time.perf_counter()


def task_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    """``task_postrun``: counts the task by its state and times it (from ``task_prerun``)."""
    started = _started.pop(task_id, None) if task_id else None
    name = getattr(task, "name", None) or "unknown"
    labels = (name, (state or "unknown").lower())
    series = _series.get(labels)
    if series is None:
        series = _series[labels] = (tasks_total.labels(*labels), task_duration_seconds.labels(name))
    series[0].inc()
    if started is not None:
        series[1].observe(time.perf_counter() - started)


def task_metrics_connect() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(task_started, weak=False, dispatch_uid="monitoring.task_started")
    task_postrun.connect(task_ended, weak=False, dispatch_uid="monitoring.task_ended")


# --- the queues, at scrape time -----------------------------------------------------------------


def task_queues() -> list[str]:
    """The queues the platform sends tasks to."""
    default = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    return sorted({default, settings.BUILD_TASK_QUEUE, settings.WEBSOCKET_TASK_QUEUE})


def broker_client() -> redis.Redis:
    """A client of the broker's Redis (``redis+socket://`` is kombu's name for ``unix://``)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis+socket://"):
        path, _, query = url.removeprefix("redis+socket://").partition("?")
        params = [("db" if k == "virtual_host" else k, v) for k, v in parse_qsl(query)]
        url = "unix://" + path + (f"?{urlencode(params)}" if params else "")
    return redis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT_SECONDS, socket_connect_timeout=BROKER_TIMEOUT_SECONDS
    )


def queue_lengths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (every priority), in one round trip."""
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    client = broker_client()
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for priority in PRIORITY_STEPS:
                    suffix = f"{PRIORITY_SEPARATOR}{priority}" if priority else ""
                    pipe.llen(f"{prefix}{queue}{suffix}")
            sizes = pipe.execute()
    finally:
        client.close()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(sizes[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


_failing: set[str] = set()


def _failed(what: str, error: Exception) -> None:
    """Logged once per outage, not at every scrape."""
    if what not in _failing:
        _failing.add(what)
        logger.warning("/metrics could not read %s: %s", what, error)


class ScrapeTimeCollector(Collector):
    """Figures read when ``/metrics`` is scraped, each absent while its Redis does not answer
    (the ``celery`` and ``call_records`` health checks say so):

    * ``ai_orchestra_celery_queue_length{queue}``: messages waiting in the broker;
    * ``ai_orchestra_call_records_backlog_batches`` and ``..._backlog_seconds``: the batches of
      call records waiting in Redis to be stored, and how long the oldest has waited (0: none).
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            lengths = queue_lengths(task_queues())
        except redis.RedisError as error:
            _failed("the Celery queue lengths", error)
        else:
            _failing.discard("the Celery queue lengths")
            family = GaugeMetricFamily(
                "ai_orchestra_celery_queue_length",
                "Messages waiting in a Celery queue (read from the broker when scraped).",
                labels=["queue"],
            )
            for queue, length in lengths.items():
                family.add_metric([queue], length)
            yield family
        try:
            backlog = call_records_backlog()
        except redis.RedisError as error:
            _failed("the call-record backlog", error)
        else:
            _failing.discard("the call-record backlog")
            yield GaugeMetricFamily(
                "ai_orchestra_call_records_backlog_batches",
                "Batches of LLM call records waiting in Redis to be stored by a worker.",
                value=backlog.batches,
            )
            yield GaugeMetricFamily(
                "ai_orchestra_call_records_backlog_seconds",
                "How long the oldest waiting batch of call records has waited (0: none waits).",
                value=backlog.oldest_seconds or 0.0,
            )


class _DefaultRegistry(Collector):
    """This process's own metrics, when processes do not share a metrics directory."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def exposition() -> bytes:
    """The text ``/metrics`` answers: every process's metrics (summed through
    ``PROMETHEUS_MULTIPROC_DIR`` when it is set) and the queue lengths."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(ScrapeTimeCollector())
    return generate_latest(registry)
