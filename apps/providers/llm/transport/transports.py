"""How bytes reach a provider: a lean HTTP/1.1 client of our own (``http1.py``), or the
``openai`` SDK.

Both keep one pooled client per provider per event loop (clients are bound to the loop they
were made on), rebuilt only when the provider's URL, key, timeout or headers change, and both
map every failure to a ``ProviderError``. The lean client carries every LLM call (``/v1``'s
pass-through, the core's ``complete`` and ``stream``): measured in `bench/`, the SDK's request
handling, and even aiohttp's, cost more than the rest of the gateway, the SDK doubled a
stream's CPU and added 1.5 to 2 ms to a ``complete``. The SDK is left what is not on a call's
path: listing a provider's models (``apps/providers/services.py``).

Each client's pool holds at most ``HTTP_MAX_CONNECTIONS`` connections to its provider and keeps
at most ``HTTP_MAX_KEEPALIVE`` of them open while idle; ``http_pools()`` says how full they are
(``GET /api/v1/connection-stats``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from django.conf import settings
from openai import AsyncOpenAI, DefaultAioHttpClient
from openai._vendor.httpx_aiohttp import AiohttpTransport

from apps.core.pools import Figures, figures_of

from .. import errors
from ..config import ProviderConfig
from ..errors import ProviderError
from .http1 import Answer, AnswerCutError, ConnectError, Pool

NO_KEY = "no-key"  # the SDK insists on a key; local servers (Ollama, vLLM) ignore it


class PoolConnector(aiohttp.TCPConnector):
    """aiohttp's connector, keeping at most ``max_idle`` idle connections per host (aiohttp
    itself keeps every one it may until its keep-alive timeout)."""

    def __init__(self, *, max_idle: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_idle = max_idle

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = self._conns.get(key)
        while idle is not None and len(idle) > self.max_idle:
            idle.popleft()[0].close()

    def figures(self) -> tuple[int, int]:
        """Connections in use and idle."""
        return len(self._acquired), sum(len(idle) for idle in list(self._conns.values()))


def _connector(keepalive_timeout: float, **options: Any) -> PoolConnector:
    return PoolConnector(
        limit=settings.HTTP_MAX_CONNECTIONS,
        limit_per_host=0,
        max_idle=settings.HTTP_MAX_KEEPALIVE,
        keepalive_timeout=keepalive_timeout,
        **options,
    )


# What a client's pool figures are read from: aiohttp's connector (the SDK) or ours.
Pooled = PoolConnector | Pool


class _PerLoop:
    """Clients of the running event loop, keyed by provider id, tagged with the config used;
    each with the provider's name and a function giving its connector (for its figures)."""

    def __init__(self, connector_of: Callable[[Any], Pooled | None]) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop, dict] | None = None  # found without a weakref
        self.connector_of = connector_of

    def get(self, provider: ProviderConfig, build):
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            clients = last[1]
        else:
            clients = self._loops.setdefault(loop, {})
            self._last = (loop, clients)
        found = clients.get(provider.id)
        if found and found[0] == provider.fingerprint:
            return found[1]
        if found:
            asyncio.get_running_loop().create_task(_close(found[1]))
        client = build(provider)
        clients[provider.id] = (provider.fingerprint, client, provider.name)
        return client

    def connectors(self) -> list[tuple[str, Pooled]]:
        """(provider name, connector) of every client of every loop (read from any thread)."""
        found = []
        for clients in list(self._loops.values()):
            for _, client, name in list(clients.values()):
                connector = self.connector_of(client)
                if connector is not None and not connector.closed:
                    found.append((name, connector))
        return found

    async def close_all(self) -> None:
        self._last = None
        clients = self._loops.pop(asyncio.get_running_loop(), {})
        for _, client, _ in clients.values():
            await _close(client)


async def _close(client) -> None:
    close = getattr(client, "close", None)
    result = close() if close else None
    if asyncio.iscoroutine(result):
        await result


def _auth_headers(provider: ProviderConfig) -> dict[str, str]:
    headers = dict(provider.headers)
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    return headers


