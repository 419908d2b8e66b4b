"""How bytes reach a provider: the ``openai`` SDK, or a lean aiohttp pass-through for the hot path.

Both keep one pooled client per provider per event loop (clients are bound to the loop they
were made on), rebuilt only when the provider's URL, key, timeout or headers change, and both
map every failure to a ``ProviderError``. The SDK serves the core's ``complete``/``stream``
(query API, WebSocket, builds); the pass-through serves ``/v1/chat/completions``, where the
SDK's own request handling would cost more than the whole latency budget (PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import aiohttp
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from . import errors
from .config import ProviderConfig
from .errors import ProviderError

NO_KEY = "no-key"  # the SDK insists on a key; local servers (Ollama, vLLM) ignore it


class _PerLoop:
    """Clients of the running event loop, keyed by provider id, tagged with the config used."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, provider: ProviderConfig, build):
        clients = self._loops.setdefault(asyncio.get_running_loop(), {})
        found = clients.get(provider.id)
        if found and found[0] == provider.fingerprint:
            return found[1]
        if found:
            asyncio.get_running_loop().create_task(_close(found[1]))
        client = build(provider)
        clients[provider.id] = (provider.fingerprint, client)
        return client

    async def close_all(self) -> None:
        clients = self._loops.pop(asyncio.get_running_loop(), {})
        for _, client in clients.values():
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

_sdk_clients = _PerLoop()


def _build_sdk_client(provider: ProviderConfig) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=provider.base_url,
        api_key=provider.api_key or NO_KEY,
        timeout=provider.timeout_seconds,
        max_retries=0,  # the core retries, with its own backoff and accounting
        default_headers=provider.headers,
        http_client=DefaultAioHttpClient(timeout=provider.timeout_seconds),
    )


def sdk_client(provider: ProviderConfig) -> AsyncOpenAI:
    return _sdk_clients.get(provider, _build_sdk_client)


def _refused(exc: BaseException) -> bool:
    """Whether a connection was refused somewhere down the chain (the SDK's aiohttp bridge
    reports a refused connection as a connect timeout)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError | aiohttp.ClientConnectorError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Connect call failed" in str(exc.__cause__ or "")


def error_from_sdk(exc: Exception) -> ProviderError:
    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        return ProviderError(errors.TIMEOUT, "the provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(errors.UNAVAILABLE, f"cannot reach the provider: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return errors.error_from_status(
            exc.status_code, exc.response.content, exc.response.headers.get("retry-after")
        )
    if isinstance(exc, ValueError | openai.APIResponseValidationError):
        return ProviderError(errors.MALFORMED_RESPONSE, "the provider sent a malformed answer")
    raise exc


# --- the lean pass-through --------------------------------------------------------------------

_sessions = _PerLoop()


def _build_session(provider: ProviderConfig) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=512, keepalive_timeout=30),
        headers={**_auth_headers(provider), "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        skip_auto_headers=("User-Agent",),
        auto_decompress=True,
    )


def http_session(provider: ProviderConfig) -> aiohttp.ClientSession:
    return _sessions.get(provider, _build_session)


def error_from_aiohttp(exc: BaseException) -> ProviderError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ProviderError(errors.TIMEOUT, "the provider did not answer in time")
    return ProviderError(errors.UNAVAILABLE, f"cannot reach the provider: {type(exc).__name__}")


@dataclass
class HttpReply:
    status: int
    body: bytes
    retry_after: str | None


async def post(provider: ProviderConfig, path: str, body: bytes) -> HttpReply:
    """POST and read the whole answer, within the provider's timeout."""
    try:
        async with asyncio.timeout(provider.timeout_seconds):
            async with http_session(provider).post(provider.base_url + path, data=body) as reply:
                return HttpReply(reply.status, await reply.read(), reply.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise error_from_aiohttp(exc) from exc


async def open_stream(provider: ProviderConfig, path: str, body: bytes) -> aiohttp.ClientResponse:
    """POST and return the open response once its headers say 200; pair with ``end_stream``."""
    try:
        async with asyncio.timeout(provider.timeout_seconds):
            reply = await http_session(provider).post(provider.base_url + path, data=body)
            if reply.status != 200:
                content = await reply.read()
                reply.release()
                raise errors.error_from_status(
                    reply.status, content, reply.headers.get("Retry-After")
                )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise error_from_aiohttp(exc) from exc
    return reply


def end_stream(reply: aiohttp.ClientResponse) -> None:
    """A stream read to its end returns its connection to the pool; one left early (cancelled,
    failed) closes it, so the upstream sees the request stop."""
    if reply.content.at_eof():
        reply.release()
    else:
        reply.close()


async def close_clients() -> None:
    """Close every client of the running loop (on shutdown)."""
    await _sdk_clients.close_all()
    await _sessions.close_all()
