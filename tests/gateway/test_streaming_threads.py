"""The SSE API's requests start no thread of their own (``apps.gateway.asgi.DjangoHandler``):
starting and joining one per request was over a third of a stream's CPU. Other Django paths,
whose views may be sync, still run each request's sync steps in a thread of its own. Requests go
through the real ASGI application in this process, on an event loop of their own (as a server's),
against the fake upstream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from orchestra.asgi import application
from tests.support.factories import bearer

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]
REQUESTS = 3


@contextmanager
def executor_threads_started() -> Iterator[list[str]]:
    """The names of the executor threads started while the block runs (asgiref's per-request
    executors are ``ThreadPoolExecutor``s of one thread)."""
    started: list[str] = []
    original = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        if self.name.startswith("ThreadPoolExecutor"):
            started.append(self.name)
        original(self)

    threading.Thread.start = counting  # type: ignore[method-assign]
    try:
        yield started
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]


async def requests(key: str) -> tuple[list[str], list[str]]:
    transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=bearer(key), timeout=30
    ) as client:

        async def sse() -> None:
            body = {"messages": HELLO, "model": "chat"}
            response = await client.post("/api/streaming/chat", json=body)
            assert response.status_code == 200 and "event: done" in response.text

        async def rest() -> None:
            assert (await client.get("/api/v1/me")).status_code == 200

        await sse()  # the first: the shared sync thread, the pools and the recorder start
        await rest()
        with executor_threads_started() as for_sse:
            for _ in range(REQUESTS):
                await sse()
        with executor_threads_started() as for_rest:
            for _ in range(REQUESTS):
                await rest()
    return for_sse, for_rest


def test_sse_requests_start_no_thread_and_sync_views_still_get_their_own(
    two_providers, operator_key
):
    for_sse, for_rest = asyncio.run(requests(operator_key))
    assert for_sse == []
    assert len(for_rest) >= REQUESTS
