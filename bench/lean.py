"""The lean floor: the least a Python HTTP pass-through can cost, for the gateway's targets.

A bare HTTP/1.1 pass-through on raw asyncio protocols and httptools, on uvloop: the server side
parses each request with httptools' request parser and forwards it, as it came (method, path,
body; ``Content-Type`` and ``Content-Length``), over a pooled keep-alive connection to the
upstream, whose answer (parsed by httptools' response parser) is relayed chunk by chunk as it
arrives: an answer sized by ``Content-Length`` keeps its length, any other (a stream) goes out
chunked. No coroutines on the request path, no authentication, routing, records or metrics.
``--workers`` processes (2) accept from one listening socket opened before they are forked, as
uvicorn's workers do.

``python -m bench.lean --port 8100 --upstream http://127.0.0.1:9000 [--workers 2]`` prints
``LISTENING <port>`` once every worker serves, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop

BACKLOG = 4096
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nbad gateway"
)


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream; relays one answer at a time to a client."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: Downstream | None = None
        self.content_type = b"application/json"
        self.length: bytes | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool.forget(self)
        self._fail()

    def _fail(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.upstream_failed()
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.content_type = b"application/json"
        self.length = None

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self.content_type = value
        elif lowered == b"content-length":
            self.length = value

    def on_headers_complete(self) -> None:
        if self.client is not None:
            self.client.start(self.parser.get_status_code(), self.content_type, self.length)

    def on_body(self, body: bytes) -> None:
        if self.client is not None:
            self.client.body(body)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        keep = self.parser.should_keep_alive()
        if client is not None:
            client.end()
        if keep and not self.lost:
            self.pool.put_back(self)
        elif self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to the upstream, for this process's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str) -> None:
        parts = urlsplit(url)
        self.loop = loop
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/").encode()
        self.host_line = f"Host: {self.host}:{self.port}\r\n".encode()
        self.idle: collections.deque[Upstream] = collections.deque()

    def send(self, client: Downstream, message: bytes) -> None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.lost and connection.transport is not None:
                connection.client = client
                connection.transport.write(message)
                return
        self.loop.create_task(self._connect(client, message))

    async def _connect(self, client: Downstream, message: bytes) -> None:
        try:
            _, connection = await self.loop.create_connection(
                lambda: Upstream(self), self.host, self.port
            )
        except OSError:
            client.upstream_failed()
            return
        connection.client = client
        assert connection.transport is not None
        connection.transport.write(message)

    def put_back(self, connection: Upstream) -> None:
        self.idle.append(connection)

    def forget(self, connection: Upstream) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)


class Downstream(asyncio.Protocol):
    """One client connection: requests in order, each forwarded once the previous one ended."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.content_type = b"application/json"
        self.parts: list[bytes] = []
        self.waiting: collections.deque[bytes] = collections.deque()
        self.busy = False
        self.chunked = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.content_type = b"application/json"
        self.parts = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.parts)
        method = self.parser.get_method()
        self.keep_alive = self.parser.should_keep_alive()
        message = b"%s %s%s HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            method,
            self.pool.prefix,
            self.url,
            self.pool.host_line,
            self.content_type,
            len(body),
            body,
        )
        if self.busy:
            self.waiting.append(message)
        else:
            self.busy = True
            self.pool.send(self, message)

    # called by the upstream connection
    def start(self, status: int, content_type: bytes, length: bytes | None) -> None:
        if self.transport is None:
            return
        self.chunked = length is None
        framing = (
            b"Content-Length: " + length if length is not None else b"Transfer-Encoding: chunked"
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n\r\n"
            % (status, b"OK" if status == 200 else b"-", content_type, framing)
        )

    def body(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self.chunked:
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.transport.write(data)

    def end(self) -> None:
        if self.transport is not None and self.chunked:
            self.transport.write(b"0\r\n\r\n")
        self._next()

    def upstream_failed(self) -> None:
        if self.transport is not None:
            self.transport.write(BAD_GATEWAY)
        self._next()

    def _next(self) -> None:
        if self.transport is None:
            return
        if not self.keep_alive:
            self.transport.close()
        elif self.waiting:
            self.pool.send(self, self.waiting.popleft())
        else:
            self.busy = False


def serve(sock: socket.socket, upstream: str) -> None:
    """One worker: serve the shared listening socket until SIGTERM or SIGINT."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = Pool(loop, upstream)
        server = await loop.create_server(lambda: Downstream(pool), sock=sock, backlog=BACKLOG)
        stop = loop.create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set_result, None)
        await stop
        server.close()

    uvloop.run(main())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--upstream", default=os.environ.get("FLOOR_UPSTREAM", ""))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve(sock, args.upstream)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    for child in children:
        os.waitpid(child, 0)
    sys.exit(0)


if __name__ == "__main__":
    main()
