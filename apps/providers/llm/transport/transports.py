"""How bytes reach a provider: a lean HTTP/1.1 client of our own (``http1.py``), or the
``openai`` SDK (``sdk.py``, imported only when first used: the SDK alone took a third of a
process's start-up, some 0.5 s).

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
from typing import Any, Protocol

from django.conf import settings

from apps.core.pools import Figures, figures_of

from .. import errors
from ..config import ProviderConfig
from ..errors import ProviderError
from .http1 import Answer, AnswerCutError, ConnectError, Pool


class Pooled(Protocol):
    """What a client's pool figures are read from: our ``Pool`` or the SDK's connector."""

    @property
    def limit(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def figures(self) -> tuple[int, int]: ...


_every_kind: list[PerLoopClients] = []  # the lean pools', and the SDK's clients once it is used


class PerLoopClients:
    """Clients of the running event loop, keyed by provider id, tagged with the config used;
    each with the provider's name and a function giving its connector (for its figures)."""

    def __init__(self, connector_of: Callable[[Any], Pooled | None]) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop, dict] | None = None  # found without a weakref
        self.connector_of = connector_of
        _every_kind.append(self)

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


_pools = PerLoopClients(lambda pool: pool)


def http_pool(provider: ProviderConfig) -> Pool:
    return _pools.get(provider, _build_pool)


def where(url: str) -> str:
    return f" {url}" if url else " the provider"


def error_from_transport(exc: BaseException, url: str = "") -> ProviderError:
    """Our error for a transport failure of the pass-through (the SDK's aiohttp errors:
    ``sdk.error_from_aiohttp``), saying what happened and the URL tried."""
    at = where(url)
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderError(errors.TIMEOUT, f"no answer in time from{at}")
    if isinstance(exc, socket.gaierror):
        return ProviderError(errors.UNAVAILABLE, f"cannot resolve the host of{at} (DNS)")
    if isinstance(exc, ssl.SSLError):
        return ProviderError(errors.UNAVAILABLE, f"TLS failed with{at}: {exc}"[:400])
    if isinstance(exc, ConnectionRefusedError):
        return ProviderError(errors.UNAVAILABLE, f"connection refused by{at}")
    if isinstance(exc, ConnectError):
        return ProviderError(errors.UNAVAILABLE, f"cannot connect to{at}: {exc.strerror}"[:400])
    if isinstance(exc, AnswerCutError):
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
    for kind in _every_kind:
        await kind.close_all()


# --- pool figures -------------------------------------------------------------------------------


def http_pools() -> dict[str, Figures]:
    """Per provider: both clients' pools in every event loop of this process, summed."""
    by_provider: dict[str, list[Pooled]] = {}
    for name, connector in (found for kind in _every_kind for found in kind.connectors()):
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
