"""Call ids and generated request ids are UUIDv7: time-ordered, so the indexes they go in are
written at their right-hand edge (``bench/store.py`` measures what that saves)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection

from apps.core.ids import uuid7, uuid7_time_ns
from apps.core.request_context import request_id_from
from apps.providers.llm import LlmRequest, new_call_id
from apps.providers.models import LlmCall


def test_a_uuid7_is_version_7_of_rfc_9562_and_tells_when_it_was_made():
    before = time.time_ns()
    made = uuid7()
    after = time.time_ns()
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert before - 1_000 <= uuid7_time_ns(made) <= after
    assert uuid.UUID(str(made)) == made


def test_uuid7s_sort_in_the_order_they_were_made():
    made = [uuid7() for _ in range(2_000)]
    assert len(set(made)) == len(made)
    times = [uuid7_time_ns(u) for u in made]
    assert times == sorted(times)
    past = [uuid7(at_ns=ns) for ns in (1_000_000_000_000_000_000, 1_700_000_000_123_456_789)]
    assert past == sorted(past) and past[-1] < made[0]
    assert uuid7_time_ns(past[1]) // 1_000_000 == 1_700_000_000_123


def test_every_call_id_is_one():
    assert new_call_id().version == 7
    assert LlmRequest(messages=[]).call_id.version == 7
    assert LlmCall().id.version == 7
    assert uuid.UUID(request_id_from(None)).version == 7
    assert request_id_from("mine-42") == "mine-42"


@pytest.mark.django_db
def test_the_admins_search_by_request_id_uses_the_partial_index():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    term = uuid7().hex
    query = LlmCall.objects.filter(request_id=term) | LlmCall.objects.filter(pk=uuid.UUID(term))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "llmcall_request_id" in plan
