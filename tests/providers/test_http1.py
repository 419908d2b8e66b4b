"""The pass-through's HTTP/1.1 client (``apps.providers.llm.transport.http1``) against real
sockets: a small server written here answers the ways servers do (sized, chunked, until close),
closes idle connections, stalls and refuses, and counts the connections it was sent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from apps.providers.llm.transport.http1 import AnswerCutError, Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class Server:
    """Reads requests and lets ``handler(reader, writer, index)`` answer each; the handler
    says whether the connection stays open. Counts connections and the most open at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests = 0
        self.closed_by_client = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.requests += 1
                if not await self.handler(reader, writer, self.requests):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[Server, str]]:
    server = Server(handler)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        listener.close()


def pool_for(url: str, limit: int = 10, max_idle: int = 10) -> Pool:
    return Pool(
        url, headers={"Authorization": "Bearer k"}, limit=limit, max_idle=max_idle, keepalive=30
    )


async def sized(reader, writer, index) -> bool:
    body = b'{"n": %d}' % index
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    return True


async def test_a_sized_answer_and_the_connection_kept_for_the_next_request():
    async with serving(sized) as (server, url):
        pool = pool_for(url)
        first, body1 = await pool.fetch("POST", "/chat/completions", b"{}")
        second, body2 = await pool.fetch("POST", "/chat/completions", b"{}")
    assert (first.status, body1, body2) == (200, b'{"n": 1}', b'{"n": 2}')
    assert server.connections == 1
    assert pool.figures() == (0, 1)


async def test_a_chunked_answer_read_as_it_comes():
    async def chunked(reader, writer, index) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async with serving(chunked) as (server, url):
        pool = pool_for(url)
        answer = await pool.send("POST", "/chat/completions", b"{}")
        parts = []
        while part := await answer.readany():
            parts.append(part)
        answer.release()
        assert parts == [b"data: one\n\n", b"data: two\n\n"]  # two reads: as they came
        assert pool.figures() == (0, 1)


async def test_an_answer_that_ends_with_the_connection_is_whole_and_not_reused():
    async def until_close(reader, writer, index) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async with serving(until_close) as (server, url):
        pool = pool_for(url)
        _, body = await pool.fetch("POST", "/x", b"{}")
        _, again = await pool.fetch("POST", "/x", b"{}")
    assert body == again == b"all of it"
    assert server.connections == 2
    assert pool.figures() == (0, 0)


async def test_a_connection_the_server_dropped_while_idle_is_replaced_without_an_error():
    async def once_per_connection(reader, writer, index) -> bool:
        if index % 2 == 0:  # the next request on this connection: gone without a word
            return False
        return await sized(reader, writer, index)

    async with serving(once_per_connection) as (server, url):
        pool = pool_for(url)
        await pool.fetch("POST", "/x", b"{}")
        answer, body = await pool.fetch("POST", "/x", b"{}")  # sent twice: once on a new one
    assert (answer.status, body) == (200, b'{"n": 3}')
    assert server.connections == 2


async def test_a_new_connection_closed_before_the_answer_is_an_error():
    async def hang_up(reader, writer, index) -> bool:
        return False

    async with serving(hang_up) as (_, url):
        pool = pool_for(url)
        with pytest.raises(AnswerCutError):
            await pool.fetch("POST", "/x", b"{}")
        assert pool.figures() == (0, 0)


async def test_at_most_limit_connections_and_max_idle_kept_open():
    async def slow(reader, writer, index) -> bool:
        await asyncio.sleep(0.1)
        return await sized(reader, writer, index)

    async with serving(slow) as (server, url):
        pool = pool_for(url, limit=2, max_idle=1)
        answers = await asyncio.gather(*(pool.fetch("POST", "/x", b"{}") for _ in range(5)))
        await asyncio.sleep(0.05)
        assert all(answer.status == 200 for answer, _ in answers)
        assert server.most_open == 2
        assert pool.figures() == (0, 1)
        assert server.open == 1


async def test_a_cancelled_request_closes_its_connection_and_frees_its_place():
    async def stall(reader, writer, index) -> bool:
        if await reader.read(1) == b"":  # no answer; wait for the client to go
            server.closed_by_client += 1
        return False

    async with serving(stall) as (server, url):
        pool = pool_for(url, limit=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.fetch("POST", "/x", b"{}")
        await asyncio.sleep(0.1)
        assert server.closed_by_client == 1
        assert pool.figures() == (0, 0)


async def test_refused_and_unresolvable_hosts_raise_what_the_os_said():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once it is closed
    with pytest.raises(ConnectionRefusedError):
        await pool_for(f"http://127.0.0.1:{port}/v1").fetch("POST", "/x", b"{}")
    with pytest.raises(socket.gaierror):
        await pool_for("http://no-such-host.invalid/v1").fetch("POST", "/x", b"{}")


async def test_tls_to_a_server_that_does_not_speak_it_is_a_tls_error():
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLError):
            await pool_for(f"https://127.0.0.1:{port}/v1").fetch("POST", "/x", b"{}")
    finally:
        listener.close()


def test_a_header_value_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="line break"):
        Pool(
            "http://127.0.0.1:1/v1",
            headers={"X-Bad": "a\r\nInjected: 1"},
            limit=1,
            max_idle=1,
            keepalive=1,
        )
