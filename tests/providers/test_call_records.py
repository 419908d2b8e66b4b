"""Call records under faults: malformed usage, records the database refuses, a backlog nobody
stores, a database that does not answer, a worker killed in the middle of a stream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import redis
import websockets
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from apps.accounts.models import Role
from apps.core.health import forget_results
from apps.providers.llm.recording.records import (
    CallRecord,
    call_records_backlog,
    call_records_store,
    call_records_sweep,
    records_key,
    ship_batch,
)
from apps.providers.models import CallRecordDeadLetter, CallStatus, LlmCall
from apps.providers.services import call_record_dead_letters_requeue
from apps.providers.tasks import store_call_records
from orchestra.celery import app as celery_app
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer, CeleryWorker

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "say hello please"}]


def call(**fields) -> dict:
    """A call record as the recorder ships it (the storing side fills in the defaults)."""
    return {
        "id": str(uuid.uuid4()),
        "created_at": timezone.now().isoformat(),
        "entry_point": "internal",
        "status": "success",
        **fields,
    }


async def stored(work, *args, **kwargs):
    """Database work from an async test, in a thread whose connection is closed after."""
    return await database_sync_to_async(work)(*args, **kwargs)


def health() -> dict:
    forget_results()
    return Client().get("/health").json()


@pytest.fixture
def no_records_waiting():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(records_key())
    yield client
    client.delete(records_key())


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": -5}, (None, 8, True)),
        ({"prompt_tokens": "12", "completion_tokens": "3"}, (12, 3, False)),
        ({"prompt_tokens": 3.7, "completion_tokens": 2.0}, (3, 2, False)),
        ({"prompt_tokens": 1e20, "completion_tokens": 1}, (2**31 - 1, 1, False)),
        ({"prompt_tokens": "many", "completion_tokens": None}, (None, None, True)),
        ({"prompt_tokens": True, "completion_tokens": [1]}, (None, None, True)),
    ],
)
def test_bad_usage_numbers_never_fail_the_call_or_lose_its_record(
    usage, expected, two_providers, asgi_server, operator_key, upstream_a, recorded_calls
):
    upstream_a.configure(usage=usage)
    response = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "chat", "messages": HELLO},
        headers={"Authorization": f"Bearer {operator_key}"},
    )
    assert response.status_code == 200
    (record,) = recorded_calls(1)
    input_tokens, output_tokens, estimated = expected
    assert record.status == CallStatus.SUCCESS and record.tokens_estimated is estimated
    if output_tokens is None:
        assert record.output_tokens > 0  # estimated from the answer
    else:
        assert record.output_tokens == output_tokens
    if input_tokens is None:
        assert record.input_tokens > 0  # estimated from the messages
    else:
        assert record.input_tokens == input_tokens
    assert Decimal(0) <= record.cost <= Decimal("999999.99999999")
    assert httpx.get(f"{asgi_server.url}/metrics").status_code == 200


def test_a_record_the_database_refuses_is_set_aside_and_the_others_are_stored(
    celery_worker, no_records_waiting
):
    good = [call() for _ in range(5)]
    bad = call(input_tokens=-5)
    ship_batch([CallRecord(c, []) for c in good[:3]] + [CallRecord(bad, [])])
    ship_batch([CallRecord(c, []) for c in good[3:]])
    store_call_records.delay()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not CallRecordDeadLetter.objects.exists():
        time.sleep(0.1)
    (letter,) = CallRecordDeadLetter.objects.all()
    assert str(letter.call_id) == bad["id"] and "input_tokens" in letter.payload
    stored = set(LlmCall.objects.values_list("id", flat=True))
    assert {uuid.UUID(c["id"]) for c in good} <= stored and uuid.UUID(bad["id"]) not in stored
    body = health()
    assert body["status"] == "degraded"
    assert body["checks"]["call_records"]["details"]["refused"] == 1
    assert "refused by the database" in body["checks"]["call_records"]["message"]
    # Queued again while still wrong, it is refused again; nothing else is written twice.
    assert call_record_dead_letters_requeue(letters=CallRecordDeadLetter.objects.all()) == 1
    assert call_records_store() == 0
    assert CallRecordDeadLetter.objects.count() == 1 and LlmCall.objects.count() == 5


def test_health_reports_a_backlog_nobody_stores(no_records_waiting):
    ship_batch([CallRecord(call(), [])])
    no_records_waiting.lset(
        records_key(), 0, b"%.3f\n" % (time.time() - 120) + b'[[{"id": "x"}, []]]'
    )
    backlog = call_records_backlog()
    assert backlog.batches == 1 and backlog.oldest_seconds >= 119
    with override_settings(CALL_RECORDS_BACKLOG_MAX_SECONDS=60):
        body = health()
    assert body["status"] == "degraded" and body["capabilities"]["call_records"] == "queued"
    assert "is a Celery worker running" in body["checks"]["call_records"]["message"]


def test_a_database_that_does_not_answer_leaves_the_batches_waiting(server_env, no_records_waiting):
    ship_batch([CallRecord(call(), []) for _ in range(3)])
    env = {
        **server_env,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/unreachable",
        "DATABASE_POOL_TIMEOUT": "2",
    }
    worker = CeleryWorker(env, name="celery-no-db", queues="no-db").start()
    try:
        celery_app.send_task("providers.store_call_records", queue="no-db")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "store_call_records" not in worker.output():
            time.sleep(0.2)
        time.sleep(3)  # the worker's failed attempt has run its course
    finally:
        worker.stop()
    assert no_records_waiting.llen(records_key()) == 1
    assert call_records_store() == 3


@pytest.fixture
def doomed(server_env):
    """A daphne sending its WebSocket work to a queue served by one worker the test kills."""
    env = {**server_env, "WEBSOCKET_TASK_QUEUE": "doomed-records"}
    worker = CeleryWorker(env, name="celery-doomed-records", queues="doomed-records").start()
    server = AsgiServer(env, name="daphne-doomed-records").start()
    yield server, worker
    server.stop()
    worker.kill()


async def test_a_stream_on_a_killed_worker_leaves_a_failed_record(
    two_providers, doomed, upstream_a
):
    server, worker = doomed
    upstream_a.configure(chunk_delay_ms=100, tokens=100)
    key = await asyncio.to_thread(api_key_issue, role=Role.OPERATOR)
    started = timezone.now()
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(server.ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "stream", "id": "s", "messages": HELLO, "model": "chat"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "token":
            pass
        await asyncio.sleep(1.5)  # the recorder ships every half second
        worker.kill()
    await asyncio.to_thread(call_records_store)
    record = await stored(LlmCall.objects.filter(created_at__gte=started).get)
    assert record.status == CallStatus.RUNNING and record.stream
    assert await stored(call_records_sweep, older_than=timedelta(0)) == 1
    await stored(record.refresh_from_db)
    assert record.status == CallStatus.ERROR and record.error_code == "interrupted"
    assert record.provider_name == "a"


async def test_a_finished_stream_replaces_its_running_record(
    two_providers, asgi_server, operator_key, recorded_calls
):
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{asgi_server.url}/v1/chat/completions",
            json={"model": "chat", "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {operator_key}"},
        )
    assert response.status_code == 200 and "[DONE]" in response.text
    (record,) = await stored(recorded_calls, 1)
    await stored(call_records_store)  # a running record shipped after the final one changes nothing
    await stored(record.refresh_from_db)
    assert record.status == CallStatus.SUCCESS and record.output_tokens == 8
    assert await stored(call_records_sweep, older_than=timedelta(0)) == 0


def test_a_running_record_is_not_shipped_with_its_final_one(no_records_waiting):
    running = call(status="running", stream=True)
    other = call(status="running", stream=True)
    ship_batch(
        [
            CallRecord(running, [], final=False),
            CallRecord(other, [], final=False),
            CallRecord({**running, "status": "success"}, []),
        ]
    )
    assert call_records_store() == 2  # the other stream's start, and the first one's end
    assert dict(LlmCall.objects.values_list("id", "status")) == {
        uuid.UUID(running["id"]): "success",
        uuid.UUID(other["id"]): "running",
    }


def test_one_store_with_a_running_record_and_its_final_twice_stores_the_final_once(
    no_records_waiting,
):
    running = call(status="running", stream=True)
    final = {
        **running, "status": "success", "input_tokens": 12, "output_tokens": 7,
        "cost": "0.00012345", "latency_ms": 81.5, "time_to_first_token_ms": 9.25,
        "error_message": "tab\there, newline\nthere, back\\slash", "attempt_count": 1,
    }  # fmt: skip
    attempt = {
        "number": 1, "provider_name": "a", "model_name": "m", "status": "success",
        "latency_ms": 80.0, "started_at": running["created_at"],
    }  # fmt: skip
    ship_batch([CallRecord(running, [], final=False)])  # three processes' flushes, one store
    ship_batch([CallRecord(final, [attempt]), CallRecord(final, [attempt])])
    ship_batch([CallRecord(running, [], final=False)])
    assert call_records_store() == 4
    record = LlmCall.objects.get()
    assert (record.status, record.input_tokens, record.output_tokens) == ("success", 12, 7)
    assert record.cost == Decimal("0.00012345") and record.time_to_first_token_ms == 9.25
    assert record.error_message == final["error_message"] and record.stream is True
    assert record.created_at.isoformat() == running["created_at"]
    (stored_attempt,) = record.attempts.all()
    assert (stored_attempt.number, stored_attempt.latency_ms) == (1, 80.0)
