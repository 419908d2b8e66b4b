"""Handing a ``query`` or ``stream`` to the workers from the consumer's event loop.

``llm_ask.apply_async`` is synchronous: run in a thread for each query, it cost a thread hop, a
producer from kombu's pool, a repr of the arguments (the prompt too) for the message's headers,
and a blocking ``LPUSH``, most of a millisecond before the message reached Redis and more on a
busy machine (bench/README.md). Here Celery still makes the message
(``app.amqp.create_task_message``) and sends its publish signals, through which tracing puts
the trace in its headers; the envelope kombu's Redis transport wraps it in is made here, and
the message is pushed with one ``LPUSH`` through the loop's asyncio client. What the worker
reads is what ``apply_async`` would have pushed (tests/realtime/test_broker.py compares them).
A broker other than Redis, or one with a key prefix, or Celery's ``task-sent`` events turned on,
gets ``apply_async`` in a thread.
"""

from __future__ import annotations

import base64
import uuid
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from asgiref.sync import sync_to_async
from celery import signals
from django.conf import settings
from kombu.serialization import dumps
from kombu.utils.json import dumps as json_dumps

from apps.core.redis import async_redis

from .tasks import llm_ask

PERSISTENT = 2  # kombu's delivery mode for a durable exchange, Celery's default


def broker_redis_url() -> str | None:
    """The broker's Redis as redis-py names it, or None when the broker is not one this module
    can push to (then ``apply_async`` sends)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    if options.get("global_keyprefix") or llm_ask.app.conf.task_send_sent_event:
        return None
    return _redis_url(settings.CELERY_BROKER_URL)


@cache
def _redis_url(url: str) -> str | None:
    if url.startswith(("redis://", "rediss://")):
        return url
    if url.startswith("redis+socket://"):  # kombu names the database virtual_host
        path, _, query = url.removeprefix("redis+socket://").partition("?")
        params = [("db" if k == "virtual_host" else k, v) for k, v in parse_qsl(query)]
        return "unix://" + path + (f"?{urlencode(params)}" if params else "")
    return None


async def llm_ask_send(args: tuple[Any, ...], *, argsrepr: str, queue: str, expires: float) -> str:
    """Send ``llm_ask(*args)`` to ``queue``, to be dropped by the worker once ``expires``
    seconds have passed; returns the task's id. ``argsrepr`` stands for the arguments in the
    message's headers (what Celery logs and monitors show)."""
    url = broker_redis_url()
    if url is None:
        result = await sync_to_async(llm_ask.apply_async, thread_sensitive=False)(
            args=args, queue=queue, expires=expires, argsrepr=argsrepr
        )
        return result.id
    app = llm_ask.app
    task_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.create_task_message(
        task_id,
        llm_ask.name,
        args,
        {},
        expires=expires,
        time_limit=llm_ask.time_limit,
        soft_time_limit=llm_ask.soft_time_limit,
        reply_to=app.thread_oid,
        ignore_result=True,
        argsrepr=argsrepr,
        kwargsrepr="{}",
    )
    signals.before_task_publish.send(
        sender=llm_ask.name,
        body=body,
        exchange="",
        routing_key=queue,
        declare=[],
        headers=headers,
        properties=properties,
        retry_policy={},
    )
    content_type, content_encoding, data = dumps(body, serializer=app.conf.task_serializer)
    encoded = data.encode(content_encoding) if isinstance(data, str) else data
    message = {
        "body": base64.b64encode(encoded).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": PERSISTENT,
            "expiration": str(int(expires * 1000)),
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    await async_redis(url).lpush(queue, json_dumps(message))
    signals.after_task_publish.send(
        sender=llm_ask.name, body=body, headers=headers, exchange="", routing_key=queue
    )
    return task_id
