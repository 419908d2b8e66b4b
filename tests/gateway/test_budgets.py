"""Budgets through a real daphne and the fake upstream, with a model priced so that a call
costs $0.0055: a key with a $0.01 daily budget makes two calls and is then refused, as OpenAI
refuses a spent quota on ``/v1`` (the ``openai`` SDK raises ``RateLimitError`` with code
``insufficient_quota``) and in the platform's shape on the query API and SSE, naming the
budget and its reset, with ``Retry-After``, before any upstream request and without a call
record; no header or body field gets around it, and other keys go on. (The WebSocket's are in
``tests/realtime/test_budgets.py``.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings

from apps.accounts.models import ApiKey, BudgetPeriod, BudgetScope, Role
from apps.accounts.services import api_key_create, budget_create, workspace_create
from apps.providers.models import LlmCall
from tests.support.factories import bearer, user_create
from tests.support.processes import AsgiServer
from tests.support.providers import deploy, provider_for, routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]
CALL_COST = Decimal("0.0055")  # 3 + 8 tokens at $500 per million


@pytest.fixture
def priced(upstream_a):
    """Public model 'chat' on provider a at $500 per million tokens either way."""
    routing()
    price = {"input_price_per_million": Decimal(500), "output_price_per_million": Decimal(500)}
    return deploy(provider_for(upstream_a), **price)


def budgeted_key(limit: str = "0.01", *, scope: str = BudgetScope.API_KEY) -> tuple[ApiKey, str]:
    api_key, raw = api_key_create(user=user_create(role=Role.OPERATOR), name="budgeted")
    target: dict = {"api_key": api_key}
    if scope == BudgetScope.WORKSPACE:
        target = {"workspace": workspace_create(name="team", api_keys=[api_key])}
    budget_create(scope=scope, period=BudgetPeriod.DAY, limit=Decimal(limit), **target)
    return api_key, raw


def servers_see_the_budgets() -> None:
    """Servers load budgets at most once per ``API_KEY_CACHE_SECONDS``."""
    time.sleep(settings.API_KEY_CACHE_SECONDS + 0.5)


def clear_of_midnight(margin: float = 60) -> None:
    left = 86_400 - time.time() % 86_400
    if left < margin:
        time.sleep(left + 1)


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return (
        now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1) - now
    ).total_seconds()


def v1(server: AsgiServer, key: str, headers: dict | None = None, **body) -> httpx.Response:
    payload = {"model": "chat", "messages": HELLO, **body}
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=payload,
        headers={**bearer(key), **(headers or {})},
        timeout=30,
    )


def assert_names_the_budget(message: str, what: str) -> None:
    assert message.startswith("Budget exceeded: the daily budget of " + what), message
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert f"resets at {tomorrow:%Y-%m-%d} 00:00 UTC" in message, message


def assert_retry_after_midnight(response: httpx.Response) -> None:
    assert abs(int(response.headers["retry-after"]) - seconds_to_midnight()) < 30


def test_v1_refuses_a_key_past_its_daily_budget_as_openai_does(
    priced, asgi_server, upstream_a, recorded_calls, operator_key
):
    clear_of_midnight()
    api_key, key = budgeted_key()
    servers_see_the_budgets()
    sdk = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=2)
    for _ in range(2):  # $0.0055, then $0.011: over the $0.01
        sdk.chat.completions.create(model="chat", messages=HELLO)
    calls = recorded_calls(2)
    assert sum(call.cost for call in calls) == 2 * CALL_COST
    sent = upstream_a.stats()["requests"]
    assert sent == 2
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="chat", messages=HELLO)
    assert raised.value.code == "insufficient_quota"
    assert raised.value.type == "insufficient_quota"
    # OpenAI's shape, Retry-After, no retry by the SDK (it made one request, above).
    refused = v1(asgi_server, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert_names_the_budget(error["message"], f"API key 'budgeted' (ao_{api_key.prefix}_…)")
    assert_retry_after_midnight(refused)
    assert refused.headers["x-should-retry"] == "false"
    # Nothing the request says gets around it: another end user, a workspace, a stream.
    forged = [
        v1(asgi_server, key, user="someone-else"),
        v1(asgi_server, key, headers={"X-Orchestra-User": "nobody"}),
        v1(asgi_server, key, workspace=12345, api_key=1),
        v1(asgi_server, key, stream=True),
    ]
    assert [answer.status_code for answer in forged] == [429] * 4
    assert {answer.json()["error"]["code"] for answer in forged} == {"insufficient_quota"}
    # Another key goes on; refused calls made no upstream request and left no record.
    assert v1(asgi_server, operator_key).status_code == 200
    assert upstream_a.stats()["requests"] == sent + 1
    recorded_calls(3)
    time.sleep(1.0)  # a record of a refused call would have been shipped by now
    recorded_calls(3)
    assert LlmCall.objects.filter(api_key_id=api_key.pk).count() == 2
    assert "budget: refused a call on openai" in asgi_server.output()


def test_the_query_api_and_sse_refuse_past_a_budget_in_the_platforms_shape(
    priced, asgi_server, upstream_a, recorded_calls
):
    clear_of_midnight()
    api_key, key = budgeted_key()
    servers_see_the_budgets()
    body = {"prompt": "say hello please", "model": "chat"}
    query = f"{asgi_server.url}/api/v1/query"
    answers = [httpx.post(query, json=body, headers=bearer(key), timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429], answers[-1].text
    error = answers[-1].json()["error"]
    assert error["code"] == "insufficient_quota"
    assert_names_the_budget(error["message"], "API key 'budgeted'")
    assert_retry_after_midnight(answers[-1])
    sse = httpx.post(
        f"{asgi_server.url}/api/streaming/chat",
        json={"messages": HELLO, "model": "chat"},
        headers={**bearer(key), "X-Orchestra-User": "forged"},
        timeout=30,
    )
    assert sse.status_code == 429 and sse.json()["error"]["code"] == "insufficient_quota"
    assert_names_the_budget(sse.json()["error"]["message"], "API key 'budgeted'")
    assert_retry_after_midnight(sse)
    assert upstream_a.stats()["requests"] == 2
    recorded_calls(2)
    time.sleep(1.0)  # a record of a refused call would have been shipped by now
    recorded_calls(2)
    assert LlmCall.objects.filter(api_key_id=api_key.pk).count() == 2


def test_a_workspace_budget_holds_whatever_workspace_the_request_names(
    priced, asgi_server, upstream_a, recorded_calls
):
    clear_of_midnight()
    _, key = budgeted_key("0.005", scope=BudgetScope.WORKSPACE)  # one call spends it
    servers_see_the_budgets()
    assert v1(asgi_server, key).status_code == 200
    refused = v1(asgi_server, key, workspace=0, headers={"X-Orchestra-Workspace": "0"})
    assert refused.status_code == 429
    assert_names_the_budget(refused.json()["error"]["message"], "workspace 'team'")
    assert upstream_a.stats()["requests"] == 1
