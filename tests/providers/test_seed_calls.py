"""``manage.py seed_calls``: made-up call records straight into the tables (PostgreSQL's COPY,
or bulk_create elsewhere: the suite runs on either), spread over the days asked for."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.accounts.models import ApiKey, Workspace
from apps.analytics.models import EndUserHourlyRollup, HourlyRollup, PendingHour, TagHourlyRollup
from apps.core.ids import uuid7_time_ns
from apps.providers.models import CallStatus, LlmCall, LlmCallAttempt, LlmModel, Provider
from apps.providers.seeding import call_records_seed

pytestmark = pytest.mark.django_db(transaction=True)


def test_seeds_the_exact_count_over_the_days_asked_with_attempts():
    before = timezone.now()
    out = StringIO()
    call_command("seed_calls", "--count", "1500", "--days", "7", stdout=out)
    after = timezone.now()

    assert LlmCall.objects.count() == 1500
    assert "1500 calls" in out.getvalue()
    span = LlmCall.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    assert before - timedelta(days=7) <= span["first"] < before - timedelta(days=6, hours=23)
    assert after - timedelta(hours=1) < span["last"] <= after
    # Every call has as many attempts as it says, numbered from 1, the last one its outcome.
    counted = LlmCall.objects.annotate(n=Count("attempts")).exclude(n=F("attempt_count"))
    assert not counted.exists()
    assert LlmCallAttempt.objects.count() >= 1500
    assert LlmCallAttempt.objects.filter(number=1).count() == 1500


def test_the_figures_look_like_a_gateways():
    call_records_seed(count=3000, days=30, chunk=700)  # several chunks

    calls = LlmCall.objects
    success = calls.filter(status=CallStatus.SUCCESS).count() / 3000
    assert 0.9 < success < 0.99
    assert calls.filter(status=CallStatus.ERROR).exclude(error_code="").count() > 0
    # A few of the models the database got take the calls, the first most; with prices and
    # tokens, costs follow the model's prices.
    assert Provider.objects.filter(name="seed-openai", enabled=False).exists()
    per_model = dict(calls.values_list("model_name").annotate(n=Count("id")))
    assert max(per_model, key=per_model.__getitem__) == "gpt-4o-mini"
    sample = calls.filter(model_name="gpt-4o", status=CallStatus.SUCCESS).first()
    model = LlmModel.objects.get(name="gpt-4o")
    expected = (
        sample.input_tokens * model.input_price_per_million
        + sample.output_tokens * model.output_price_per_million
    ) / 1_000_000
    assert abs(sample.cost - expected) < Decimal("1e-7")
    assert calls.filter(cost__gt=0).count() > 1000
    latencies = sorted(calls.values_list("latency_ms", flat=True))
    assert latencies[len(latencies) // 2] < latencies[int(len(latencies) * 0.99)] / 3  # long tail
    streams = calls.filter(stream=True, status=CallStatus.SUCCESS)
    assert streams.exists() and not streams.filter(time_to_first_token_ms=None).exists()
    assert not calls.filter(stream=False, time_to_first_token_ms__isnull=False).exists()
    assert calls.values("entry_point").distinct().count() >= 5
    # API calls carry a caller's key and a request id; builds' and agents' none.
    assert ApiKey.objects.count() == 3
    api = calls.filter(entry_point__in=["openai", "query", "sse", "websocket"])
    assert not api.filter(Q(api_key=None) | Q(request_id="")).exists()
    assert not calls.filter(entry_point="build").exclude(request_id="").exists()
    assert calls.filter(attempt_count__gt=1).exists()


def test_ids_are_uuid7_of_the_call_time_unless_asked_for_the_old_random_ones():
    call_records_seed(count=50, days=2)
    for call in LlmCall.objects.all():
        assert call.id.version == 7
        made = uuid7_time_ns(call.id) / 1e9
        assert abs(made - call.created_at.timestamp()) < 0.002
    LlmCall.objects.all().delete()

    call_records_seed(count=50, days=2, id_version=4)
    assert {call.id.version for call in LlmCall.objects.all()} == {4}


def test_uses_the_databases_models_and_keys_when_there_are_some(django_user_model):
    provider = Provider.objects.create(name="mine", base_url="http://127.0.0.1:1/v1")
    LlmModel.objects.create(provider=provider, name="only-one", input_price_per_million=1)
    user = django_user_model.objects.create(username="someone")
    from apps.accounts.services import api_key_create

    key, _ = api_key_create(user=user, name="k")
    call_records_seed(count=200, days=1)
    assert set(LlmCall.objects.values_list("model_name", flat=True)) == {"only-one"}
    assert set(LlmCall.objects.exclude(api_key=None).values_list("api_key", flat=True)) == {key.pk}
    assert not Provider.objects.filter(name__startswith="seed-").exists()


def test_bad_arguments_are_refused():
    with pytest.raises(CommandError, match="count"):
        call_command("seed_calls", "--count", "0", "--days", "1")
    with pytest.raises(CommandError, match="days"):
        call_command("seed_calls", "--count", "5", "--days", "0")


def test_rolls_up_the_hours_it_wrote_with_end_users_tags_and_workspaces():
    out = StringIO()
    call_command("seed_calls", "--count", "2000", "--days", "2", stdout=out)
    assert "Rolled up" in out.getvalue()

    open_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    closed = LlmCall.objects.filter(created_at__lt=open_hour)
    rolled = HourlyRollup.objects.aggregate(n=Sum("requests"), cost=Sum("cost"))
    assert rolled == closed.aggregate(n=Count("id"), cost=Sum("cost"))
    assert set(HourlyRollup.objects.values_list("hour", flat=True)) == set(
        closed.annotate(h=TruncHour("created_at")).values_list("h", flat=True)
    )
    # The open hour waits, marked, for beat to roll it once closed.
    assert list(PendingHour.objects.values_list("hour", flat=True)) == [open_hour]

    by_end_user = dict(
        closed.exclude(end_user="").values_list("end_user").annotate(Count("id")).order_by()
    )
    assert len(by_end_user) > 50 and max(by_end_user.values()) > 10 * min(by_end_user.values())
    assert EndUserHourlyRollup.objects.aggregate(n=Sum("requests"))["n"] == sum(
        by_end_user.values()
    )
    assert 0.5 < LlmCall.objects.exclude(tags={}).count() / 2000 < 0.9
    assert TagHourlyRollup.objects.filter(key="team").exists()
    workspaces = set(Workspace.objects.values_list("pk", flat=True))
    assert len(workspaces) == 3
    used = set(LlmCall.objects.exclude(workspace=None).values_list("workspace_id", flat=True))
    assert used == workspaces
    for key in ApiKey.objects.all():
        mine = set(LlmCall.objects.filter(api_key=key).values_list("workspace_id", flat=True))
        assert mine == {key.user.workspace_membership.workspace_id}
