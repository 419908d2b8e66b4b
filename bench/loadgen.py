"""A cheap HTTP/1.1 load generator: raw asyncio on uvloop, one keep-alive connection per client.

Run as its own process (``python -m bench.loadgen ...``) so it never shares an event loop with
what it measures; it prints one JSON object: per-request latencies (and, for streams, times to
the first content token) in nanoseconds, the error count and the measured seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import Any

import uvloop

FIRST_CONTENT = re.compile(rb'"content":"[^"]')


BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hello"}],
    },
    "/v1/embeddings": {"model": "fake-embed", "input": "hello"},
}


def build_request(path: str, key: str, stream: bool) -> bytes:
    body = json.dumps({**BODIES[path], **({"stream": True} if stream else {})}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader, started: int) -> tuple[int, int | None]:
    """Read one response; returns its status and when the first content token arrived."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lowered = head.lower()
    first_token = None
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        return status, None
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if first_token is None and FIRST_CONTENT.search(chunk):
            first_token = time.perf_counter_ns() - started
        if size == 0:
            return status, first_token


async def _client(port: int, request: bytes, until: float, results: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter_ns()
            writer.write(request)
            try:
                status, first_token = await _read_response(reader, started)
            except (asyncio.IncompleteReadError, ConnectionError):
                results["errors"] += 1
                return
            results["latencies"].append(time.perf_counter_ns() - started)
            if first_token is not None:
                results["first_tokens"].append(first_token)
            if status != 200:
                results["errors"] += 1
    finally:
        writer.close()


async def run(
    port: int, path: str, key: str, clients: int, seconds: float, warmup: float, stream: bool
) -> dict:
    request = build_request(path, key, stream)
    discard = {"latencies": [], "first_tokens": [], "errors": 0}
    await asyncio.gather(
        *(_client(port, request, time.perf_counter() + warmup, discard) for _ in range(clients))
    )
    results = {"latencies": [], "first_tokens": [], "errors": 0}
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(port, request, started + seconds, results) for _ in range(clients))
    )
    return {**results, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--key", default="")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    result = uvloop.run(
        run(args.port, args.path, args.key, args.clients, args.seconds, args.warmup, args.stream)
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
