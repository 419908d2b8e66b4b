"""Budgets in one process, on the real PostgreSQL and Redis: windows, refusal and charging
from memory, other callers unaffected, the window's reset, reconciliation with the call
records, Redis going away (fail open, per process), the soft limit's alert, and the REST API
(admins write, viewers read, each budget with its spend and reset)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from asgiref.sync import async_to_sync
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import budgets
from apps.accounts.admission import admit_budget, charge
from apps.accounts.limits import Limiter
from apps.accounts.models import ApiKey, Budget, BudgetPeriod, BudgetScope, Role
from apps.accounts.principals import principal_for
from apps.accounts.selectors import budget_standings
from apps.accounts.services import api_key_create, budget_create, workspace_create
from apps.alerts.models import Alert
from apps.alerts.services import alerts_from_rules
from apps.providers.llm.calls import Caller
from apps.providers.llm.recording.records import CallRecord, write_records
from apps.providers.models import CallStatus, EntryPoint
from apps.providers.services import budgets_reconcile
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db(transaction=True)  # admission loads budgets in a thread


def api(role: Role) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def a_key(name: str = "k") -> Caller:
    api_key, _ = api_key_create(user=user_create(role=Role.OPERATOR), name=name)
    return Caller(api_key.user_id, api_key.pk, None)


def key_budget(caller: Caller, limit: str = "0.01", **fields) -> Budget:
    assert caller.api_key_id is not None
    return budget_create(
        scope=BudgetScope.API_KEY,
        api_key=ApiKey.objects.get(pk=caller.api_key_id),
        period=fields.pop("period", BudgetPeriod.DAY),
        limit=Decimal(limit),
        **fields,
    )


def refused(caller: Caller, end_user: str = ""):
    return async_to_sync(admit_budget)(caller, end_user=end_user, entry="test")


def record(cost: str, **fields) -> None:
    call = {
        "id": str(uuid.uuid4()),
        "created_at": timezone.now(),
        "entry_point": EntryPoint.OPENAI,
        "status": CallStatus.SUCCESS,
        "cost": Decimal(cost),
        **fields,
    }
    write_records([CallRecord(call, [])])


def test_windows_are_utc_days_and_months():
    moment = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    day = budgets.window(BudgetPeriod.DAY, moment)
    assert (day.starts, day.ends) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    month = budgets.window(BudgetPeriod.MONTH, moment)
    assert (month.starts, month.ends, month.label) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        "202612",
    )
    assert budgets.window(BudgetPeriod.MONTH, datetime(2026, 2, 10, tzinfo=UTC)).ends == datetime(
        2026, 3, 1, tzinfo=UTC
    )


def test_a_spent_budget_refuses_naming_itself_and_its_reset_and_others_go_on():
    caller, other = a_key("ci"), a_key("other")
    budget = key_budget(caller)
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.006"))
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.006"))
    refusal = refused(caller)
    assert refusal is not None and refusal.code == "insufficient_quota"
    assert "the daily budget of API key 'ci'" in refusal.message
    assert f"(budget {budget.pk})" in refusal.message and "$0.0120 of $0.0100" in refusal.message
    midnight = budgets.window(BudgetPeriod.DAY).ends
    assert f"resets at {midnight:%Y-%m-%d} 00:00 UTC" in refusal.message
    assert abs(refusal.retry_after - (midnight.timestamp() - time.time())) < 5
    # Another key, and the same user's other key, are not held to this key's budget.
    assert refused(other) is None
    assert refused(Caller(caller.user_id, None, None)) is None


def test_every_scope_holds_whatever_the_request_says():
    user = user_create(role=Role.OPERATOR)
    api_key, _ = api_key_create(user=user, name="k")
    team = workspace_create(name="team", members=[user])
    principal = principal_for(user, api_key)
    assert principal.workspace_id == team.pk
    for scope, target in (
        (BudgetScope.USER, {"user": user}),
        (BudgetScope.WORKSPACE, {"workspace": team}),
        (BudgetScope.END_USER, {"end_user": "alice"}),
    ):
        budget = budget_create(scope=scope, period=BudgetPeriod.MONTH, limit=Decimal("1"), **target)
        assert refused(principal, end_user="alice") is None
        charge(principal, end_user="alice", cost=Decimal("1"))
        refusal = refused(principal, end_user="alice")
        assert refusal is not None and f"(budget {budget.pk})" in refusal.message, scope
        budgets.limiter.sync()  # shared
        budgets_reconcile()  # no records behind the spend: the counter goes back to nothing
        budgets.limiter.sync(time.time() + 2)
        assert refused(principal, end_user="alice") is None
        budget.delete()
    # An end user's budget binds that end user, from any key, and no one else.
    budget_create(scope=BudgetScope.END_USER, end_user="bob", period=BudgetPeriod.DAY,
                  limit=Decimal("0.5"))  # fmt: skip
    assert refused(a_key(), end_user="bob") is None
    charge(a_key(), end_user="bob", cost=Decimal("0.5"))
    assert refused(a_key(), end_user="bob") is not None
    assert refused(principal, end_user="carol") is None


def test_the_window_resets():
    caller = a_key()
    key_budget(caller)
    assert refused(caller) is None
    today = time.time()
    budgets.charge(caller, cost=Decimal("0.02"), now=today)
    index = budgets.budgets_load()
    assert budgets.refusal(index, caller, now=today) is not None
    tomorrow = budgets.window(BudgetPeriod.DAY).ends_at + 1
    assert budgets.refusal(index, caller, now=tomorrow) is None


def test_reconciliation_corrects_a_wrong_counter():
    caller = a_key()
    budget = key_budget(caller, limit="1")
    record("0.25", api_key_id=caller.api_key_id)
    record("0.5", api_key_id=caller.api_key_id)
    record("9", api_key_id=a_key().api_key_id)  # another key's
    yesterday = timezone.now() - timedelta(days=1, hours=1)
    record("7", api_key_id=caller.api_key_id, created_at=yesterday)  # another window
    budgets.spend_set(budget, Decimal("42"))  # wrong: more than the records say
    assert budget_standings([budget])[budget.pk].spent == Decimal("42")
    assert budgets_reconcile() == 1
    assert budget_standings([budget])[budget.pk].spent == Decimal("0.75")
    assert budgets_reconcile() == 0  # right now: nothing to correct
    # The process's own view follows once it reads the shared count again.
    budgets.limiter.sync(time.time() + 2)
    assert refused(caller) is None


def test_without_redis_budgets_fail_open_per_process(monkeypatch, caplog):
    """Redis away: calls go on, each process refusing once its own view of the spend reaches
    the limit; what it counted reaches Redis once Redis answers again."""
    dead = Limiter(redis.Redis(port=1, socket_connect_timeout=0.2), background=False)
    monkeypatch.setattr(budgets, "limiter", dead)
    caller = a_key()
    budget = key_budget(caller)
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.004"))
    dead.sync()
    assert dead.down_since is not None and "Redis does not answer" in caplog.text
    assert refused(caller) is None  # fail open: admitted on what this process saw
    charge(caller, cost=Decimal("0.007"))
    assert refused(caller) is not None  # still held to what this process counted
    assert budget_standings([budget])[budget.pk].spent == Decimal(0)  # nothing shared yet
    from apps.core.redis import redis_client

    dead._client = redis_client()
    dead.sync(time.time() + 2)
    assert budget_standings([budget])[budget.pk].spent == Decimal("0.011")


def test_the_soft_limit_raises_one_alert_per_window():
    caller = a_key("soft")
    budget = key_budget(caller, limit="1", soft_limit_percent=50)
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.4"))
    budgets.limiter.sync(time.time() + 2)
    alerts_from_rules()
    assert not Alert.objects.filter(kind="budget_soft_limit").exists()
    charge(caller, cost=Decimal("0.2"))
    budgets.limiter.sync(time.time() + 2)
    alerts_from_rules()
    alerts_from_rules()  # the next health run: still the one alert
    raised = Alert.objects.get(kind="budget_soft_limit")
    assert raised.resolved_at is None and raised.severity == "warning"
    assert "nearly spent" in raised.title and "API key 'soft'" in raised.title
    assert raised.data["budget"] == budget.pk and raised.data["spent"] == "0.6"
    label = budgets.window(BudgetPeriod.DAY).label
    assert raised.cause == f"budget_soft_limit:{budget.pk}:{label}"
    budgets_reconcile()  # no records behind the spend: back to nothing, the alert resolves
    alerts_from_rules()
    raised.refresh_from_db()
    assert raised.resolved_at is not None


def test_an_admin_writes_budgets_and_every_role_reads_them_with_their_spend():
    caller = a_key()
    admin = api(Role.ADMIN)
    created = admin.post(
        "/api/v1/budgets",
        {"scope": "api_key", "api_key": caller.api_key_id, "period": "day", "limit": "0.01"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["soft_limit_percent"] == 80 and body["limit"] == "0.0100"
    assert body["spent"] == "0.00000000"
    assert body["resets_at"].startswith(budgets.window("day").ends.strftime("%Y-%m-%d"))
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.003"))
    budgets.limiter.sync(time.time() + 2)
    for role in (Role.VIEWER, Role.OPERATOR):
        client = api(role)
        listed = client.get("/api/v1/budgets")
        assert listed.status_code == 200
        assert [(b["id"], b["spent"]) for b in listed.json()] == [(body["id"], "0.00300000")]
        assert client.get(f"/api/v1/budgets/{body['id']}").status_code == 200
        forbidden = client.post(
            "/api/v1/budgets",
            {"scope": "end_user", "end_user": "x", "period": "day", "limit": "1"},
            format="json",
        )
        assert forbidden.status_code == 403
        patched = client.patch(f"/api/v1/budgets/{body['id']}", {"limit": "100"}, format="json")
        assert patched.status_code == 403
        assert client.delete(f"/api/v1/budgets/{body['id']}").status_code == 403
    assert Budget.objects.get().limit == Decimal("0.01")
    patched = admin.patch(f"/api/v1/budgets/{body['id']}", {"limit": "5"}, format="json")
    assert patched.status_code == 200 and patched.json()["limit"] == "5.0000"
    assert admin.delete(f"/api/v1/budgets/{body['id']}").status_code == 204


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"scope": "user", "period": "day", "limit": "1"}, "user"),
        ({"scope": "end_user", "end_user": "a", "period": "week", "limit": "1"}, "period"),
        ({"scope": "end_user", "end_user": "a", "period": "day", "limit": "-1"}, "limit"),
        (
            {
                "scope": "end_user",
                "end_user": "a",
                "period": "day",
                "limit": "1",
                "soft_limit_percent": 0,
            },
            "soft_limit_percent",
        ),  # fmt: skip
        (
            {
                "scope": "end_user",
                "end_user": "a",
                "workspace": None,
                "user": None,
                "period": "day",
                "limit": "1",
                "api_key": 999999,
            },
            "api_key",
        ),  # fmt: skip
    ],
)
def test_bad_budgets_are_a_clear_400(payload, field):
    answer = api(Role.ADMIN).post("/api/v1/budgets", payload, format="json")
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json()["error"])


def test_one_budget_per_target_and_period():
    data = {"scope": "end_user", "end_user": "a", "period": "day", "limit": "1"}
    admin = api(Role.ADMIN)
    assert admin.post("/api/v1/budgets", data, format="json").status_code == 201
    again = admin.post("/api/v1/budgets", data, format="json")
    assert again.status_code == 400
    assert (
        admin.post("/api/v1/budgets", {**data, "period": "month"}, format="json").status_code == 201
    )


def test_the_admin_lists_budgets_with_their_spend_and_an_admin_adds_one():
    caller = a_key("shown")
    budget = key_budget(caller, limit="2")
    assert refused(caller) is None
    charge(caller, cost=Decimal("0.5"))
    budgets.limiter.sync(time.time() + 2)
    admin = user_create(role=Role.ADMIN)
    client = Client()
    client.force_login(admin)
    listed = client.get("/admin/accounts/budget/")
    assert listed.status_code == 200
    text = listed.content.decode()
    assert "Daily budget of API key" in text and "$0.5000 (25%)" in text
    assert f"{budgets.window('day').ends:%Y-%m-%d} 00:00 UTC" in text
    page = client.get(f"/admin/accounts/budget/{budget.pk}/change/")
    assert page.status_code == 200 and "$0.5000 (25%)" in page.content.decode()
    added = client.post(
        "/admin/accounts/budget/add/",
        {"scope": "end_user", "end_user": "carol", "period": "month", "limit": "3",
         "soft_limit_percent": "90"},
    )  # fmt: skip
    assert added.status_code == 302, added.content.decode()[:2000]
    assert Budget.objects.get(end_user="carol").soft_limit_percent == 90
    viewer = Client()
    viewer.force_login(user_create(role=Role.VIEWER))
    assert viewer.get("/admin/accounts/budget/").status_code == 200
    assert viewer.get("/admin/accounts/budget/add/").status_code == 403
