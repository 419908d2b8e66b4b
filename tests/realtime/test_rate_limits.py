"""A key's rate limits over ``/ws/``: a query past them is answered ``rate_limited`` (with how
long to wait) before it reaches a worker, and the connection stays open."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from apps.accounts.services import api_key_create
from apps.providers.models import LlmCall
from tests.support.factories import user_create

from .test_llm_over_websocket import HELLO, connect, until

pytestmark = pytest.mark.django_db(transaction=True)


def limited_key(rpm_limit: int | None = None, tpm_limit: int | None = None) -> tuple[int, str]:
    api_key, raw = api_key_create(
        user=user_create(role=Role.OPERATOR), name="ws", rpm_limit=rpm_limit, tpm_limit=tpm_limit
    )
    return api_key.pk, raw


async def clear_of_the_minute_end(margin: float = 10) -> None:
    left = 60 - time.time() % 60
    if left < margin:
        await asyncio.sleep(left + 0.1)


def ask(kind: str, ask_id: str) -> str:
    return json.dumps({"type": kind, "id": ask_id, "messages": HELLO, "model": "chat"})


async def test_a_query_past_a_keys_rpm_is_refused_and_the_connection_stays_open(
    two_providers, asgi_server, celery_worker
):
    await clear_of_the_minute_end()
    key_id, key = await database_sync_to_async(limited_key)(rpm_limit=2)
    async with connect(asgi_server, key) as ws:
        for kind, ask_id in (("query", "q1"), ("stream", "s1")):
            await ws.send(ask(kind, ask_id))
            _, answer = await until(ws, {"response", "done", "error"}, ask_id)
            assert answer["type"] in {"response", "done"}, answer
        await ws.send(ask("query", "q2"))
        _, refused = await until(ws, {"response", "error"}, "q2")
        assert refused["code"] == "rate_limited" and "2 requests per minute" in refused["message"]
        assert 1 <= refused["retry_after"] <= 60
        await ws.send(json.dumps({"type": "ping", "id": "still-there"}))
        _, pong = await until(ws, {"pong"})
        assert pong["id"] == "still-there"
    await asyncio.sleep(1.5)  # records ship every half second: a third would be there by now
    count = await database_sync_to_async(LlmCall.objects.filter(api_key_id=key_id).count)()
    assert count <= 2
    assert f"refused a request on WebSocket with API key {key_id}" in asgi_server.output()


async def test_a_tpm_limit_counts_the_tokens_workers_report(
    two_providers, asgi_server, celery_worker
):
    await clear_of_the_minute_end()
    _, key = await database_sync_to_async(limited_key)(tpm_limit=15)  # a call uses 10
    async with connect(asgi_server, key) as ws:
        await ws.send(ask("query", "q1"))
        _, first = await until(ws, {"response", "error"}, "q1")
        assert first["type"] == "response" and first["usage"]["total_tokens"] == 10
        await ws.send(ask("stream", "s1"))
        _, second = await until(ws, {"done", "error"}, "s1")
        assert second["type"] == "done", "5 tokens were left"
        await ws.send(ask("query", "q2"))
        _, refused = await until(ws, {"response", "error"}, "q2")
        assert refused["code"] == "rate_limited" and "tokens per minute" in refused["message"]
