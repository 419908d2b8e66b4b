"""How the core reaches providers, over the lean HTTP/1.1 client (``transport/http1.py``): the
byte pass-through of the OpenAI-compatible API (``relay``, ``relay_stream``) and the core's own
``complete`` and ``stream``, each the attempt that ``engine.run_recorded`` routes, retries, falls
back and records.

The pass-through: the core's routing, retries, fallback and recording around an upstream request
whose answer is forwarded as it came.

The caller's JSON body goes upstream with ``model`` replaced by the deployment's model id, the
request's params and chat messages applied (request hooks may change them: an experiment's
variant) and our own fields (``experiment``) left out;
the answer is parsed (orjson) only to read what the core accounts for (``wire.py``) and to catch
malformed bodies, and the upstream bytes themselves are returned. Chat and completion streams
ask the provider for usage; when the caller did not ask for it, the usage-only event is not
forwarded. The Responses API goes through as well, or, to a provider without it, translated to
chat completions and back (``responses.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from apps.core.redis import async_redis, key

from ..models import CallStatus, Endpoint
from . import errors
from .bookkeeping import Execution
from .calls import Chunk, Completion, LlmRequest, usage_from
from .config import Deployment
from .engine import current_routing_config, run_recorded
from .errors import ProviderError
from .responses import Translated, TranslatedStream, chat_request
from .streams import StreamRun, read_until_content
from .transport import transports
from .validation import InvalidRequestError
from .wire import READINGS, Event, Said, chat_answer, chat_event, malformed

logger = logging.getLogger(__name__)

DONE = b"[DONE]"
CHAT_PATH = READINGS[Endpoint.CHAT].path
RESPONSE_OWNER_SECONDS = 30 * 24 * 3600
# Fields of a caller's body that are ours (read into the ``LlmRequest``), never sent upstream.
OWN_FIELDS = ("experiment",)


def _translated(request: LlmRequest, deployment: Deployment) -> bool:
    """Whether a Responses request goes to this deployment as chat completions."""
    return request.endpoint == Endpoint.RESPONSES and not deployment.provider.responses_api


def _encode(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError) as exc:  # our request, never the provider's fault
        raise ProviderError(errors.BAD_REQUEST, f"the request cannot be encoded: {exc}") from exc


def _upstream_body(
    request: LlmRequest, payload: dict[str, Any], deployment: Deployment
) -> dict[str, Any]:
    """The caller's body as the deployment gets it: its model id, the request's params and (for
    chat) messages as the request hooks left them, none of our own fields."""
    body = {**payload, **request.params, "model": deployment.model.name}
    if request.endpoint == Endpoint.CHAT:
        body["messages"] = request.messages
    for name in OWN_FIELDS:
        body.pop(name, None)
    return body


def _chat_body(request: LlmRequest, payload: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body of a translated Responses request."""
    try:
        return chat_request(payload)
    except InvalidRequestError as error:
        raise ProviderError(errors.UNSUPPORTED, error.message) from error


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise malformed("not JSON") from exc


async def remember_response(response_id: Any, deployment: Deployment) -> None:
    """Which provider keeps a stored response, for ``GET``/``DELETE /v1/responses/{id}``."""
    if not isinstance(response_id, str) or not response_id:
        return
    try:
        await async_redis().set(
            key("llm", "response", response_id), deployment.provider.id, ex=RESPONSE_OWNER_SECONDS
        )
    except Exception:  # best effort: without it, the response cannot be fetched again here
        logger.warning("could not remember the provider of response %s", response_id)


async def stored_response(method: str, response_id: str) -> transports.HttpReply | None:
    """``GET`` or ``DELETE`` a stored response at the provider that made it; None when this
    platform did not make it (or made it by translation, which keeps nothing)."""
    try:
        owner = await async_redis().get(key("llm", "response", response_id))
    except Exception as exc:
        raise ProviderError(errors.UNAVAILABLE, "cannot tell which provider keeps it") from exc
    config = await current_routing_config()
    provider = next((p for p in config.providers.values() if owner and p.id == int(owner)), None)
    if provider is None:
        return None
    return await transports.request(provider, method, f"/responses/{response_id}")


