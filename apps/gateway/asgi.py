"""The HTTP side of the ASGI application: the hot path beside Django.

``/v1/…`` (the OpenAI-compatible API) is served here directly, without Django's request
machinery, which alone costs more than the gateway's latency budget (measured in `bench/`). It uses
the same API keys, router, recorder and metrics as everything else, and, when CORS is on, the
same CORS settings as Django's paths (``apps.core.cors``) and, when tracing is on, a span per
request as Django's get (``apps.core.tracing``). All other paths go to Django. The
lifespan protocol (uvicorn, granian) flushes buffers on shutdown; daphne, which has none, relies
on the recorder's exit hook.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from apps.core import tracing
from apps.core.cors import AsgiCors
from apps.core.http_metrics import django_route
from apps.providers.llm import shutdown

from . import openai_api

HOT_PATH_PREFIX = "/v1/"
# Django paths whose views are all async: the SSE API (apps/gateway/views.py).
ASYNC_VIEWS_PREFIXES = ("/api/streaming/",)
# The routes of /v1 as the HTTP metrics name them (a bounded set: ids become placeholders).
V1_ROUTES = {path: path for path in (*openai_api.LLM_PATHS, "/v1/models")}
V1_ROUTE_PREFIXES = (
    ("/v1/models/", "/v1/models/{model}"),
    ("/v1/responses/", "/v1/responses/{response_id}"),
)


def route_of(path: str) -> str:
    """The route an HTTP request is counted under: /v1's own names, else Django's pattern."""
    if not path.startswith(HOT_PATH_PREFIX):
        return django_route(path)
    trimmed = path.rstrip("/")
    if route := V1_ROUTES.get(trimmed):
        return route
    for prefix, route in V1_ROUTE_PREFIXES:
        if trimmed.startswith(prefix):
            return route
    return "/v1/{unknown}"


class DjangoHandler(ASGIHandler):
    """Django's ASGI handler, except that a request to an async-only path runs without a
    ``ThreadSensitiveContext``.

    That context gives each request a thread of its own for its sync steps, so that sync views
    run side by side; Django's two request signals are such steps, so every request started a
    thread and joined it: some 0.9 ms of a 2.4 ms SSE stream's CPU (``bench.profile_gateway
    --kinds sse``). An async view's few sync steps (the signals, a session user's lookup) go to
    the process's one shared sync thread instead, as the ``/v1`` path's database lookups do.
    """

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(ASYNC_VIEWS_PREFIXES):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class GatewayRouter:
    def __init__(self, django_application) -> None:
        self.django_application = django_application
        hot_path = AsgiCors(openai_api.handle) if settings.CORS_ENABLED else openai_api.handle
        self.hot_path = (
            tracing.asgi_traced(hot_path, route_of=route_of) if tracing.enabled else hot_path
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["path"].startswith(HOT_PATH_PREFIX):
            await self.hot_path(scope, receive, send)
        else:
            await self.django_application(scope, receive, send)


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
