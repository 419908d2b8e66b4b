"""Every request leaves exactly one call record, even under a burst."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from django.utils import timezone

from apps.providers.models import CallStatus, LlmCall
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

BURST = 300


async def burst(base_url: str, key: str, requests: int) -> list[str]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    limit = asyncio.Semaphore(100)

    async def one(i: int) -> str:
        async with limit:
            answer = await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"request {i}"}]
            )
            return answer.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await client.close()


def test_a_burst_leaves_one_record_per_request(
    two_providers, asgi_server, operator_key, recorded_calls, upstream_a, upstream_b
):
    answers = asyncio.run(burst(f"{asgi_server.url}/v1", operator_key, BURST))
    assert len(answers) == BURST and all(a.startswith("Hello from") for a in answers)
    calls = recorded_calls(BURST, timeout=30)
    assert len(calls) == BURST
    assert len({call.id for call in calls}) == BURST
    assert all(call.status == CallStatus.SUCCESS for call in calls)
    assert upstream_a.stats()["requests"] + upstream_b.stats()["requests"] == BURST


def test_a_worker_stores_the_records_it_is_asked_to(
    two_providers, server_env, celery_worker, operator_key
):
    """Outside tests, a process that ships records asks a worker to store them: nothing here
    stores them itself."""
    env = {**server_env, "CALL_RECORDS_STORE_ON_SHIP": "true"}
    server = AsgiServer(env, name="daphne-ships").start()
    started = timezone.now()
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=operator_key, max_retries=0)
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        stored = LlmCall.objects.filter(created_at__gte=started, status=CallStatus.SUCCESS)
        deadline = time.monotonic() + 15
        while not stored.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    assert stored.count() == 1
