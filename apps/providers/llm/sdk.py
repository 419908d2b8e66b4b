"""The LLM core's own ``complete``, talking to providers through the ``openai`` SDK (query API,
WebSocket tasks, builds). It runs in ``engine.execute`` like the pass-through of ``relay.py``,
and differs from it only in the attempt it hands it. The core's ``stream`` reads through the
pass-through's client instead (``relay.stream``): the SDK doubled a stream's CPU.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from openai.types.chat import ChatCompletion

from ..models import CallStatus
from . import errors
from .bookkeeping import Execution
from .calls import Chunk, Completion, LlmRequest, usage_from
from .config import Deployment
from .engine import run_recorded
from .errors import ProviderError
from .relay import stream
from .transport.transports import error_from_sdk, sdk_client


def _url(deployment: Deployment) -> str:
    return deployment.provider.base_url + "/chat/completions"


def _sdk_arguments(request: LlmRequest, deployment: Deployment) -> dict[str, Any]:
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": deployment.model.name, "messages": request.messages, "extra_body": params}


async def complete(request: LlmRequest) -> Completion:
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution) -> ChatCompletion:
        try:
            response = await sdk_client(deployment.provider).chat.completions.create(
                **_sdk_arguments(request, deployment)
            )
        except Exception as exc:
            raise error_from_sdk(exc, _url(deployment)) from exc
        if not getattr(response, "choices", None):
            raise ProviderError(errors.MALFORMED_RESPONSE, "the provider answered without choices")
        return response

    response = await run_recorded(request, execution, attempt)
    choice = response.choices[0]
    content = choice.message.content or ""
    raw_usage = response.usage.model_dump() if response.usage else None
    usage = usage_from(raw_usage, request.messages, content)
    finish_reason = choice.finish_reason or ""
    cost, latency_ms = execution.finish(
        status=CallStatus.SUCCESS, usage=usage, finish_reason=finish_reason
    )
    assert execution.deployment is not None
    return Completion(
        call_id=request.call_id,
        content=content,
        provider=execution.deployment.provider.name,
        model=execution.deployment.model.name,
        finish_reason=finish_reason,
        usage=usage,
        cost=cost,
        latency_ms=latency_ms,
    )


async def collect(request: LlmRequest) -> tuple[str, Chunk]:
    """Run a stream to its end: the whole text and the closing chunk (for tests and tasks)."""
    parts: list[str] = []
    last = Chunk()
    async with aclosing(stream(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.content)
            last = chunk
    return "".join(parts), last
