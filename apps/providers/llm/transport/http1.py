"""A lean HTTP/1.1 client for the pass-through: pooled keep-alive connections on asyncio
protocols, answers parsed by httptools (the parser uvicorn serves HTTP with).

Measured in-process against the fake upstream, aiohttp's request path cost about 70 µs of CPU per
call and this one about 13 µs: the gateway's whole request went from ~232 to ~174 µs
(``bench/README.md``). It does what the pass-through needs and nothing more: a request with a
body, answers sized by ``Content-Length``, chunked or ended by the connection's close, read
whole or as they come; ``http`` and ``https``; at most ``limit`` connections per pool (callers
wait beyond it) of which ``max_idle`` stay open while idle, for at most ``keepalive`` seconds.
A request sent on a reused connection that the server closed before answering is sent again
once, on a new connection (the race every keep-alive client has with a server's idle timeout). No
redirects, cookies, proxies or compression (no ``Accept-Encoding`` is sent). A request's
timeout is a deadline on the loop's clock (``send``, ``fetch``, ``readany``), kept by one timer
(``loop.call_at``) while the request waits: ``asyncio.timeout``'s context manager cost ten
Python calls per use (``bench/profile_gateway.py``). A request that runs out of time, or is
cancelled, closes its connection.

Failures raise ``OSError``s (``TimeoutError`` past a deadline): ``ConnectionRefusedError``
and ``socket.gaierror`` as the OS reports them, ``ssl.SSLError`` for TLS, ``ConnectError`` for
any other failure to connect, ``AnswerCutError`` when the connection ends in the middle of an
answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httptools

PAUSE_ABOVE = 1 << 20  # bytes of an answer waiting to be read before the socket is paused


class ConnectError(OSError):
    """The connection could not be made (other than refused, DNS or TLS)."""


class AnswerCutError(ConnectionError):
    """The connection ended before the answer did."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.lost = False
        self.idle_since = 0.0

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AnswerCutError(f"the answer is not valid HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool.forget(self)
        answer = self.answer
        if answer is not None and not answer.complete:
            if answer.started and not answer.sized():  # an answer that ends with the connection
                self.on_message_complete()
            else:
                self._fail(AnswerCutError("the connection closed before the answer ended"))

    # --- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.answer is not None:
            self.answer.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.status = self.parser.get_status_code()
        answer.started = True
        if not answer.head.done():
            answer.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        answer = self.answer
        if answer is not None:
            answer.feed(body)

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is None or answer.complete:
            return
        answer.complete = True
        answer.keep_alive = not self.lost and self.parser.should_keep_alive()
        answer.wake()

    # --- ours ---------------------------------------------------------------------------------
    def _fail(self, error: Exception) -> None:
        if self.answer is not None:
            self.answer.fail(error)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()


class Answer:
    """The answer to one request: status and headers once they came, then the body, whole
    (``read``) or as it comes (``readany``). ``release`` hands the connection back, or closes
    it if the answer was not read to its end (so the server sees the request stop)."""

    def __init__(self, connection: _Connection, url: str) -> None:
        self.connection = connection
        self.url = url
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = False
        self.complete = False
        self.keep_alive = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    def sized(self) -> bool:
        """Whether the answer says where its body ends (else the connection's close does)."""
        framing = (b"content-length", b"transfer-encoding")
        return any(name.lower() in framing for name, _ in self.raw_headers)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw_headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    # --- fed by the connection ----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > PAUSE_ABOVE and self.connection.transport is not None:
            self.connection.transport.pause_reading()
        self.wake()

    def fail(self, error: Exception) -> None:
        if self._error is None and not self.complete:
            self._error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: a request cancelled meanwhile leaves no warning
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- read by the caller -------------------------------------------------------------------
    def at_eof(self) -> bool:
        return self.complete and not self._chunks

    async def readany(self, deadline: float | None = None) -> bytes:
        """The body as it has come since the last read; ``b""`` at its end. Waiting for more
        past ``deadline`` (the loop's clock) raises ``TimeoutError``."""
        while not self._chunks:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        if self._buffered > PAUSE_ABOVE and self.connection.transport is not None:
            self.connection.transport.resume_reading()
        self._buffered = 0
        return data

    async def read(self, deadline: float | None = None) -> bytes:
        """The whole body (by ``deadline``, as ``readany``)."""
        parts = []
        while chunk := await self.readany(deadline):
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool, or is closed if the
        answer was not read to its end or the server will not keep it."""
        if self._released:
            return
        self._released = True
        reusable = self.at_eof() and self.keep_alive
        self.connection.pool.put_back(self.connection, reusable=reusable)


class Pool:
    """Keep-alive connections to one origin (``scheme://host:port``), for one event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        limit: int,
        max_idle: int,
        keepalive: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._fixed_headers = _header_block(
            {"Host": host if default_port else f"{host}:{self.port}", **headers}
        )
        self.limit = limit
        self.max_idle = max_idle
        self.keepalive = keepalive
        self._ssl = ssl.create_default_context() if self.tls else None
        self._idle: collections.deque[_Connection] = collections.deque()
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed = False

    # --- requests -----------------------------------------------------------------------------
    async def send(
        self, method: str, path: str, body: bytes | None = None, deadline: float | None = None
    ) -> Answer:
        """Send a request and wait for its status and headers; the body is the caller's to read
        (``Answer.read``/``readany``) and the answer to ``release``. Not answered by
        ``deadline`` (the loop's clock; a free slot and the connection included), the request
        is cancelled and ``TimeoutError`` raised."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed_headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        message = head + b"\r\n" + (body or b"")
        url = self.base_url + path
        if deadline is None:
            return await self._send(message, url)
        task = asyncio.current_task()
        assert task is not None, "a request with a deadline runs in a task"
        cancelling = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = asyncio.get_running_loop().call_at(deadline, expire)
        try:
            return await self._send(message, url)
        except asyncio.CancelledError:
            if expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    async def _send(self, message: bytes, url: str) -> Answer:
        await self._take_slot()
        try:
            connection, reused = await self._connection()
            try:
                return await self._exchange(connection, message, url)
            except AnswerCutError:
                if not reused:
                    raise
            # The server had closed the idle connection: once more, on a new one.
            connection, _ = await self._connection(fresh=True)
            return await self._exchange(connection, message, url)
        except BaseException:
            self._give_slot()
            raise

    async def fetch(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ) -> tuple[Answer, bytes]:
        """Send a request and read its whole answer, within ``timeout`` seconds
        (``TimeoutError``); the connection goes back to the pool."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        answer = await self.send(method, path, body, deadline)
        try:
            return answer, await answer.read(deadline)
        finally:
            answer.release()

    async def _exchange(self, connection: _Connection, message: bytes, url: str) -> Answer:
        answer = connection.answer = Answer(connection, url)
        try:
            assert connection.transport is not None
            connection.transport.write(message)
            await answer.head
        except BaseException:
            connection.answer = None
            connection.close()
            raise
        return answer

    # --- connections --------------------------------------------------------------------------
    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """An idle connection still open and recent enough, else a new one."""
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < self.keepalive:
                return connection, True
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            )
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError | ssl.SSLError | socket.gaierror):
                raise
            raise ConnectError(exc.errno, str(exc)) from exc
        return connection, False

    def put_back(self, connection: _Connection, *, reusable: bool) -> None:
        connection.answer = None
        self._give_slot()
        if reusable and connection.usable and not self.closed and len(self._idle) < self.max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def forget(self, connection: _Connection) -> None:
        """A connection the server closed leaves the idle ones."""
        with contextlib.suppress(ValueError):  # not idle: in use, or already gone
            self._idle.remove(connection)

    async def _take_slot(self) -> None:
        while self.limit and self._in_use >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # the slot it was given goes to the next one
                raise
        self._in_use += 1

    def _give_slot(self) -> None:
        self._in_use -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- figures and shutdown -----------------------------------------------------------------
    def figures(self) -> tuple[int, int]:
        """Connections in use and idle."""
        return self._in_use, len(self._idle)

    async def close(self) -> None:
        self.closed = True
        while self._idle:
            self._idle.pop().close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _header_block(headers: dict[str, Any]) -> bytes:
    lines = []
    for name, value in headers.items():
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(text.encode("latin-1") + b"\r\n")
    return b"".join(lines)
