"""A query's task message, pushed from the consumer's event loop (``apps/realtime/broker.py``),
is the one Celery's ``apply_async`` pushes: the same envelope, headers and body, but for what
differs between any two messages (ids, the expiry's instant, the sending thread) and the
arguments' repr (the prompt stays out of the headers)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import override_settings

from apps.realtime.broker import broker_redis_url, llm_ask_send
from apps.realtime.tasks import llm_ask

HELLO = {"role": "user", "content": "hello"}
ARGS = (
    "specific.abc!def",
    {"id": "q1", "stream": False, "payload": {"model": "chat", "messages": [HELLO]}},
    {"user_id": 1, "api_key_id": 2, "workspace_id": None},
    "request-1",
)
ONE_OF_A_KIND = {
    "id", "root_id", "correlation_id", "delivery_tag", "reply_to", "expires", "argsrepr",
}  # fmt: skip


def comparable(raw: bytes) -> tuple[dict, list, datetime, str]:
    """(the message without its one-of-a-kind values, its decoded body, its expiry, its
    arguments' repr)."""
    message = json.loads(raw)
    body = json.loads(base64.b64decode(message.pop("body")))
    expires = datetime.fromisoformat(message["headers"]["expires"])
    argsrepr = message["headers"]["argsrepr"]
    for part in (message["headers"], message["properties"]):
        for name in ONE_OF_A_KIND & part.keys():
            del part[name]
    return message, body, expires, argsrepr


async def test_the_message_is_the_one_apply_async_pushes():
    queue = f"test-broker-{uuid.uuid4().hex}"
    url = broker_redis_url()
    assert url is not None, "the tests' broker is Redis"
    client = redis.Redis.from_url(url)
    try:
        # On a connection of its own: an earlier test's broker may linger in Celery's pool.
        with llm_ask.app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
            await sync_to_async(llm_ask.apply_async, thread_sensitive=False)(
                args=ARGS, queue=queue, expires=30, connection=connection
            )
        task_id = await llm_ask_send(ARGS, argsrepr="(a query)", queue=queue, expires=30)
        theirs, ours = (comparable(raw) for raw in client.rpop(queue, 2) or [])
    finally:
        client.delete(queue)

    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1] and ours[1][:2] == [list(ARGS), {}]
    assert abs((ours[2] - theirs[2]).total_seconds()) < 5
    assert ours[3] == "(a query)" and "hello" not in ours[3]
    assert task_id == str(uuid.UUID(task_id))


def test_a_broker_other_than_redis_or_with_a_key_prefix_gets_apply_async():
    cases = {
        ("redis+socket:///run/r.sock?virtual_host=3", None): "unix:///run/r.sock?db=3",
        ("redis://h:6379/2", None): "redis://h:6379/2",
        ("amqp://guest@h//", None): None,
        ("redis://h:6379/2", "orchestra:"): None,
    }
    for (url, prefix), expected in cases.items():
        options = {"global_keyprefix": prefix} if prefix else {}
        with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS=options):
            assert broker_redis_url() == expected, url
