"""The byte pass-through of ``/v1/chat/completions``: the core's routing, retries, fallback and
recording around an upstream request whose answer is forwarded as it came.

The caller's JSON body goes upstream with only ``model`` replaced by the deployment's model id;
the answer is parsed (orjson) only to read usage and to catch malformed bodies, and the upstream
bytes themselves are returned. Streams ask the provider for usage; when the caller did not ask
for it, the usage-only event is not forwarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from . import errors, transports
from .calls import LlmRequest, usage_from
from .config import Deployment
from .engine import Execution, run_recorded
from .errors import ProviderError
from .models import CallStatus

PATH = "/chat/completions"
DONE = b"[DONE]"


def _malformed(detail: str) -> ProviderError:
    return ProviderError(
        errors.MALFORMED_RESPONSE, f"the provider sent a malformed answer: {detail}"
    )


async def relay(request: LlmRequest, payload: dict[str, Any]) -> bytes:
    """One non-streaming completion; returns the provider's JSON body unchanged."""
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution) -> tuple[bytes, dict]:
        body = orjson.dumps({**payload, "model": deployment.model.name})
        reply = await transports.post(deployment.provider, PATH, body)
        if reply.status != 200:
            raise errors.error_from_status(reply.status, reply.body, reply.retry_after)
        try:
            data = orjson.loads(reply.body)
            choices = data["choices"]
            message = choices[0]["message"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise _malformed(type(exc).__name__) from exc
        return reply.body, {"data": data, "content": (message or {}).get("content") or ""}

    body, parsed = await run_recorded(request, execution, attempt)
    data = parsed["data"]
    usage = usage_from(data.get("usage"), request.messages, parsed["content"])
    finish_reason = data["choices"][0].get("finish_reason") or ""
    execution.finish(status=CallStatus.SUCCESS, usage=usage, finish_reason=finish_reason)
    return body


@dataclass
class SseEvent:
    raw: bytes
    data: dict[str, Any] | None  # None for [DONE] and comments


class SseReader:
    """Splits an upstream SSE body into events, each with its raw bytes and parsed JSON."""

    def __init__(self, reply: aiohttp.ClientResponse, timeout: float) -> None:
        self.reply = reply
        self.timeout = timeout
        self.buffer = b""
        self.done = False

    async def read_events(self) -> list[SseEvent]:
        """The events of the next read; an empty list at the end of the stream."""
        while not self.done:
            try:
                async with asyncio.timeout(self.timeout):
                    chunk = await self.reply.content.readany()
            except TimeoutError as exc:
                raise ProviderError(errors.TIMEOUT, "the provider stopped sending") from exc
            except aiohttp.ClientError as exc:
                raise transports.error_from_aiohttp(exc) from exc
            if not chunk:
                if self.buffer.strip():
                    raise _malformed("stream ended inside an event")
                return []
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n")
            self.buffer += chunk
            *complete, self.buffer = self.buffer.split(b"\n\n")
            events = [self._parse(raw) for raw in complete if raw.strip()]
            if events:
                return events
        return []

    def _parse(self, raw: bytes) -> SseEvent:
        payload = b"\n".join(
            line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")
        )
        if not payload or payload == DONE:
            self.done = self.done or payload == DONE
            return SseEvent(raw + b"\n\n", None)
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise _malformed("an event is not JSON") from exc
        if not isinstance(data, dict):
            raise _malformed("an event is not a JSON object")
        return SseEvent(raw + b"\n\n", data)


def _has_content(event: SseEvent) -> bool:
    if event.data is None:
        return True
    return any(
        (choice.get("delta") or {}).get("content") or choice.get("finish_reason")
        for choice in event.data.get("choices") or ()
    )


async def _read_until_content(reader: SseReader) -> list[SseEvent]:
    """The events up to the first one with content (or the end): a provider that fails before
    saying anything can still be failed over, since nothing has reached the caller."""
    events: list[SseEvent] = []
    while not any(_has_content(event) for event in events):
        more = await reader.read_events()
        if not more:
            if not events:
                raise ProviderError(errors.UNAVAILABLE, "the provider sent an empty stream")
            break
        events += more
    return events


def error_event(error: ProviderError) -> bytes:
    body = {
        "error": {"message": error.message, "type": "api_error", "param": None, "code": error.code}
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def relay_stream(request: LlmRequest, payload: dict[str, Any]) -> AsyncIterator[bytes]:
    """SSE bytes as the provider sends them. The first ``__anext__`` routes and waits for the
    first content, so a failure until then is still an error response (or a fallback), not a
    broken stream; a failure later ends the stream with an OpenAI-style error event."""
    execution = Execution(request, stream=True)
    options = payload.get("stream_options")
    caller_wants_usage = isinstance(options, dict) and options.get("include_usage") is True

    async def attempt(deployment: Deployment, _: Execution):
        body = {**payload, "model": deployment.model.name, "stream": True}
        if deployment.provider.stream_usage:
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        reply = await transports.open_stream(deployment.provider, PATH, orjson.dumps(body))
        reader = SseReader(reply, deployment.provider.timeout_seconds)
        try:
            return reader, await _read_until_content(reader)
        except BaseException:
            transports.end_stream(reply)
            raise

    reader, events = await run_recorded(request, execution, attempt)
    parts: list[str] = []
    pieces, raw_usage, finish_reason = 0, None, ""
    status, error = CallStatus.CANCELLED, None
    try:
        while events:
            out = []
            for event in events:
                data = event.data
                if data is not None:
                    raw_usage = data.get("usage") or raw_usage
                    for choice in data.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            execution.mark_first_token()
                            parts.append(text)
                            pieces += 1
                        finish_reason = choice.get("finish_reason") or finish_reason
                    if not caller_wants_usage and data.get("usage") and not data.get("choices"):
                        continue
                out.append(event.raw)
            yield b"".join(out)
            events = await reader.read_events()
        if not (reader.done or finish_reason):
            raise ProviderError(errors.UNAVAILABLE, "the provider ended the stream early")
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        yield error_event(exc)
    finally:
        transports.end_stream(reader.reply)
        usage = usage_from(raw_usage, request.messages, "".join(parts), pieces)
        execution.finish(status=status, usage=usage, finish_reason=finish_reason, error=error)
