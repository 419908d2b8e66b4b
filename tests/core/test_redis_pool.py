"""A burst of requests larger than a process's Redis pool queues for a connection: it is not
told that Redis does not answer (which would route with the process's own state for a while)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.processes import AsgiServer
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)

BURST = 40


async def burst(url: str, key: str) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "chat", "messages": [{"role": "user", "content": f"{i}"}]},
                    headers={"Authorization": f"Bearer {key}"},
                )
                for i in range(BURST)
            )
        )
    return [reply.status_code for reply in replies]


def test_a_burst_larger_than_the_redis_pool_queues_for_it(two_providers, server_env, operator_key):
    routing(strategy="round-robin")  # one shared cursor, so one Redis command, per request
    env = {**server_env, "REDIS_MAX_CONNECTIONS": "3"}
    server = AsgiServer(env, name="daphne-small-redis-pool").start()
    try:
        statuses = asyncio.run(burst(server.url, operator_key))
    finally:
        server.stop()
    assert statuses == [200] * BURST
    assert "Redis does not answer" not in server.output()
