"""The LLM core's public face: other apps import the core from here and from nowhere else.

Every LLM call, from every entry point, goes through it: ``llm_request_from`` turns a caller's
JSON into an ``LlmRequest``; ``complete`` (a whole chat answer), ``stream`` (its chunks) and
``relay``/``relay_stream`` (the byte pass-through of the OpenAI-compatible API), all in
``relay.py``, run it through the engine (``engine.py``: request hooks, routing, retries,
fallback, circuit breakers, recording). ``shutdown`` flushes and closes what the core holds in a
process.

All four reach providers through one lean HTTP/1.1 client of our own (``transport/http1.py``).
The rule was the ``openai`` SDK for everything but the hot path and a lean transport where
measurement showed the SDK too slow; it showed it everywhere a call goes: on ``/v1`` the SDK's
request handling cost more than the rest of the gateway, an SSE stream through it cost twice
the CPU, and a ``complete`` 1.5 to 2 ms over the upstream where the pass-through adds about 0.6
(``bench/README.md``). The SDK only lists a provider's models.
"""

from __future__ import annotations

import asyncio
import logging

from apps.core.redis import close_async_redis
from apps.core.runtime import run_sync

from ..models import CallStatus, Endpoint, EntryPoint, RoutingStrategy
from . import errors
from .calls import Caller, Chunk, Completion, LlmRequest, Usage, new_call_id
from .config import header_value
from .engine import current_routing_config, routing_config
from .errors import ProviderError
from .recording.recorder import recorder
from .relay import collect, complete, error_event, relay, relay_stream, stored_response, stream
from .routing.state import routing_state
from .transport.transports import close_clients
from .validation import (
    MAX_END_USER_LENGTH,
    MAX_STOP_SEQUENCES,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    PARAM_RANGES,
    ROLES,
    InvalidRequestError,
    llm_request_from,
    strategy_from,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_END_USER_LENGTH", "MAX_STOP_SEQUENCES", "MAX_TAGS", "MAX_TAG_KEY_LENGTH",
    "MAX_TAG_VALUE_LENGTH", "PARAM_RANGES", "ROLES", "CallStatus", "Caller", "Chunk", "Completion",
    "Endpoint", "EntryPoint",
    "InvalidRequestError", "stored_response",
    "LlmRequest", "ProviderError", "RoutingStrategy", "Usage", "collect", "complete",
    "complete_sync", "current_routing_config", "error_event", "errors", "header_value",
    "llm_request_from",
    "new_call_id", "relay", "relay_stream", "routing_config", "shutdown", "stream",
    "strategy_from",
]  # fmt: skip


def complete_sync(request: LlmRequest) -> Completion:
    """``complete`` for synchronous callers (the query API, Celery tasks)."""
    return run_sync(complete(request))


async def shutdown() -> None:
    """Flush the routing counters, close provider connections, ship the buffered call records
    (for the ASGI lifespan shutdown; interpreter exit and Celery's worker shutdown flush the
    records too)."""
    try:
        await routing_state().stop()
    except Exception:
        logger.warning("could not flush routing counters at shutdown", exc_info=True)
    await close_clients()
    await close_async_redis()
    await asyncio.to_thread(recorder.close)
