"""The HTTP side of the ASGI application: the hot path beside Django.

``/v1/…`` (the OpenAI-compatible API) is served here directly, without Django's request
machinery, which alone costs more than the gateway's latency budget (PERFORMANCE.md). It uses
the same API keys, router, recorder and metrics as everything else. All other paths go to
Django. The lifespan protocol (uvicorn, granian) flushes buffers on shutdown; daphne, which has
none, relies on the recorder's exit hook.
"""

from __future__ import annotations

import asyncio
import logging

from apps.providers.recorder import recorder
from apps.providers.state import shared_state
from apps.providers.transports import close_clients

from . import openai_api

logger = logging.getLogger(__name__)

HOT_PATH_PREFIX = "/v1/"


class GatewayRouter:
    def __init__(self, django_application) -> None:
        self.django_application = django_application

    async def __call__(self, scope, receive, send) -> None:
        if scope["path"].startswith(HOT_PATH_PREFIX):
            await openai_api.handle(scope, receive, send)
        else:
            await self.django_application(scope, receive, send)


async def shutdown() -> None:
    try:
        await shared_state().flush()
    except Exception:
        logger.warning("could not flush routing counters at shutdown", exc_info=True)
    await close_clients()
    await asyncio.to_thread(recorder.close)


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