async def relay(request: LlmRequest, payload: dict[str, Any]) -> tuple[bytes, Deployment]:
    """One answer, not streamed: the provider's JSON body unchanged (or translated), and the
    deployment that gave it."""
    execution = Execution(request, stream=False)
    reading = READINGS[request.endpoint]

    async def attempt(deployment: Deployment, _: Execution) -> tuple[bytes, Said]:
        if _translated(request, deployment):
            chat = {**_chat_body(request, payload), "model": deployment.model.name}
            reply = await transports.post(deployment.provider, CHAT_PATH, _encode(chat))
            if reply.status != 200:
                raise errors.error_from_status(reply.status, reply.body, reply.retry_after)
            data = _parse(reply.body)
            said = chat_answer(data)
            answer = Translated(payload, f"resp_{request.call_id.hex}", request.model)
            return orjson.dumps(answer.from_chat(data)), said
        body = _encode(_upstream_body(request, payload, deployment))
        reply = await transports.post(deployment.provider, reading.path, body)
        if reply.status != 200:
            raise errors.error_from_status(reply.status, reply.body, reply.retry_after)
        data = _parse(reply.body)
        said = reading.answer(data)
        if request.endpoint == Endpoint.RESPONSES:
            await remember_response(data.get("id"), deployment)
        return reply.body, said

    body, said = await run_recorded(request, execution, attempt)
    usage = usage_from(said.usage, request.messages, said.text)
    execution.finish(status=CallStatus.SUCCESS, usage=usage, finish_reason=said.finish_reason)
    assert execution.deployment is not None, "an answer comes from a deployment"
    return body, execution.deployment


async def complete(request: LlmRequest) -> Completion:
    """A chat request's whole answer: the core's own call (the query API, WebSocket queries,
    builds' and agents' steps not streamed). Through the ``openai`` SDK its request transform
    and response models cost 1.5 to 2 ms over the upstream where the pass-through adds about
    0.6 (``bench/README.md``, a WebSocket query's hops)."""
    execution = Execution(request, stream=False)

    async def attempt(deployment: Deployment, _: Execution) -> Said:
        body = {k: v for k, v in request.params.items() if k not in ("messages", "stream")}
        body["model"] = deployment.model.name
        body["messages"] = request.messages  # as the request hooks left them
        reply = await transports.post(deployment.provider, CHAT_PATH, _encode(body))
        if reply.status != 200:
            raise errors.error_from_status(reply.status, reply.body, reply.retry_after)
        return chat_answer(_parse(reply.body))

    said = await run_recorded(request, execution, attempt)
    usage = usage_from(said.usage, request.messages, said.text)
    cost, latency_ms = execution.finish(
        status=CallStatus.SUCCESS, usage=usage, finish_reason=said.finish_reason
    )
    assert execution.deployment is not None, "an answer comes from a deployment"
    return Completion(
        call_id=request.call_id,
        content=said.text,
        provider=execution.deployment.provider.name,
        model=execution.deployment.model.name,
        finish_reason=said.finish_reason,
        usage=usage,
        cost=cost,
        latency_ms=latency_ms,
    )


@dataclass
class SseEvent:
    raw: bytes
    data: Event  # None for [DONE]; an empty dict for a comment or an event without data


class SseReader:
    """Splits an upstream SSE body into events, each with its raw bytes and parsed JSON."""

    def __init__(self, reply: transports.Answer, timeout: float) -> None:
        self.reply = reply
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.buffer = b""
        self.done = False

    async def read_events(self) -> list[SseEvent]:
        """The events of the next read; an empty list at the end of the stream."""
        while not self.done:
            try:
                chunk = await self.reply.readany(self.loop.time() + self.timeout)
            except TimeoutError as exc:
                raise ProviderError(errors.TIMEOUT, "the provider stopped sending") from exc
            except OSError as exc:
                raise transports.error_from_transport(exc, self.reply.url) from exc
            if not chunk:
                if self.buffer.strip():
                    raise malformed("stream ended inside an event")
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
        if b"\n" not in raw and raw.startswith(b"data:"):  # most events: one data line
            payload = raw[5:].lstrip()
        else:
            payload = b"\n".join(
                line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")
            )
        if payload == DONE:
            self.done = True
            return SseEvent(raw + b"\n\n", None)
        if not payload:
            return SseEvent(raw + b"\n\n", {})
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise malformed("an event is not JSON") from exc
        if not isinstance(data, dict):
            raise malformed("an event is not a JSON object")
        return SseEvent(raw + b"\n\n", data)


