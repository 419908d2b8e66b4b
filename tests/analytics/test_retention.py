"""Retention deletes raw records past the setting and leaves the rollups: the analytics API
still answers for those hours, from the rollups alone."""

from __future__ import annotations

import random
from datetime import UTC, timedelta

import pytest
from django.db.models import Count, Sum
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.analytics.models import EndUserHourlyRollup, HourlyRollup, TagHourlyRollup
from apps.providers.models import LlmCall
from apps.providers.tasks import prune_call_records
from tests.support.factories import api_key_issue, bearer

from .generated import call, hour_now, store
from .test_rollups import roll

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot() -> list[tuple]:
    return [
        *HourlyRollup.objects.order_by("pk").values_list(),
        *EndUserHourlyRollup.objects.order_by("pk").values_list(),
        *TagHourlyRollup.objects.order_by("pk").values_list(),
    ]


def test_pruned_hours_keep_their_rollups_and_the_api_still_answers_for_them(settings):
    settings.CALL_RECORD_RETENTION_DAYS = 5
    rng = random.Random(5)
    old_start = hour_now() - timedelta(days=8)
    old = [call(rng, old_start + timedelta(minutes=rng.uniform(0, 600))) for _ in range(400)]
    recent = [call(rng, hour_now() - timedelta(hours=rng.uniform(1, 48))) for _ in range(200)]
    store(old + recent)
    assert roll() > 10
    expected = LlmCall.objects.filter(created_at__lt=old_start + timedelta(hours=10)).aggregate(
        requests=Count("id"), cost=Sum("cost")
    )
    assert expected["requests"] == 400
    before = snapshot()

    prune_call_records()  # the beat task, with the setting
    assert LlmCall.objects.count() == 200  # the old ones gone, none newer
    assert not LlmCall.objects.filter(created_at__lt=hour_now() - timedelta(days=5)).exists()
    assert snapshot() == before

    viewer = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
    answer = viewer.get(
        "/api/v1/analytics/usage",
        {
            "period": "day",
            "startDate": old_start.astimezone(UTC).isoformat(),
            "endDate": (old_start + timedelta(hours=10)).astimezone(UTC).isoformat(),
        },
    )
    assert answer.status_code == 200, answer.content[:300]
    totals = answer.json()["totals"]
    assert totals["totalRequests"] == expected["requests"]
    assert round(float(totals["totalCost"]), 8) == round(float(expected["cost"]), 8)
