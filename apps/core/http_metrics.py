"""HTTP metrics of every entry point, counted once at the ASGI level (``ai_orchestra_http_*``).

``ai_orchestra_http_requests_total{method,route,status}`` and
``ai_orchestra_http_request_duration_seconds{method,route}`` cover Django's paths, ``/v1``
(served beside Django), SSE streams (their duration is the whole stream) and WebSocket
handshakes (``GET``, status 101 when accepted, 403 when refused; the duration is the handshake's).

``route`` is bounded: the URL pattern (``/api/v1/providers/<int:pk>``), a fixed name given by
the application (``/v1/chat/completions``, ``/v1/models/{model}``), ``/static/`` for static
files, or ``{unmatched}``; never the raw path. A method outside the usual few is ``OTHER``. An
answer that never started counts as 500 when the application failed, else 499 (the client
went away first, as nginx counts it).

Cost per request: one wrapper around ``send``, a dict lookup for the labelled series and two
writes to them, batched per event-loop iteration (``apps.core.metrics``); Django paths resolve
their pattern once per distinct path (cached).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import lru_cache
from time import perf_counter
from typing import Any

from django.conf import settings
from django.urls import Resolver404, resolve
from prometheus_client import Counter, Histogram

from .metrics import count, observe

UNMATCHED = "{unmatched}"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# A WebSocket handshake's outcome, by the first message the application sends.
HANDSHAKE_STATUS = {"websocket.accept": 101, "websocket.close": 403}

requests_total = Counter(
    "ai_orchestra_http_requests_total",
    "HTTP requests (and WebSocket handshakes) by method, route and status.",
    ["method", "route", "status"],
)
request_duration_seconds = Histogram(
    "ai_orchestra_http_request_duration_seconds",
    "Time to answer an HTTP request (a stream: until it ends), by method and route.",
    ["method", "route"],
    buckets=BUCKETS,
)


@lru_cache(maxsize=4096)
def django_route(path: str) -> str:
    """The URL pattern Django serves ``path`` with (cached per path)."""
    static = "/" + settings.STATIC_URL.lstrip("/") if settings.STATIC_URL else None
    if static and path.startswith(static):
        return static
    try:
        match = resolve(path)
    except Resolver404:
        return UNMATCHED
    except Exception:  # a path the resolver chokes on is not a route either
        return UNMATCHED
    return "/" + match.route


class HttpMetrics:
    """ASGI middleware: counts and times every HTTP request and WebSocket handshake.

    ``route_of(path)`` names an HTTP request's route; ``websocket_routes`` are the WebSocket
    paths served (others count as ``{unmatched}``). ``on_start`` runs once, at the first
    event the application gets (the web process's reporter starts there, not at import).
    """

    def __init__(
        self,
        app: Any,
        route_of: Callable[[str], str] = django_route,
        websocket_routes: Iterable[str] = (),
        on_start: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.websocket_routes = frozenset(websocket_routes)
        self.on_start = on_start
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.on_start is not None:
            on_start, self.on_start = self.on_start, None
            on_start()
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = perf_counter()
        status = 0

        async def send_noting_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except asyncio.CancelledError:
            status = status or 499
            raise
        except Exception:
            status = status or 500
            raise
        finally:
            elapsed = perf_counter() - started
            self._observe(scope["method"], self.route_of(scope["path"]), status or 499, elapsed)

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = perf_counter()
        route = scope["path"] if scope["path"] in self.websocket_routes else UNMATCHED
        decided = False

        def decide(status: int) -> None:
            nonlocal decided
            decided = True
            self._observe("GET", route, status, perf_counter() - started)

        async def send_noting_handshake(message: dict[str, Any]) -> None:
            if not decided:
                if message["type"] == "websocket.http.response.start":
                    decide(message["status"])
                elif status := HANDSHAKE_STATUS.get(message["type"]):
                    decide(status)
            await send(message)

        try:
            await self.app(scope, receive, send_noting_handshake)
        except Exception:
            if not decided:
                decide(500)
            raise
        finally:
            if not decided:
                decide(499)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in METHODS else "OTHER", route, status)
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = (
                requests_total.labels(labels[0], route, str(status)),
                request_duration_seconds.labels(labels[0], route),
            )
        count(series[0])
        observe(series[1], seconds)
