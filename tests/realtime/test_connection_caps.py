"""Caps on open ``/ws/`` connections per key and per client address, held across web processes
(two real daphnes sharing Redis): one more is refused with 4429 and a reason, another key is
not, closing one lets a new one in, and a written ``X-Forwarded-For`` counts for nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from apps.accounts.models import Role
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer

from .test_llm_over_websocket import receive

pytestmark = pytest.mark.django_db(transaction=True)

PER_KEY = 2
PER_ADDRESS = 6  # room for a refused connection or two on their way out
issue_key = database_sync_to_async(api_key_issue)


@pytest.fixture(scope="module")
def capped_servers(server_env) -> Iterator[tuple[AsgiServer, AsgiServer]]:
    env = {
        **server_env,
        "WEBSOCKET_MAX_PER_KEY": str(PER_KEY),
        "WEBSOCKET_MAX_PER_ADDRESS": str(PER_ADDRESS),
    }
    with contextlib.ExitStack() as stack:
        servers = [AsgiServer(env, name=f"daphne-capped-{n}").start() for n in (1, 2)]
        for server in servers:
            stack.callback(server.stop)
        yield servers[0], servers[1]


async def open_socket(server: AsgiServer, key: str | None = None, forwarded: str | None = None):
    headers = {
        **({"Authorization": f"Bearer {key}"} if key else {}),
        **({"X-Forwarded-For": forwarded} if forwarded else {}),
    }
    return await websockets.connect(server.ws_url, additional_headers=headers)


async def assert_open(ws) -> None:
    await ws.send(json.dumps({"type": "ping", "id": "here"}))
    assert await receive(ws) == {"type": "pong", "id": "here"}


async def admitted(server: AsgiServer, key: str, forwarded: str | None = None, within: float = 3.0):
    """A connection of ``key`` once the server has let a closed one go (it hears of the close
    just after the client): refused until then, admitted within ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ws = await open_socket(server, key, forwarded)
        await ws.send(json.dumps({"type": "ping", "id": "here"}))
        answer = await receive(ws)
        if answer["type"] == "pong":
            return ws
        assert answer["code"] == "too_many_connections", answer
        await ws.close()
        assert asyncio.get_running_loop().time() < deadline, "the closed place was not freed"
        await asyncio.sleep(0.1)


async def assert_refused(ws, what: str, limit: int) -> None:
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == "too_many_connections"
    assert f"for this {what} (at most {limit})" in error["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4429
    assert closed.value.rcvd.reason == error["message"]


async def test_one_more_connection_of_a_key_is_refused_on_any_process(capped_servers):
    first, second = capped_servers
    key = await issue_key(role=Role.VIEWER)
    other_key = await issue_key(role=Role.VIEWER)
    async with contextlib.AsyncExitStack() as stack:
        held = [await admitted(first, key), await admitted(second, key)]
        for ws in held:
            stack.push_async_callback(ws.close)

        # The count is shared: the third is refused on either process.
        await assert_refused(await open_socket(first, key), "key", PER_KEY)
        await assert_refused(await open_socket(second, key), "key", PER_KEY)
        # Another key has places of its own.
        other = await admitted(first, other_key)
        stack.push_async_callback(other.close)

        # Closing one frees its place at once.
        await held[0].close()
        again = await admitted(first, key)
        stack.push_async_callback(again.close)


async def test_a_key_sent_in_an_auth_message_counts_too(capped_servers):
    first, _ = capped_servers
    key = await issue_key(role=Role.VIEWER)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(PER_KEY):
            ws = await admitted(first, key)
            stack.push_async_callback(ws.close)
        late = await open_socket(first)
        await late.send(json.dumps({"type": "auth", "token": key}))
        await assert_refused(late, "key", PER_KEY)


async def test_a_written_x_forwarded_for_does_not_get_around_the_address_cap(capped_servers):
    first, second = capped_servers
    keys = [await issue_key(role=Role.VIEWER) for _ in range(PER_ADDRESS + 1)]
    async with contextlib.AsyncExitStack() as stack:
        for n, key in enumerate(keys[:PER_ADDRESS]):
            ws = await admitted((first, second)[n % 2], key, forwarded=f"10.0.0.{n}")
            stack.push_async_callback(ws.close)

        # 127.0.0.1 is no trusted proxy: whatever the header says, every one is 127.0.0.1.
        for forwarded in ("10.9.9.9", "203.0.113.7, 127.0.0.1", None):
            refused = await open_socket(first, keys[-1], forwarded=forwarded)
            await assert_refused(refused, "address", PER_ADDRESS)
        # Unauthenticated connections count for their address as well: refused before auth.
        await assert_refused(await open_socket(second), "address", PER_ADDRESS)


async def test_refused_connections_hold_no_place(capped_servers):
    first, _ = capped_servers
    key = await issue_key(role=Role.VIEWER)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(PER_KEY):
            ws = await admitted(first, key)
            stack.push_async_callback(ws.close)
        for _ in range(3):
            await assert_refused(await open_socket(first, key), "key", PER_KEY)
    # All closed: the key and the address have their places back.
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(PER_KEY):
            ws = await admitted(first, key)
            stack.push_async_callback(ws.close)