def error_event(error: ProviderError, endpoint: str = Endpoint.CHAT) -> bytes:
    """How a stream that fails after its start ends, in the endpoint's own format."""
    if endpoint == Endpoint.RESPONSES:
        event = {"type": "error", "code": error.code, "message": error.message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    body = {
        "error": {"message": error.message, "type": "api_error", "param": None, "code": error.code}
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


@dataclass
class _Opened:
    reader: SseReader
    events: list[SseEvent]
    read: Callable[[Event], Said]
    translation: TranslatedStream | None


async def relay_stream(
    request: LlmRequest,
    payload: dict[str, Any],
    on_route: Callable[[Deployment], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """SSE bytes as the provider sends them (or translated). The first ``__anext__`` routes and
    waits for the first content, so a failure until then is still an error response (or a
    fallback), not a broken stream; a failure later ends the stream with an error event.
    ``on_route`` is told the deployment that serves the stream before its first bytes."""
    execution = Execution(request, stream=True)
    reading = READINGS[request.endpoint]
    options = payload.get("stream_options")
    caller_wants_usage = isinstance(options, dict) and options.get("include_usage") is True

    async def attempt(deployment: Deployment, _: Execution) -> _Opened:
        translation = None
        read: Callable[[Event], Said]
        if _translated(request, deployment):
            body = {**_chat_body(request, payload), "model": deployment.model.name}
            path, read = CHAT_PATH, chat_event
            answer = Translated(payload, f"resp_{request.call_id.hex}", request.model)
            translation = TranslatedStream(answer)
        else:
            body = {**_upstream_body(request, payload, deployment), "stream": True}
            path, read = reading.path, reading.event
            if deployment.provider.stream_usage and request.endpoint != Endpoint.RESPONSES:
                body["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
        reply = await transports.open_stream(deployment.provider, path, _encode(body))
        reader = SseReader(reply, deployment.provider.timeout_seconds)
        try:
            events = await read_until_content(reader.read_events, lambda event: read(event.data))
        except BaseException:
            transports.end_stream(reply)
            raise
        if request.endpoint == Endpoint.RESPONSES and translation is None:
            await remember_response(_response_id(events), deployment)
        return _Opened(reader, events, read, translation)

    opened = await run_recorded(request, execution, attempt)
    if on_route is not None and execution.deployment is not None:
        on_route(execution.deployment)
    reader, events, read, translation = (
        opened.reader, opened.events, opened.read, opened.translation
    )  # fmt: skip
    run = StreamRun(execution)
    status, error = CallStatus.CANCELLED, None
    try:
        if translation:
            yield translation.start()
        while events:
            out = []
            for event in events:
                data = event.data
                run.add(read(data))
                if translation:
                    if data:
                        out.append(translation.feed(data))
                    continue
                usage_only = bool(data and data.get("usage") and not data.get("choices"))
                if usage_only and not caller_wants_usage and request.endpoint != Endpoint.RESPONSES:
                    continue
                out.append(event.raw)
            yield b"".join(out)
            events = await reader.read_events()
        run.check_complete()
        if translation:
            yield translation.finish()
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        yield error_event(exc, request.endpoint)
    finally:
        transports.end_stream(reader.reply)
        await run.end(status, error)


async def stream(request: LlmRequest) -> AsyncGenerator[Chunk, None]:
    """A chat request's content chunks as they come, then one closing chunk with finish reason
    and usage: the core's own stream (the SSE API, WebSocket tasks, builds), over the
    pass-through's client. Through the ``openai`` SDK (a model built and dumped per event) an SSE
    stream cost twice the CPU, which a web process serving many streams at once paid in late
    first tokens (``bench/README.md``).

    Fallback happens only before the first chunk; closing the iterator (or cancelling its
    task) closes the upstream connection and records the call as cancelled.
    """
    execution = Execution(request, stream=True)

    async def attempt(deployment: Deployment, _: Execution) -> tuple[SseReader, list[SseEvent]]:
        body = {**request.params, "model": deployment.model.name, "messages": request.messages}
        body["stream"] = True
        if deployment.provider.stream_usage:
            body["stream_options"] = {"include_usage": True}
        reply = await transports.open_stream(deployment.provider, CHAT_PATH, _encode(body))
        reader = SseReader(reply, deployment.provider.timeout_seconds)
        try:
            return reader, await read_until_content(
                reader.read_events, lambda event: chat_event(event.data)
            )
        except BaseException:
            transports.end_stream(reply)
            raise

    reader, events = await run_recorded(request, execution, attempt)
    deployment = execution.deployment
    assert deployment is not None
    provider, model = deployment.provider.name, deployment.model.name
    run = StreamRun(execution)
    status, error = CallStatus.CANCELLED, None
    try:
        while events:
            for event in events:
                text = run.add(chat_event(event.data))
                if text:
                    yield Chunk(content=text, provider=provider, model=model)
            events = await reader.read_events()
        run.check_complete()
        status = CallStatus.SUCCESS
    except ProviderError as exc:
        status, error = CallStatus.ERROR, exc
        raise
    finally:
        transports.end_stream(reader.reply)
        await run.end(status, error)
    yield Chunk(
        finish_reason=run.finish_reason,
        usage=run.usage,
        provider=provider,
        model=model,
        call_id=request.call_id,
        cost=run.cost,
        latency_ms=run.latency_ms,
        time_to_first_token_ms=execution.time_to_first_token_ms,
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


def _response_id(events: list[SseEvent]) -> Any:
    for event in events:
        data = event.data or {}
        if data.get("type") == "response.created":
            return (data.get("response") or {}).get("id")
    return None
