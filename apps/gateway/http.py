"""Just enough raw ASGI HTTP for the hot path: read a body, send JSON or a stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
Headers = list[tuple[bytes, bytes]]

# Every /v1 answer is one caller's and is never to be stored by a cache, nor read by a browser
# as anything but what it says it is. Built once: the hot path adds them as they are.
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
JSON_HEADERS = [(b"content-type", b"application/json"), *SECURITY_HEADERS]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *SECURITY_HEADERS,
    (b"x-accel-buffering", b"no"),
]


def scope_headers(scope: dict[str, Any], names: frozenset[bytes]) -> dict[bytes, str]:
    """The first value of each header of ``names`` (lower-case bytes) the request has, decoded
    as latin-1: one pass over the scope's headers for everything a request reads of them."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found


# How long a request runs before its client is watched for going away (``until_disconnect``).
WATCH_AFTER = 0.05


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    pass


async def read_body(receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_bytes(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, data: Any, headers: list[tuple[bytes, bytes]]) -> None:
    await send_bytes(send, status, orjson.dumps(data), [*JSON_HEADERS, *headers])


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(work: Awaitable[T], receive) -> T:
    """Await ``work`` unless the client goes away first, in which case it is cancelled.

    Cancelling is what stops an upstream request whose answer nobody will read. The work runs
    in the caller's own task; the watcher is a new one, started only once the work has lasted
    ``WATCH_AFTER`` seconds: a task per request (made, cancelled, collected) cost about 7% of
    the gateway's CPU per request when answers come at once (``bench/``), and a client gone
    before then costs at most that much of an upstream answer.
    """
    task = asyncio.current_task()
    assert task is not None, "until_disconnect runs in a task"
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task | None = None

    def client_gone(finished: asyncio.Future) -> None:
        if not finished.cancelled():
            task.cancel()

    def watch() -> None:
        nonlocal watcher
        watcher = loop.create_task(_disconnected(receive))
        watcher.add_done_callback(client_gone)

    timer = loop.call_later(WATCH_AFTER, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if watcher is not None and watcher.done() and not watcher.cancelled():
            raise ClientGoneError from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.remove_done_callback(client_gone)
            watcher.cancel()
