"""An open ``/ws/`` connection does not outlive its credentials: real daphne, Celery and
database. A key revoked (or a user deactivated) is closed with 4401, at the next query or
within a few seconds when idle; a user demoted to viewer is refused queries, leaves the channels
only operators may hear, and stays."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from websockets.exceptions import ConnectionClosed

from apps.accounts.models import ApiKey, Role
from apps.accounts.services import api_key_revoke, user_set_role
from tests.support.factories import api_key_issue, bearer, user_create
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

CACHE_SECONDS = 2.0
HELLO = [{"role": "user", "content": "hello there"}]
issue_key = database_sync_to_async(api_key_issue)


@pytest.fixture(scope="module")
def quick_server(server_env) -> Iterator[AsgiServer]:
    """A daphne trusting what it looked up for 2 s, so changes made elsewhere show quickly."""
    env = {**server_env, "API_KEY_CACHE_SECONDS": str(CACHE_SECONDS)}
    server = AsgiServer(env, name="daphne-revocation").start()
    yield server
    server.stop()


def connect(server: AsgiServer, key: str):
    return websockets.connect(server.ws_url, additional_headers=bearer(key))


async def receive(ws, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def ask(ws, ask_id: str) -> dict:
    """Send a query; its answer (response or error), skipping anything else."""
    await ws.send(json.dumps({"type": "query", "id": ask_id, "messages": HELLO, "model": "chat"}))
    while True:
        message = await receive(ws)
        if message["type"] in {"response", "error"}:
            return message


async def closed_with(ws, timeout: float) -> tuple[int, list[dict]]:
    """Read until the server closes: (close code, what came before)."""
    seen = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            seen.append(await receive(ws, timeout))
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, seen


async def post(server: AsgiServer, path: str, key: str, **body) -> httpx.Response:
    return await asyncio.to_thread(
        httpx.post, f"{server.url}{path}", json=body or None, headers=bearer(key)
    )


def key_id(raw_key: str) -> int:
    return ApiKey.objects.get(prefix=raw_key.split("_")[1]).pk


def revoke(raw_key: str) -> None:
    api_key_revoke(api_key=ApiKey.objects.get(pk=key_id(raw_key)))


async def test_revoking_the_key_closes_the_connection_at_the_next_query(
    two_providers, asgi_server, celery_worker
):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        assert (await ask(ws, "before"))["type"] == "response"
        pk = await database_sync_to_async(key_id)(key)
        revoked = await post(asgi_server, f"/api/v1/api-keys/{pk}/revoke", key)
        assert revoked.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            answer = await ask(ws, "after")
            assert answer["code"] == "unauthorized", answer
            await receive(ws)
    assert closed.value.rcvd.code == 4401


async def test_a_key_revoked_elsewhere_closes_an_idle_subscribed_connection_within_seconds(
    quick_server,
):
    key = await issue_key(role=Role.VIEWER)
    async with connect(quick_server, key) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "alerts"}))
        assert (await receive(ws))["type"] == "subscribed"
        await asyncio.sleep(CACHE_SECONDS)  # the server has looked the key up meanwhile
        await database_sync_to_async(revoke)(key)  # in another process than the server
        revoked_at = time.monotonic()
        code, before = await closed_with(ws, timeout=3 * CACHE_SECONDS)
    assert code == 4401 and before[-1]["code"] == "unauthorized"
    assert time.monotonic() - revoked_at < 2 * CACHE_SECONDS + 1


async def test_demoted_to_viewer_queries_are_forbidden_and_the_connection_stays_open(
    two_providers, asgi_server, celery_worker
):
    user = await database_sync_to_async(user_create)(role=Role.OPERATOR)
    key = await issue_key(user=user)
    admin_key = await issue_key(role=Role.ADMIN)
    async with connect(asgi_server, key) as ws:
        assert (await ask(ws, "as-operator"))["type"] == "response"
        demoted = await post(asgi_server, f"/api/v1/users/{user.pk}/role", admin_key, role="viewer")
        assert demoted.status_code == 200
        answer = await ask(ws, "as-viewer")
        assert answer["type"] == "error" and answer["code"] == "forbidden"
        await ws.send(json.dumps({"type": "ping", "id": "still"}))
        assert await receive(ws) == {"type": "pong", "id": "still"}
        await ws.send(json.dumps({"type": "subscribe", "channel": "alerts"}))
        assert (await receive(ws))["type"] == "subscribed"


async def test_demoted_elsewhere_queries_are_forbidden_within_the_cache_period(quick_server):
    user = await database_sync_to_async(user_create)(role=Role.OPERATOR)
    key = await issue_key(user=user)
    async with connect(quick_server, key) as ws:
        await database_sync_to_async(user_set_role)(user=user, role=Role.VIEWER)
        await asyncio.sleep(2 * CACHE_SECONDS + 0.5)
        answer = await ask(ws, "later")
        assert answer["type"] == "error" and answer["code"] == "forbidden"
        await ws.send(json.dumps({"type": "ping", "id": "still"}))
        assert await receive(ws) == {"type": "pong", "id": "still"}


async def test_demoted_elsewhere_leaves_the_logs_channel_within_the_cache_period(quick_server):
    user = await database_sync_to_async(user_create)(role=Role.OPERATOR)
    key = await issue_key(user=user)
    async with connect(quick_server, key) as ws:
        for channel in ("logs", "alerts"):
            await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
            assert await receive(ws) == {"type": "subscribed", "channel": channel}
        await database_sync_to_async(user_set_role)(user=user, role=Role.VIEWER)
        demoted_at = time.monotonic()
        left = await receive(ws, timeout=3 * CACHE_SECONDS)
        while left["type"] == "event":  # what the logs channel said before the check
            left = await receive(ws, timeout=3 * CACHE_SECONDS)
        assert left == {
            "type": "unsubscribed",
            "channel": "logs",
            "reason": "Your role may no longer subscribe to logs.",
        }
        assert time.monotonic() - demoted_at < 2 * CACHE_SECONDS + 1
        await ws.send(json.dumps({"type": "subscribe", "channel": "logs"}))
        refused = await receive(ws)
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        await ws.send(json.dumps({"type": "unsubscribe", "channel": "alerts"}))
        assert await receive(ws) == {"type": "unsubscribed", "channel": "alerts"}  # kept until now


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_a_deactivated_user_with_a_session_is_closed_with_4401(quick_server):
    user = await database_sync_to_async(user_create)(role=Role.OPERATOR)
    cookie = await database_sync_to_async(session_cookie)(user)
    async with websockets.connect(quick_server.ws_url, additional_headers={"Cookie": cookie}) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "in"}))
        assert await receive(ws) == {"type": "pong", "id": "in"}
        await database_sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
        code, _ = await closed_with(ws, timeout=3 * CACHE_SECONDS)
    assert code == 4401
