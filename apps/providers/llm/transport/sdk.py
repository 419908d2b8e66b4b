"""The ``openai`` SDK as a provider's client, for what is not on a call's path (listing a
provider's models): over its aiohttp transport, with our connector's pool sizes and figures.
Imported on first use, not with the LLM core (``transports.py``)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import aiohttp
import openai
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from django.conf import settings
from openai import AsyncOpenAI, DefaultAioHttpClient
from openai._vendor.httpx_aiohttp import AiohttpTransport

from .. import errors
from ..config import ProviderConfig
from ..errors import ProviderError
from . import transports

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


SDK_KEEPALIVE_SECONDS = 5.0  # the SDK's own default (httpx's keepalive_expiry)
_sdk_transports: weakref.WeakKeyDictionary[AsyncOpenAI, AiohttpTransport] = (
    weakref.WeakKeyDictionary()
)


def _sdk_connector(client: AsyncOpenAI) -> PoolConnector | None:
    session = getattr(_sdk_transports.get(client), "client", None)  # made on first request
    connector = session.connector if isinstance(session, aiohttp.ClientSession) else None
    return connector if isinstance(connector, PoolConnector) else None


_sdk_clients = transports.PerLoopClients(_sdk_connector)


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
            return error_from_aiohttp(cause, url)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(errors.TIMEOUT, f"no answer in time from {url}")
        return ProviderError(errors.UNAVAILABLE, f"cannot reach {url}: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return errors.error_from_status(
            exc.status_code, exc.response.content, exc.response.headers.get("retry-after")
        )
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return error_from_aiohttp(exc, url)
    if isinstance(exc, ValueError | openai.APIResponseValidationError):
        return ProviderError(errors.MALFORMED_RESPONSE, "the provider sent a malformed answer")
    raise exc


def error_from_aiohttp(exc: BaseException, url: str = "") -> ProviderError:
    """Our error for an aiohttp failure under the SDK; the rest as the pass-through's."""
    at = transports.where(url)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return ProviderError(errors.TIMEOUT, f"no answer in time from{at}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProviderError(errors.UNAVAILABLE, f"cannot resolve the host of{at} (DNS)")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", exc)
        return ProviderError(errors.UNAVAILABLE, f"TLS failed with{at}: {reason}"[:400])
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ProviderError(errors.UNAVAILABLE, f"connection refused by{at}")
        return ProviderError(errors.UNAVAILABLE, f"cannot connect to{at}: {exc.os_error}"[:400])
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return ProviderError(
            errors.UNAVAILABLE, f"the provider closed the connection{at} mid-answer"
        )
    return transports.error_from_transport(exc, url)
