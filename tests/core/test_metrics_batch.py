"""The hot path's Prometheus writes, batched per event-loop iteration (``apps.core.metrics``),
add up to what the same writes made one by one do, and none waits past its iteration."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram

from apps.core.metrics import count, observe

BUCKETS = (0.001, 0.01, 0.1, 1)
VALUES = [0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.5, 1, 3, 0.001, 0.0, 7.5]


def _series(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("calls", "Calls.", ["kind"], registry=registry)
    histogram = Histogram("seconds", "Seconds.", ["kind"], buckets=BUCKETS, registry=registry)
    return counter, histogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_writes_batched_in_one_iteration_add_up_to_the_same_writes_made_directly():
    direct, batched = CollectorRegistry(), CollectorRegistry()
    counter, histogram = _series(direct)
    for value in VALUES:
        counter.labels("chat").inc()
        counter.labels("tokens").inc(3)
        histogram.labels("chat").observe(value)
    counter, histogram = _series(batched)

    async def requests() -> dict[tuple[str, tuple], float]:
        for value in VALUES:
            count(counter.labels("chat"))
            count(counter.labels("tokens"), 3)
            observe(histogram.labels("chat"), value)
        held = _samples(batched)
        await asyncio.sleep(0)  # the iteration ends: the batch is applied
        return held

    held = asyncio.run(requests())
    assert held[("calls_total", (("kind", "chat"),))] == 0  # held until the iteration ended
    assert _samples(batched) == _samples(direct)
    assert _samples(batched)[("seconds_count", (("kind", "chat"),))] == len(VALUES)


def test_writes_apply_at_once_outside_a_loop_and_after_each_iteration_inside_one():
    registry = CollectorRegistry()
    counter, histogram = _series(registry)
    count(counter.labels("sync"), 2)
    observe(histogram.labels("sync"), 0.5)
    assert registry.get_sample_value("calls_total", {"kind": "sync"}) == 2
    assert registry.get_sample_value("seconds_sum", {"kind": "sync"}) == 0.5

    async def iterations() -> list[float | None]:
        seen = []
        for _ in range(3):
            count(counter.labels("loop"))
            observe(histogram.labels("loop"), 0.002)
            await asyncio.sleep(0)
            seen.append(registry.get_sample_value("calls_total", {"kind": "loop"}))
        return seen

    assert asyncio.run(iterations()) == [1, 2, 3]
    assert registry.get_sample_value("seconds_bucket", {"kind": "loop", "le": "0.01"}) == 3
    assert registry.get_sample_value("seconds_bucket", {"kind": "loop", "le": "0.001"}) == 0