# --- the openai SDK ---------------------------------------------------------------------------

SDK_KEEPALIVE_SECONDS = 5.0  # the SDK's own default (httpx's keepalive_expiry)
_sdk_transports: weakref.WeakKeyDictionary[AsyncOpenAI, AiohttpTransport] = (
    weakref.WeakKeyDictionary()
)


def _sdk_connector(client: AsyncOpenAI) -> PoolConnector | None:
    session = getattr(_sdk_transports.get(client), "client", None)  # made on first request
    connector = session.connector if isinstance(session, aiohttp.ClientSession) else None
    return connector if isinstance(connector, PoolConnector) else None


_sdk_clients = _PerLoop(_sdk_connector)


def _build_sdk_client(provider: ProviderConfig) -> AsyncOpenAI:
    """The SDK over its aiohttp transport, whose session (made in the loop, on first use) has
    our connector: the pool sizes, and figures to read."""
    transport = AiohttpTransport()

    def session() -> aiohttp.ClientSession:
        connector = _connector(SDK_KEEPALIVE_SECONDS, ssl=transport.ssl_context)
        return aiohttp.ClientSession(connector=connector)

    transport.client = session
    client = AsyncOpenAI(
        base_url=provider.base_url,
        api_key=provider.api_key or NO_KEY,
        timeout=provider.timeout_seconds,
        max_retries=0,  # the core retries, with its own backoff and accounting
        default_headers=provider.headers,
        http_client=DefaultAioHttpClient(timeout=provider.timeout_seconds, transport=transport),
    )
    _sdk_transports[client] = transport
    return client


def sdk_client(provider: ProviderConfig) -> AsyncOpenAI:
    return _sdk_clients.get(provider, _build_sdk_client)


def _cause(exc: BaseException) -> BaseException:
    """The transport error under an SDK error (the SDK's aiohttp bridge wraps them, and reports
    a refused connection as a connect timeout): the first aiohttp error down the chain, which
    says the most, else the innermost OS error."""
    seen: BaseException | None = exc
    found = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return seen
        if isinstance(seen, OSError):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


def error_from_sdk(exc: Exception, url: str = "") -> ProviderError:
    """Our error for what the SDK raised; ``url`` is where the request went (never a key)."""
    if isinstance(exc, UnicodeEncodeError | TypeError):
        # Raised while building our own request: never the provider's fault.
        return ProviderError(
            errors.BAD_REQUEST, f"the request cannot be sent: {type(exc).__name__}: {exc}"[:300]
        )
    if isinstance(exc, openai.APIConnectionError):
        url = url or str(exc.request.url)
        cause = _cause(exc)
        if cause is not exc:
            return error_from_transport(cause, url)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(errors.TIMEOUT, f"no answer in time from {url}")
        return ProviderError(errors.UNAVAILABLE, f"cannot reach {url}: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return errors.error_from_status(
            exc.status_code, exc.response.content, exc.response.headers.get("retry-after")
        )
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return error_from_transport(exc, url)
    if isinstance(exc, ValueError | openai.APIResponseValidationError):
        return ProviderError(errors.MALFORMED_RESPONSE, "the provider sent a malformed answer")
    raise exc


# --- the lean pass-through --------------------------------------------------------------------

PASS_THROUGH_KEEPALIVE_SECONDS = 30.0


def _build_pool(provider: ProviderConfig) -> Pool:
    return Pool(
        provider.base_url,
        headers={**_auth_headers(provider), "Content-Type": "application/json"},
        limit=settings.HTTP_MAX_CONNECTIONS,
        max_idle=settings.HTTP_MAX_KEEPALIVE,
        keepalive=PASS_THROUGH_KEEPALIVE_SECONDS,
    )


_pools = _PerLoop(lambda pool: pool)


def http_pool(provider: ProviderConfig) -> Pool:
    return _pools.get(provider, _build_pool)


