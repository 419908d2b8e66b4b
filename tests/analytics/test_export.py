"""The rollup export's CSV, written by PostgreSQL's ``COPY``, is the same bytes as Python's
``csv`` writer gives the rows Django reads: awkward names, empty and null cells, costs Python
writes in exponent form, whole and huge floats, per hour and per day."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from apps.analytics import selectors
from apps.analytics.api.views import _csv
from apps.analytics.models import DailyRollup, HourlyRollup

from .generated import hour_now
from .test_api import iso, viewer

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["viewer"]  # the fixture, used by name
NAMES = [("", "plain"), ("alpha", "a,b"), ("alpha", 'say "hi"'), ("beta", "two\nlines"),
         ("beta", " spaced "), ("gamma", "é-model")]  # fmt: skip
COSTS = [Decimal(0), Decimal("0.00000012"), Decimal("0.0000001"), Decimal("0.00000100"),
         Decimal("12.5"), Decimal("-0.00000003")]  # fmt: skip
# Each row's latency sum: one value per key and day, so a day's sum is exact in any order.
LATENCIES = [1500.0, 0.0, 1000000000000000.5, 3e-05, 1e16, 0.1 + 0.2]


def rows(**day: datetime) -> list[dict]:
    return [
        {"provider_name": provider, "model_name": model, "api_key_id": None if i % 2 else i,
         "user_id": i, "workspace_id": None, "entry_point": "openai", "endpoint": "chat",
         "service": "chat", "status": "error" if i == 3 else "success", "requests": 10 + i,
         "errors": i, "input_tokens": 10**12 + i, "output_tokens": 0, "cost": COSTS[i],
         "latency_sum_ms": LATENCIES[i], "ttft_count": i, "ttft_sum_ms": 2.0 * i, **day}
        for i, (provider, model) in enumerate(NAMES)
    ]  # fmt: skip


@pytest.fixture
def stored() -> tuple[datetime, datetime]:
    """Hourly rows on five days (the first and the last partial), daily rows on the three
    whole ones."""
    today = hour_now().replace(hour=0)
    for days_ago in range(5):
        hour = today - timedelta(days=days_ago) + timedelta(hours=0 if days_ago == 0 else 20)
        HourlyRollup.objects.bulk_create(HourlyRollup(**row) for row in rows(hour=hour))
        if days_ago in (1, 2, 3):
            DailyRollup.objects.bulk_create(
                DailyRollup(**row) for row in rows(day=today - timedelta(days=days_ago))
            )
    return today - timedelta(days=4, hours=-12), datetime.now(UTC)


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_the_copied_csv_is_what_python_writes(stored, viewer, granularity):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's; elsewhere the export is Python's own CSV")
    start, end = stored
    export = {"source": "rollups", "start": start, "end": end, "filters": selectors.Filters(),
              "granularity": granularity}  # fmt: skip
    assert selectors.export_csv_copied(**export) is not None
    python = "".join(_csv(*selectors.export_rows(**export))).encode()
    response = viewer.get("/api/v1/analytics/export", {
        "format": "csv", "startDate": iso(start), "endDate": iso(end), "granularity": granularity,
    })  # fmt: skip
    assert response.status_code == 200 and response.streaming
    copied = b"".join(response.streaming_content)
    assert copied == python
    found = list(csv.DictReader(io.StringIO(copied.decode(), newline="")))
    assert len(found) == 5 * len(NAMES)
    # Python's own text for each (a cost as stored: 8 places; "0E-8", "1.2E-7"...).
    assert {r["cost"] for r in found} == {str(c.quantize(Decimal("1E-8"))) for c in COSTS}
    assert {r["latency_sum_ms"] for r in found} == {repr(v) for v in LATENCIES}
    assert {r["model_name"] for r in found} == {model for _, model in NAMES}
    assert {r["provider_name"] for r in found} == {"", "alpha", "beta", "gamma"}
    assert "" in {r["api_key_id"] for r in found} and copied.count(b"\r\n") > len(found)


def test_a_range_without_a_whole_day_reads_the_hourly_rows_alone(stored, viewer):
    start, end = hour_now().replace(hour=0) - timedelta(hours=6), datetime.now(UTC)
    export = {"source": "rollups", "start": start, "end": end, "filters": selectors.Filters()}
    response = viewer.get("/api/v1/analytics/export", {
        "format": "csv", "startDate": iso(start), "endDate": iso(end),
    })  # fmt: skip
    assert response.status_code == 200
    copied = b"".join(response.streaming_content)
    assert copied == "".join(_csv(*selectors.export_rows(**export))).encode()
    assert copied.count(b"\r\n") == 1 + 2 * len(NAMES)  # the header, yesterday 20:00, today
