"""Connecting to ``/ws/``: who gets in, and how a refusal looks."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apps.accounts.models import Role
from tests.support.factories import api_key_issue

pytestmark = pytest.mark.django_db(transaction=True)

issue_key = database_sync_to_async(api_key_issue)


async def receive_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))


async def test_bearer_header_key_gets_pong(ws_server):
    key = await issue_key(role=Role.VIEWER)
    async with websockets.connect(
        ws_server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "p1"}))
        assert await receive_json(ws) == {"type": "pong", "id": "p1"}


async def test_key_as_subprotocol_for_browsers(ws_server):
    key = await issue_key(role=Role.VIEWER)
    async with websockets.connect(ws_server.ws_url, subprotocols=["bearer", key]) as ws:
        assert ws.subprotocol == "bearer"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await receive_json(ws))["type"] == "pong"


async def test_key_in_a_first_auth_message(asgi_server):
    key = await issue_key(role=Role.VIEWER)
    async with websockets.connect(asgi_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": key}))
        assert (await receive_json(ws))["type"] == "authenticated"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await receive_json(ws))["type"] == "pong"


async def test_unauthenticated_message_closes_with_4401(ws_server):
    async with websockets.connect(ws_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        error = await receive_json(ws)
        assert error["type"] == "error" and error["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(ws)
    assert closed.value.rcvd.code == 4401


async def test_wrong_key_closes_with_4401(asgi_server):
    async with websockets.connect(
        asgi_server.ws_url, additional_headers={"Authorization": "Bearer ao_deadbeef_nope"}
    ) as ws:
        assert (await receive_json(ws))["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(ws)
    assert closed.value.rcvd.code == 4401


async def test_foreign_browser_origin_is_rejected(asgi_server):
    key = await issue_key(role=Role.VIEWER)
    with pytest.raises(InvalidStatus) as rejected:
        async with websockets.connect(
            asgi_server.ws_url, origin="https://evil.example", subprotocols=["bearer", key]
        ):
            pass
    assert rejected.value.response.status_code == 403


async def test_malformed_message_gets_an_error_and_the_connection_stays_open(asgi_server):
    key = await issue_key(role=Role.VIEWER)
    async with websockets.connect(
        asgi_server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        for bad, code in [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_message"),
            ('{"type": "dance"}', "unknown_type"),
        ]:
            await ws.send(bad)
            assert (await receive_json(ws))["code"] == code
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        assert await receive_json(ws) == {"type": "pong", "id": 7}


async def test_an_idle_connection_stays_usable(asgi_server):
    """Longer than the channel layer's blocking pop and redis-py's default socket timeout."""
    key = await issue_key(role=Role.VIEWER)
    async with websockets.connect(
        asgi_server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        await asyncio.sleep(7)
        await ws.send(json.dumps({"type": "ping", "id": "later"}))
        assert await receive_json(ws) == {"type": "pong", "id": "later"}
