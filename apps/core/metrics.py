"""Prometheus writes of the hot path, batched per event-loop iteration.

Every write to a Prometheus series checks the series, takes its lock and, with
``PROMETHEUS_MULTIPROC_DIR`` (the production image), writes the process's memory-mapped file;
a ``/v1`` request made about ten (its HTTP metrics, its LLM call's). ``count`` and ``observe``
gather the writes of one loop iteration in plain dicts, and one callback at the end of the
iteration (``loop.call_soon``) applies them: one write per counter, and per histogram one to its
sum and one per bucket touched, however many requests the iteration finished. Nothing is held
longer than that iteration: ``/metrics``, scraped a moment later, sees every write. Outside a
running loop (sync code) a write applies at once.

Only the labelled series of a counter or histogram (``metric.labels(...)``) are batched; the
batch writes their values as their own ``inc`` and ``observe`` do, less the checks each repeats
(prometheus_client's series keep their values in ``_value``, ``_sum`` and ``_buckets``).
"""

from __future__ import annotations

import asyncio
import weakref
from bisect import bisect_left
from typing import Any

__all__ = ["count", "observe"]


class _Batch:
    """The writes gathered on one event loop since its last iteration ended."""

    __slots__ = ("counts", "observations", "scheduled", "__weakref__")

    def __init__(self) -> None:
        self.counts: dict[Any, float] = {}
        self.observations: dict[Any, list[float]] = {}
        self.scheduled = False

    def apply(self) -> None:
        counts, observations = self.counts, self.observations
        self.counts, self.observations, self.scheduled = {}, {}, False
        for counter, amount in counts.items():
            counter._value.inc(amount)
        for histogram, values in observations.items():
            _observe_all(histogram, values)


def _observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe`` of each value, in one write per bucket touched and one to the sum
    (the bucket is the first whose bound is at least the value, as ``observe`` picks it)."""
    bounds, buckets = histogram._upper_bounds, histogram._buckets
    if len(values) == 1:
        value = values[0]
        histogram._sum.inc(value)
        buckets[bisect_left(bounds, value)].inc(1)
        return
    touched: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)
        touched[index] = touched[index] + 1 if index in touched else 1
    histogram._sum.inc(sum(values))
    for index, number in touched.items():
        buckets[index].inc(number)


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop, _Batch] | None = None


def _batch(loop: asyncio.AbstractEventLoop) -> _Batch:
    """The batch of ``loop``, scheduled to apply at the end of its iteration."""
    global _last
    last = _last
    if last is not None and last[0] is loop:
        batch = last[1]
    else:
        known = _batches.get(loop)
        batch = known if known is not None else _batches.setdefault(loop, _Batch())
        _last = (loop, batch)
    if not batch.scheduled:
        batch.scheduled = True
        loop.call_soon(batch.apply)
    return batch


def count(counter: Any, amount: float = 1.0) -> None:
    """``counter.inc(amount)`` at the end of this loop iteration."""
    if amount < 0:
        raise ValueError("Counters can only be incremented by non-negative amounts.")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        counter.inc(amount)
        return
    last = _last
    batch = last[1] if last is not None and last[0] is loop and last[1].scheduled else _batch(loop)
    counts = batch.counts
    counts[counter] = counts[counter] + amount if counter in counts else amount


def observe(histogram: Any, value: float) -> None:
    """``histogram.observe(value)`` at the end of this loop iteration."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        histogram.observe(value)
        return
    last = _last
    batch = last[1] if last is not None and last[0] is loop and last[1].scheduled else _batch(loop)
    observations = batch.observations
    if histogram in observations:
        observations[histogram].append(value)
    else:
        observations[histogram] = [value]
