"""What clients should not send over ``/ws/``: deeply nested JSON, messages too large for the
protocol or for the server itself. Real daphne (and uvicorn), real ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from apps.accounts.models import Role
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

issue_key = database_sync_to_async(api_key_issue)
DEEP_UNDER_64_KIB = "[" * 60_000  # parses into RecursionError; small enough for the protocol
DEEP = "[" * 100_000  # the issue's body: over the protocol's 64 KiB as well
MiB = 1024 * 1024


def connect(server: AsgiServer, key: str | None = None, **options):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return websockets.connect(server.ws_url, additional_headers=headers, **options)


async def receive(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_still_open(ws) -> None:
    await ws.send(json.dumps({"type": "ping", "id": "still-there"}))
    assert await receive(ws) == {"type": "pong", "id": "still-there"}


async def test_deeply_nested_json_is_invalid_json_and_the_connection_stays_open(asgi_server):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        await ws.send(DEEP_UNDER_64_KIB)
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == "invalid_json"
        await ws.send(DEEP)
        assert (await receive(ws))["code"] == "message_too_large"
        await ws.send(DEEP_UNDER_64_KIB.encode())  # a binary frame is read the same way
        assert (await receive(ws))["code"] == "invalid_json"
        await assert_still_open(ws)


async def test_deeply_nested_json_before_authenticating_is_invalid_json(asgi_server):
    async with connect(asgi_server) as ws:
        await ws.send(DEEP_UNDER_64_KIB)
        assert (await receive(ws))["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "auth", "token": await issue_key(role=Role.VIEWER)}))
        assert (await receive(ws))["type"] == "authenticated"
        await assert_still_open(ws)


@pytest.fixture(scope="module")
def own_server(server_env) -> Iterator[AsgiServer]:
    """A daphne of this module's own, so no other test's connections move its gauge."""
    server = AsgiServer(server_env, name="daphne-gauge").start()
    yield server
    server.stop()


def open_connections(server: AsgiServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(r"^ai_orchestra_websocket_connections(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert found, "the gauge is exported"
    return float(found.group(1))


async def wait_for_gauge(server: AsgiServer, value: float, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (now := await asyncio.to_thread(open_connections, server)) != value:
        assert asyncio.get_running_loop().time() < deadline, f"gauge stuck at {now}"
        await asyncio.sleep(0.2)


async def test_the_connection_gauge_comes_back_down_whatever_ends_the_connection(own_server):
    before = await asyncio.to_thread(open_connections, own_server)
    key = await issue_key(role=Role.OPERATOR)
    for _ in range(3):  # bad input (it crashed the consumer with 1011), then the client closes
        async with connect(own_server, key) as ws:
            with contextlib.suppress(ConnectionClosed):
                for bad in (DEEP_UNDER_64_KIB, DEEP, "not json", '{"type": "dance"}'):
                    await ws.send(bad)
                    await receive(ws)
    for wrong in ("ao_deadbeef_nope", None):  # the server closes: a wrong key, or no auth
        async with connect(own_server, wrong) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.send(DEEP_UNDER_64_KIB)
                await ws.send(json.dumps({"type": "ping"}))
                while True:
                    await receive(ws)
    async with connect(own_server, key, max_size=None) as ws:  # over the server's own cap
        with pytest.raises(ConnectionClosed):
            await ws.send("x" * (2 * MiB))
            await receive(ws)
    held = [await connect(own_server, key) for _ in range(3)]
    await wait_for_gauge(own_server, before + 3)
    for ws in held:
        await ws.close()
    await wait_for_gauge(own_server, before)


async def assert_closed_with_1009(server: AsgiServer, key: str, size: int) -> None:
    async with connect(server, key, max_size=None, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send("x" * size)
            await receive(ws, timeout=30)
    assert closed.value.rcvd is not None, "a close frame, not a dropped TCP connection"
    assert closed.value.rcvd.code == 1009 and closed.value.rcvd.reason


async def test_a_message_over_the_protocol_limit_is_answered_and_the_connection_stays_open(
    asgi_server,
):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(asgi_server, key) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 100_000}))
        assert (await receive(ws))["code"] == "message_too_large"
        await assert_still_open(ws)


async def test_a_message_over_daphnes_cap_is_closed_with_1009_and_a_reason(asgi_server):
    await assert_closed_with_1009(asgi_server, await issue_key(role=Role.OPERATOR), 2 * MiB)


@pytest.fixture(scope="module")
def uvicorn_server(server_env) -> Iterator[AsgiServer]:
    server = AsgiServer(server_env, name="uvicorn-limits", server="uvicorn").start()
    yield server
    server.stop()


async def test_under_uvicorn_the_same_limits_hold(uvicorn_server):
    key = await issue_key(role=Role.OPERATOR)
    async with connect(uvicorn_server, key) as ws:
        await ws.send(DEEP_UNDER_64_KIB)
        assert (await receive(ws))["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (2 * MiB)}))
        assert (await receive(ws))["code"] == "message_too_large"
        await assert_still_open(ws)
    await assert_closed_with_1009(uvicorn_server, key, 17 * MiB)  # uvicorn's --ws-max-size
