"""Percentiles of a column: PostgreSQL's ``percentile_cont`` where the database has it, and the
same interpolation in Python elsewhere (SQLite in ``make run``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connections, transaction
from django.db.models import Aggregate, FloatField, QuerySet


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def has_percentile(queryset: QuerySet[Any]) -> bool:
    """Whether the database of ``queryset`` computes ``Percentile`` (PostgreSQL does)."""
    return connections[queryset.db].vendor == "postgresql"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as ``percentile_cont``; None of none."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.contextmanager
def without_jit(using: str) -> Iterator[None]:
    """A transaction in which PostgreSQL compiles no query (``jit`` off; nothing elsewhere).
    An aggregate of tens of thousands of rows costs more than ``jit_above_cost``, and the
    compilation then takes 10 to 40 ms each time, more than it saves on so few rows. Inside a
    transaction already, the setting lasts until that one ends."""
    if connections[using].vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        yield
