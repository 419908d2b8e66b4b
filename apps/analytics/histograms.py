"""Fixed log-spaced histograms of latencies, merged by adding counts bucket by bucket.

Bucket 0 holds values under ``LOW_MS``, bucket ``i`` (1 to ``BUCKETS - 2``) the values in
``[LOW_MS · RATIO^(i-1), LOW_MS · RATIO^i)``, the last one values of ``HIGH_MS`` and over. A
percentile is read as the geometric middle of the bucket holding its rank, so for a value
between ``LOW_MS`` and ``HIGH_MS`` the estimate is within ``sqrt(RATIO) - 1`` (4.88%) of the
nearest-rank percentile (PostgreSQL's ``percentile_disc``) of the same calls, however many
histograms were added together.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate

from django.db.models import Case, F, FloatField, IntegerField, Value, When
from django.db.models.expressions import Expression
from django.db.models.functions import Cast, Floor, Ln

RATIO = 1.1
LOW_MS = 1.0
HIGH_MS = 600_000.0  # ten minutes
INNER = math.ceil(math.log(HIGH_MS / LOW_MS) / math.log(RATIO))
BUCKETS = INNER + 2
ERROR_BOUND = math.sqrt(RATIO) - 1
PERCENTILES = (0.5, 0.95, 0.99)


def bucket_of(ms: float) -> int:
    if ms < LOW_MS:
        return 0
    if ms >= HIGH_MS:
        return BUCKETS - 1
    return min(INNER, int(math.floor(math.log(ms / LOW_MS) / math.log(RATIO))) + 1)


def bucket_value(index: int) -> float:
    """What a bucket's values are read as: its geometric middle (half ``LOW_MS`` under it,
    ``HIGH_MS`` over it)."""
    if index <= 0:
        return LOW_MS / 2
    if index >= BUCKETS - 1:
        return HIGH_MS
    return LOW_MS * RATIO ** (index - 1) * math.sqrt(RATIO)


def bucket_expression(field: str) -> Expression:
    """The bucket of a column's value, computed by the database (null stays null)."""
    inner = Cast(
        Floor(Ln(Cast(F(field), FloatField()) / Value(LOW_MS)) / Value(math.log(RATIO))),
        IntegerField(),
    ) + Value(1)
    return Case(
        When(**{f"{field}__isnull": True}, then=Value(None)),
        When(**{f"{field}__lt": LOW_MS}, then=Value(0)),
        When(**{f"{field}__gte": HIGH_MS}, then=Value(BUCKETS - 1)),
        default=inner,
        output_field=IntegerField(),
    )


def empty() -> list[int]:
    return [0] * BUCKETS


def add(total: list[int], counts: Mapping[int, int] | Iterable[tuple[int, int]]) -> list[int]:
    """Add ``(bucket, count)`` pairs into ``total`` (clamped into range) and return it."""
    pairs = counts.items() if isinstance(counts, Mapping) else counts
    for index, count in pairs:
        total[max(0, min(BUCKETS - 1, int(index)))] += int(count)
    return total


def merge(total: list[int] | None, counts: Sequence[int]) -> list[int]:
    """``total`` (None: an empty histogram) plus a whole histogram, bucket by bucket, as a new
    list (a list of another length is added through ``add``, clamped)."""
    if len(counts) != BUCKETS:
        return add(list(total or empty()), enumerate(counts))
    if total is None:
        return list(counts)
    return list(map(operator.add, total, counts))


def percentile(counts: list[int], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q ≤ 1) of a histogram; None when it is empty."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return round(bucket_value(index), 3)
    return round(bucket_value(BUCKETS - 1), 3)


def percentiles(counts: list[int]) -> dict[str, float | None]:
    """``percentile`` of each of ``PERCENTILES``, from one running sum of the buckets."""
    running = list(accumulate(counts))
    total = running[-1] if running else 0
    names = [f"p{round(q * 100)}" for q in PERCENTILES]
    if not total:
        return dict.fromkeys(names)
    found: dict[str, float | None] = {}
    for name, q in zip(names, PERCENTILES, strict=True):
        index = min(bisect_left(running, max(1, math.ceil(q * total - 1e-9))), BUCKETS - 1)
        found[name] = round(bucket_value(index), 3)
    return found
