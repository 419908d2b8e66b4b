"""A key's budget over ``/ws/``: once its calls have cost its $0.01 a day, a query or stream is
answered with the protocol's error message, ``insufficient_quota``, naming the budget and when
it resets (``retry_after``), without an upstream request; the connection stays open."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.models import BudgetPeriod, BudgetScope, Role
from apps.accounts.services import api_key_create, budget_create
from tests.support.factories import user_create
from tests.support.providers import deploy, provider_for, routing

from .test_llm_over_websocket import HELLO, connect, until

pytestmark = pytest.mark.django_db(transaction=True)


def budgeted_key(upstream) -> str:
    routing()
    deploy(
        provider_for(upstream),
        input_price_per_million=Decimal(500),
        output_price_per_million=Decimal(500),
    )  # a call costs $0.005
    api_key, raw = api_key_create(user=user_create(role=Role.OPERATOR), name="ws-budgeted")
    budget_create(
        scope=BudgetScope.API_KEY, api_key=api_key, period=BudgetPeriod.DAY, limit=Decimal("0.01")
    )
    return raw


def ask(kind: str, ask_id: str) -> str:
    return json.dumps({"type": kind, "id": ask_id, "messages": HELLO, "model": "chat",
                       "user": "forged-end-user"})  # fmt: skip


async def test_a_spent_budget_refuses_queries_and_streams_over_the_websocket(
    upstream_a, asgi_server, celery_worker
):
    if 86_400 - time.time() % 86_400 < 60:
        await asyncio.sleep(61)
    key = await database_sync_to_async(budgeted_key)(upstream_a)
    await asyncio.sleep(settings.API_KEY_CACHE_SECONDS + 0.5)  # every process sees the budget
    async with connect(asgi_server, key) as ws:
        for kind, ask_id in (("query", "q1"), ("stream", "s1")):
            await ws.send(ask(kind, ask_id))
            _, answer = await until(ws, {"response", "done", "error"}, ask_id)
            assert answer["type"] in {"response", "done"}, answer
        sent = upstream_a.stats()["requests"]
        for kind, ask_id in (("query", "q2"), ("stream", "s2")):
            await ws.send(ask(kind, ask_id))
            _, refused = await until(ws, {"response", "done", "error"}, ask_id)
            assert refused["type"] == "error", refused
            assert refused["code"] == "insufficient_quota"
            assert "the daily budget of API key 'ws-budgeted'" in refused["message"]
            assert "resets at" in refused["message"] and " 00:00 UTC" in refused["message"]
            assert abs(refused["retry_after"] - (86_400 - time.time() % 86_400)) < 30
        assert upstream_a.stats()["requests"] == sent
        await ws.send(json.dumps({"type": "ping", "id": "still-there"}))
        _, pong = await until(ws, {"pong"})
        assert pong["id"] == "still-there"
