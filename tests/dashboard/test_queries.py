"""Database queries per page stay bounded: the same number with thousands of call records and
providers as with a handful (no query per row), and few in absolute terms."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role
from apps.core.health import forget_results
from apps.dashboard.figures import SNAPSHOT_KEY
from apps.providers.models import (
    CallRecordDeadLetter,
    CallStatus,
    LlmCall,
    LlmCallAttempt,
    LlmModel,
    Provider,
)
from tests.dashboard.conftest import call_record, member

pytestmark = pytest.mark.django_db

MOST_QUERIES = 40


def add_rows(*, providers: int, calls: int, start: int = 0) -> None:
    made = Provider.objects.bulk_create(
        Provider(name=f"p{start + i}", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
        for i in range(providers)
    )
    LlmModel.objects.bulk_create(
        LlmModel(
            provider=p,
            name="m",
            input_price_per_million=Decimal(1),
            output_price_per_million=Decimal(2),
        )
        for p in made
    )
    now = timezone.now()
    records = [
        call_record(
            at=now - timedelta(seconds=30 * i),
            provider_name=made[i % len(made)].name,
            status=CallStatus.ERROR if i % 7 == 0 else CallStatus.SUCCESS,
            latency_ms=50 + i % 500,
        )
        for i in range(calls)
    ]
    for record in records:
        record.provider = made[0]
    LlmCall.objects.bulk_create(records, batch_size=1000)
    LlmCallAttempt.objects.bulk_create(
        LlmCallAttempt(
            call=r,
            number=1,
            provider_name=r.provider_name,
            model_name="m",
            status=r.status,
            started_at=r.created_at,
        )
        for r in records
    )
    CallRecordDeadLetter.objects.bulk_create(
        CallRecordDeadLetter(call_id=uuid.uuid4(), reason="x", payload="{}") for _ in range(3)
    )


def pages() -> list[str]:
    call = LlmCall.objects.order_by("created_at").first()
    provider = Provider.objects.order_by("name").first()
    assert call and provider
    return [
        "/admin/",
        "/admin/playground/",
        "/admin/circuits/",
        "/admin/config/",
        "/admin/providers/provider/",
        f"/admin/providers/provider/{provider.pk}/change/",
        "/admin/providers/llmmodel/",
        "/admin/providers/llmcall/",
        "/admin/providers/llmcall/?provider_name=p0&status__exact=error&caller=nobody",
        f"/admin/providers/llmcall/{call.pk}/change/",
        "/admin/providers/callrecorddeadletter/",
        "/admin/accounts/apikey/",
        "/admin/auth/user/",
        "/admin/logs/",
        "/admin/github-issues/",
        "/admin/usage-analytics/",
        "/admin/usage-analytics/?range=7d&provider=p0&tag=team:growth",
    ]


def count_queries(client: Client) -> dict[str, int]:
    counts = {}
    for url in pages():
        cache.delete(SNAPSHOT_KEY)  # Home computes its figures itself: the costly path
        forget_results()  # and runs its health checks (a cached result could expire meanwhile)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        parts = url.strip("/").split("/")
        name = "/".join(parts[1:3] + parts[-1:] if "change" in url else parts[1:3]) or "home"
        counts[url if "?" in url else name] = len(queries)
    return counts


def test_queries_per_page_do_not_grow_with_the_rows():
    client = Client()
    client.force_login(member(Role.ADMIN))
    add_rows(providers=3, calls=20)
    count_queries(client)  # once for the caches a process fills once (content types)
    few = count_queries(client)

    add_rows(providers=2000, calls=5000, start=100)
    assert LlmCall.objects.count() == 5020 and Provider.objects.count() == 2003
    many = count_queries(client)

    # Past EXACT_COUNT_UP_TO calls in its window the Calls page asks the planner for an
    # estimate instead of counting on: one query more, however many calls there are.
    assert many.pop("providers/llmcall") == few.pop("providers/llmcall") + 1
    assert many == few
    assert max(many.values()) <= MOST_QUERIES, many