def error_from_transport(exc: BaseException, url: str = "") -> ProviderError:
    """Our error for a transport failure (the pass-through's or aiohttp's, under the SDK),
    saying what happened and the URL tried."""
    at = f" {url}" if url else " the provider"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ProviderError(errors.TIMEOUT, f"no answer in time from{at}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return ProviderError(errors.UNAVAILABLE, f"cannot resolve the host of{at} (DNS)")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", exc)
        return ProviderError(errors.UNAVAILABLE, f"TLS failed with{at}: {reason}"[:400])
    if isinstance(exc, ssl.SSLError):
        return ProviderError(errors.UNAVAILABLE, f"TLS failed with{at}: {exc}"[:400])
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ProviderError(errors.UNAVAILABLE, f"connection refused by{at}")
        return ProviderError(errors.UNAVAILABLE, f"cannot connect to{at}: {exc.os_error}"[:400])
    if isinstance(exc, ConnectionRefusedError):
        return ProviderError(errors.UNAVAILABLE, f"connection refused by{at}")
    if isinstance(exc, ConnectError):
        return ProviderError(errors.UNAVAILABLE, f"cannot connect to{at}: {exc.strerror}"[:400])
    cut = AnswerCutError | aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError
    if isinstance(exc, cut):
        return ProviderError(
            errors.UNAVAILABLE, f"the provider closed the connection{at} mid-answer"
        )
    if isinstance(exc, ValueError):  # a URL or header the pass-through cannot send
        return ProviderError(errors.UNAVAILABLE, f"cannot reach{at}: {exc}"[:400])
    return ProviderError(errors.UNAVAILABLE, f"cannot reach{at}: {type(exc).__name__}")


@dataclass
class HttpReply:
    status: int
    body: bytes
    retry_after: str | None


async def post(provider: ProviderConfig, path: str, body: bytes) -> HttpReply:
    """POST and read the whole answer, within the provider's timeout."""
    return await request(provider, "POST", path, body)


async def request(
    provider: ProviderConfig, method: str, path: str, body: bytes | None = None
) -> HttpReply:
    """Send a request and read the whole answer, within the provider's timeout."""
    try:
        answer, content = await http_pool(provider).fetch(
            method, path, body, provider.timeout_seconds
        )
    except (TimeoutError, OSError, ValueError) as exc:
        raise error_from_transport(exc, provider.base_url + path) from exc
    retry_after = answer.header("Retry-After") if answer.status != 200 else None
    return HttpReply(answer.status, content, retry_after)


async def open_stream(provider: ProviderConfig, path: str, body: bytes) -> Answer:
    """POST and return the open answer once its headers say 200; pair with ``end_stream``."""
    try:
        deadline = asyncio.get_running_loop().time() + provider.timeout_seconds
        answer = await http_pool(provider).send("POST", path, body, deadline)
        if answer.status != 200:
            try:
                content = await answer.read(deadline)
            finally:
                answer.release()
            raise errors.error_from_status(answer.status, content, answer.header("Retry-After"))
    except (TimeoutError, OSError, ValueError) as exc:
        raise error_from_transport(exc, provider.base_url + path) from exc
    return answer


def end_stream(answer: Answer) -> None:
    """A stream read to its end returns its connection to the pool; one left early (cancelled,
    failed) closes it, so the upstream sees the request stop."""
    answer.release()


async def close_clients() -> None:
    """Close every client of the running loop (on shutdown)."""
    await _sdk_clients.close_all()
    await _pools.close_all()


# --- pool figures -------------------------------------------------------------------------------


def http_pools() -> dict[str, Figures]:
    """Per provider: both clients' pools in every event loop of this process, summed."""
    by_provider: dict[str, list[Pooled]] = {}
    for name, connector in [*_pools.connectors(), *_sdk_clients.connectors()]:
        by_provider.setdefault(name, []).append(connector)
    return {
        name: figures_of(
            connectors,
            size=lambda connector: connector.limit or None,
            in_use=lambda connector: connector.figures()[0],
            idle=lambda connector: connector.figures()[1],
        )
        for name, connectors in sorted(by_provider.items())
    }
