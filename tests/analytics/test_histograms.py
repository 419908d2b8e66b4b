"""The histograms' arithmetic: whole histograms added bucket by bucket as pairs are, and the
percentiles of one pass the same as each percentile read alone."""

from __future__ import annotations

import random

from apps.analytics import histograms


def random_histogram(rng: random.Random) -> list[int]:
    counts = histograms.empty()
    for _ in range(rng.choice([0, 1, 3, 40])):
        counts[rng.randrange(histograms.BUCKETS)] += rng.randint(1, 1000)
    return counts


def test_merge_adds_whole_histograms_as_add_adds_pairs():
    rng = random.Random(4)
    total, expected = None, histograms.empty()
    for _ in range(30):
        counts = random_histogram(rng)
        total = histograms.merge(total, counts)
        histograms.add(expected, enumerate(counts))
    assert total == expected and sum(expected) > 0
    first = random_histogram(rng)
    assert histograms.merge(None, first) == first and histograms.merge(None, first) is not first
    # A list of another length is clamped into range as ``add`` clamps.
    assert histograms.merge(None, [1, 2]) == [1, 2] + [0] * (histograms.BUCKETS - 2)
    longer = histograms.merge(histograms.empty(), [0] * histograms.BUCKETS + [5])
    assert longer[-1] == 5 and len(longer) == histograms.BUCKETS


def test_percentiles_equal_each_percentile():
    rng = random.Random(5)
    for _ in range(300):
        counts = random_histogram(rng)
        found = histograms.percentiles(counts)
        assert found == {
            f"p{round(q * 100)}": histograms.percentile(counts, q) for q in histograms.PERCENTILES
        }
    assert histograms.percentiles(histograms.empty()) == {"p50": None, "p95": None, "p99": None}
    top = histograms.empty()
    top[-1] = 3
    assert set(histograms.percentiles(top).values()) == {histograms.HIGH_MS}
