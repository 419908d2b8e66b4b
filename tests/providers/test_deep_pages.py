"""A deep ``offset`` or ``page`` of ``/api/v1/llm-calls`` seeks the hour holding it by the
calls' counts (the analytics rollups for closed hours, the records themselves for the rest)
and answers exactly the page the plain offset would: with a pending hour, running calls
(which the rollups leave out), pruned old records (whose rollups stay), a ``created_at`` range
and the filters the rollups keep; the filters they do not keep walk the plain offset."""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.analytics.models import PendingHour
from apps.providers.llm.recording.records import call_records_prune
from apps.providers.models import LlmCall
from apps.providers.selectors import (
    CALL_ORDER,
    SEEK_FROM,
    CallFilters,
    llm_call_page,
    llm_call_seek,
    llm_call_tagged,
)
from tests.analytics.generated import call, hour_now, store
from tests.analytics.test_rollups import roll
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db

API = "/api/v1/llm-calls"
KEPT_DAYS = 5


@pytest.fixture
def calls() -> dict[str, Any]:
    """About 3,300 calls over six days and the open hour, rolled up; then records older than
    ``KEPT_DAYS`` pruned (the cutoff's hour partly), a late call left pending in a closed hour
    and running calls in a rolled hour and in the open one."""
    rng = random.Random(7)
    users = [user_create(role=Role.VIEWER).pk for _ in range(2)]
    now = timezone.now()
    start = hour_now() - timedelta(days=6)
    span = (now - start).total_seconds()
    made = [call(rng, start + timedelta(seconds=rng.uniform(0, span))) for _ in range(3000)]
    # Around the pruning cutoff, so its hour keeps part of its records.
    cutoff = now - timedelta(days=KEPT_DAYS)
    made += [call(rng, cutoff + timedelta(minutes=rng.uniform(-50, 50))) for _ in range(300)]
    for made_call in made:
        made_call["user_id"] = rng.choice([None, *users])
    store(made)
    assert roll() > 100
    assert call_records_prune(older_than_days=KEPT_DAYS).calls > 100
    late = call(rng, hour_now() - timedelta(hours=30), user_id=users[0])
    store([late])
    running = [
        call(rng, hour_now() - timedelta(hours=50, minutes=m), status="running") for m in (5, 9)
    ]
    running.append(call(rng, timezone.now(), status="running"))
    store(running, final=False)
    assert PendingHour.objects.filter(hour=hour_now() - timedelta(hours=30)).exists()
    assert LlmCall.objects.filter(status="running").count() == 3
    return {"users": users, "late": late}


def ids(calls: Any) -> list[str]:
    return [str(pk) for pk in calls.order_by(*CALL_ORDER).values_list("pk", flat=True)]


def offsets(total: int) -> list[int]:
    """Offsets over the whole list, its ends and past it."""
    picked = {0, 1, total // 3, total // 2, total - 60, total - 1, total, total + 5}
    picked |= set(random.Random(total).sample(range(total), min(total, 40)))
    return sorted(offset for offset in picked if offset >= 0)


def filtered(users: list[int]) -> list[tuple[CallFilters, Any]]:
    """Each kind of filter the rollups keep, and the calls it narrows the table to."""
    after = hour_now() - timedelta(days=4, minutes=17)
    before = hour_now() - timedelta(days=1, minutes=-23)
    cases: list[dict[str, Any]] = [
        {},
        {"provider_name": "alpha"},
        {"status": "error"},
        {"status": "running"},
        {"model_name": "gpt-a", "entry_point": "openai"},
        {"user_id": users[0]},
        {"end_user": "alice"},
    ]
    found = [(CallFilters(dims), LlmCall.objects.filter(**dims)) for dims in cases]
    in_range = LlmCall.objects.filter(created_at__gte=after, created_at__lte=before)
    found.append((CallFilters({}, after, before), in_range))
    found.append((CallFilters({"status": "success"}, after, None),
                  LlmCall.objects.filter(status="success", created_at__gte=after)))  # fmt: skip
    return found


def test_every_deep_page_is_the_plain_offsets_page(calls):
    for filters, narrowed in filtered(calls["users"]):
        expected = ids(narrowed)
        for offset in offsets(len(expected)):
            page = llm_call_page(
                calls=narrowed, offset=offset, limit=25, filters=filters, seek_from=0
            )
            assert [str(c.pk) for c in page] == expected[offset : offset + 25], (filters, offset)


def test_deep_offsets_seek_an_hour_by_the_counts_unless_a_filter_is_not_counted(calls):
    everything = LlmCall.objects.all()
    total = everything.count()
    seek = llm_call_seek(calls=everything, offset=total // 2, filters=CallFilters({}))
    assert seek is not None
    before, skip = seek
    assert (
        before.minute == 0
        and skip
        < everything.filter(
            created_at__gte=before - timedelta(hours=1), created_at__lt=before
        ).count()
    )
    # Whether a call streamed, or a build: no rollup keeps it.
    for dims in ({"stream": True}, {"build_id": 7}, {"end_user": "alice", "status": "error"}):
        narrowed = LlmCall.objects.filter(**dims)
        assert llm_call_seek(calls=narrowed, offset=5, filters=CallFilters(dims)) is None
        assert [c.pk for c in llm_call_page(
            calls=narrowed, offset=5, limit=10, filters=CallFilters(dims), seek_from=0
        )] == [c.pk for c in narrowed.order_by(*CALL_ORDER)[5:15]]  # fmt: skip


def test_the_api_pages_deep_offsets_and_pages_exactly(calls):
    client = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
    tagged = llm_call_tagged(calls=LlmCall.objects.all(), key="team", value="growth")
    after = (hour_now() - timedelta(days=3, minutes=41)).astimezone(UTC)
    asked: list[tuple[dict[str, Any], Any]] = [
        ({}, LlmCall.objects.all()),
        ({"provider_name": "alpha"}, LlmCall.objects.filter(provider_name="alpha")),
        ({"user": calls["users"][1]}, LlmCall.objects.filter(user_id=calls["users"][1])),
        ({"stream": "true"}, LlmCall.objects.filter(stream=True)),
        ({"tag": "team:growth"}, tagged),
        ({"created_at_after": after.isoformat()}, LlmCall.objects.filter(created_at__gte=after)),
    ]
    for query, narrowed in asked:
        expected = ids(narrowed)
        for offset in (SEEK_FROM, SEEK_FROM + 7, len(expected) - 30, len(expected) + 1):
            body = client.get(API, {**query, "offset": offset, "limit": 50}).json()
            assert [c["id"] for c in body["results"]] == expected[offset : offset + 50]
        page = SEEK_FROM // 20 + 3
        body = client.get(API, {**query, "page": page, "limit": 20}).json()
        assert [c["id"] for c in body["results"]] == expected[(page - 1) * 20 : page * 20]
        assert f"page={page - 1}" in body["previous"]


@pytest.mark.parametrize("query", [{"offset": -1}, {"offset": 10**13}, {"page": 0},
                                   {"page": "deep"}, {"offset": "1e6"}])  # fmt: skip
def test_a_position_that_is_not_one_is_still_a_400(query):
    client = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
    assert client.get(API, query).status_code == 400
