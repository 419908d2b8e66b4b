"""The floor: the least a Python gateway can cost. A bare ASGI app that forwards each request, as
it came, to the upstream through one pooled aiohttp session per process, and the answer back
(streamed as it comes). No authentication, routing, recording or metrics: run under the same
server settings as the gateway, it is the baseline the gateway's figures are divided by.

``FLOOR_UPSTREAM`` is the upstream's root (``http://127.0.0.1:PORT``); request paths are kept.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9000")
_session: aiohttp.ClientSession | None = None


def _pool() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=512, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            skip_auto_headers=("User-Agent",),
        )
    return _session


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read(receive)
    headers = {"Content-Type": "application/json"}
    async with _pool().post(UPSTREAM + scope["path"], data=body, headers=headers) as reply:
        content_type = reply.headers.get("Content-Type", "application/json").encode()
        if content_type.startswith(b"text/event-stream"):
            start = {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(b"content-type", content_type)],
            }
            await send(start)
            async for chunk in reply.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        answer = await reply.read()
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
