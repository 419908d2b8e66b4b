"""Fake OpenAI-compatible upstream on raw asyncio.

Written against ``asyncio.Protocol`` + ``httptools`` instead of a web framework so that it can
sustain tens of thousands of keep-alive requests per second on one core: benchmarks of the
gateway must measure the gateway, not the fake behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import re
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import httptools

try:
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    _loads = json.loads

DEFAULT_NAME = "fake"
DEFAULT_TOKENS = 8
DEFAULT_MODELS = ("fake-model", "fake-model-2")
MODEL_CREATED = 1_700_000_000

CHAT_PATH = b"/v1/chat/completions"
MODELS_PATH = b"/v1/models"
CONTROL_PREFIX = b"/_control/"

_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_PIECE = re.compile(r"\s*\S+")

_NUMBER_KEYS = frozenset({"latency_ms", "chunk_delay_ms"})
_INT_KEYS = frozenset({"tokens", "status", "drop_after_chunks"})
_BOOL_KEYS = frozenset({"malformed", "hang", "drop", "omit_usage"})
_STR_KEYS = frozenset({"content", "error_message"})
BEHAVIOR_KEYS = frozenset(
    _NUMBER_KEYS | _INT_KEYS | _BOOL_KEYS | _STR_KEYS | {"retry_after", "models"}
)

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

_JSON = b"application/json"
_MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{'
_MALFORMED_EVENT = b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": \n\n'
_DONE_EVENT = b"data: [DONE]\n\n"


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES: dict[int, bytes] = {}


def _status(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = _status_line(status)
    return line


def validate_behavior(obj: Any) -> dict[str, Any]:
    """Reject unknown keys and wrong types so a typo in a test fails loudly, not silently."""
    if not isinstance(obj, dict):
        raise ValueError("behavior must be a JSON object")
    unknown = sorted(set(obj) - BEHAVIOR_KEYS)
    if unknown:
        raise ValueError(f"unknown behavior keys: {unknown}; known: {sorted(BEHAVIOR_KEYS)}")
    for key, value in obj.items():
        is_bool = isinstance(value, bool)
        if key in _NUMBER_KEYS and (is_bool or not isinstance(value, int | float) or value < 0):
            raise ValueError(f"{key} must be a non-negative number")
        if key in _INT_KEYS and (is_bool or not isinstance(value, int) or value < 0):
            raise ValueError(f"{key} must be a non-negative integer")
        if key == "status" and not 100 <= value <= 599:
            raise ValueError("status must be an HTTP status code")
        if key in _BOOL_KEYS and not is_bool:
            raise ValueError(f"{key} must be a boolean")
        if key in _STR_KEYS and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        if key == "retry_after" and (is_bool or not isinstance(value, int | float | str)):
            raise ValueError("retry_after must be a number or a string")
        if key == "models" and not (
            isinstance(value, list) and all(isinstance(m, str) for m in value)
        ):
            raise ValueError("models must be a list of strings")
    return dict(obj)


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """Build an OpenAI-style error object so SDKs map it to their usual exceptions."""
    kind, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    error = {"message": message, "type": kind, "param": None, "code": code or default_code}
    return _dumps({"error": error})


def count_words(messages: Sequence[Any]) -> int:
    """Count whitespace-separated words in all text content, the fake's notion of a token."""
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"].split())
    return total


class ServerState:
    """Behavior and counters shared by all connections of one fake upstream."""

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        tokens: int = DEFAULT_TOKENS,
        models: Sequence[str] = DEFAULT_MODELS,
    ) -> None:
        self.name = name
        self.tokens = tokens
        self.models = list(models)
        self.connections: set[_Connection] = set()
        self.common_headers = f"server: fake-upstream\r\nx-fake-upstream: {name}\r\n".encode(
            "latin-1", "replace"
        )
        self._pieces_cache: dict[int, tuple[list[str], str]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget behavior, queued one-shots and counters, but keep open connections."""
        self.behavior: dict[str, Any] = {}
        self.queue: deque[dict[str, Any]] = deque()
        self.requests = 0
        self.by_path: dict[bytes, int] = {}
        self.completed = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.client_disconnects = 0
        self.last_request: tuple[bytes, list[tuple[bytes, bytes]], bytes] | None = None
        self.seq = 0

    def next_behavior(self) -> dict[str, Any]:
        """One-shot behaviors win, in order, before the default applies again."""
        return self.queue.popleft() if self.queue else self.behavior

    def default_pieces(self, n: int) -> tuple[list[str], str]:
        """Deterministic words for ``n`` tokens, cached because every request asks for them."""
        cached = self._pieces_cache.get(n)
        if cached is None:
            words = ["Hello", "from", *self.name.split()][:n]
            words += [_FILLER[i % len(_FILLER)] for i in range(n - len(words))]
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            cached = self._pieces_cache[n] = (pieces, "".join(pieces))
        return cached

    def stats(self, open_connections: int) -> dict[str, Any]:
        """Render counters as JSON-ready data; decoding of the last request is done lazily here."""
        last = None
        if self.last_request is not None:
            path, raw_headers, raw_body = self.last_request
            headers: dict[str, str] = {}
            for raw_name, raw_value in raw_headers:
                key = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            body: Any
            try:
                body = _loads(raw_body) if raw_body else None
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
            last = {"path": path.decode("latin-1"), "headers": headers, "body": body}
        return {
            "name": self.name,
            "requests": self.requests,
            "by_path": {p.decode("latin-1"): n for p, n in self.by_path.items()},
            "completed": self.completed,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "client_disconnects": self.client_disconnects,
            "open_connections": open_connections,
            "queued": len(self.queue),
            "behavior": self.behavior,
            "last_request": last,
        }


class _Request:
    __slots__ = ("body", "chunked", "headers", "http11", "keep_alive", "method", "path")

    def __init__(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        http11: bool,
        chunked: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.http11 = http11
        self.chunked = chunked


class _Chat:
    """What a valid chat request should produce, computed once before any delay."""

    __slots__ = (
        "completion_tokens",
        "content",
        "finish_reason",
        "id",
        "include_usage",
        "model",
        "pieces",
        "prompt_tokens",
        "stream",
    )

    def __init__(self, state: ServerState, body: dict[str, Any], behavior: dict[str, Any]) -> None:
        cap = body.get("max_completion_tokens")
        if cap is None:
            cap = body.get("max_tokens")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            cap = None
        self.finish_reason = "stop"
        override = behavior.get("content")
        if override is not None:
            pieces = _PIECE.findall(override)
            if cap is not None and cap < len(pieces):
                pieces = pieces[:cap]
                self.finish_reason = "length"
                content = "".join(pieces)
            else:
                content = override
                tail = override[len("".join(pieces)) :]
                if tail:
                    pieces = [*pieces[:-1], pieces[-1] + tail] if pieces else [tail]
            tokens = len(content.split())
        else:
            tokens = behavior.get("tokens", state.tokens)
            if cap is not None and cap < tokens:
                tokens = cap
                self.finish_reason = "length"
            pieces, content = state.default_pieces(tokens)
        state.seq += 1
        self.id = f"chatcmpl-{state.name}-{state.seq}"
        self.model = body["model"]
        self.pieces = pieces
        self.content = content
        self.completion_tokens = tokens
        self.prompt_tokens = count_words(body["messages"])
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def completion(self, omit_usage: bool) -> bytes:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
        }
        if not omit_usage:
            obj["usage"] = self.usage()
        return _dumps(obj)

    def events(self, omit_usage: bool, malformed: bool) -> list[bytes]:
        """All SSE events of the stream, in the order OpenAI sends them."""
        created = int(time.time())
        with_usage = self.include_usage and not omit_usage

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            obj: dict[str, Any] = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                obj["usage"] = None
            return b"data: " + _dumps(obj) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""}, None)]
        if malformed:
            events.append(_MALFORMED_EVENT)
        events.extend(chunk({"content": piece}, None) for piece in self.pieces)
        events.append(chunk({}, self.finish_reason))
        if with_usage:
            final = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }
            events.append(b"data: " + _dumps(final) + b"\n\n")
        events.append(_DONE_EVENT)
        return events


Build = Callable[[bool], bytes]


class _Connection(asyncio.Protocol):
    """One client connection: parses pipelined requests and answers them strictly in order."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.chunked = False
        self.busy = False
        self.inflight = False
        self.server_closing = False
        self.closed = False
        self.paused = False
        self.pending: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self.inflight and not self.server_closing:
            self.state.client_disconnects += 1
        self.inflight = False
        self.pending.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.cancel()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject_stream("protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._reject_stream(f"malformed HTTP request: {exc}")

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.chunked = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            self.chunked = True
        elif len(name) == 6 and name.lower() == b"expect" and not self.busy:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.closed:
            return
        parser = self.parser
        request = _Request(
            parser.get_method(),
            self.url.partition(b"?")[0],
            self.headers,
            b"".join(self.body),
            parser.should_keep_alive(),
            parser.get_http_version() == "1.1",
            self.chunked,
        )
        if self.busy or self.pending:
            self.pending.append(request)
        else:
            self._dispatch(request)

    def _dispatch(self, request: _Request) -> None:
        self.busy = True
        try:
            self._route(request)
        except Exception as exc:  # a bug here must show up as a 500, not a hung client
            traceback.print_exc(file=sys.stderr)
            self.inflight = False
            self._send(request, 500, error_body(500, f"fake upstream crashed: {exc!r}"))

    def _run_pending(self) -> None:
        while self.pending and not self.busy and not self.closed:
            self._dispatch(self.pending.popleft())

    def _route(self, request: _Request) -> None:
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            self._control(request)
            return
        by_path = self.state.by_path
        by_path[path] = by_path.get(path, 0) + 1
        if request.chunked:
            self._send(request, 400, error_body(400, "request bodies must use Content-Length"))
        elif path == CHAT_PATH:
            if request.method == b"POST":
                self._chat(request)
            else:
                self._send(request, 405, error_body(405, "use POST"))
        elif path == MODELS_PATH or path.startswith(MODELS_PATH + b"/"):
            if request.method == b"GET":
                self._models(request)
            else:
                self._send(request, 405, error_body(405, "use GET"))
        else:
            message = f"no route for {request.method.decode()} {path.decode('latin-1')}"
            self._send(request, 404, error_body(404, message))

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _response(
        self,
        request: _Request,
        status: int,
        body: bytes,
        content_type: bytes = _JSON,
        extra: bytes = b"",
    ) -> bytes:
        return b"".join(
            (
                _status(status),
                b"content-type: ",
                content_type,
                b"\r\ncontent-length: ",
                str(len(body)).encode(),
                b"\r\n",
                self.state.common_headers,
                extra,
                b"" if request.keep_alive else b"connection: close\r\n",
                b"\r\n",
                body,
            )
        )

    def _send(self, request: _Request, status: int, body: bytes, extra: bytes = b"") -> None:
        self._write(self._response(request, status, body, extra=extra))
        self._done(request)

    def _done(self, request: _Request) -> None:
        self.busy = False
        self.inflight = False
        if not request.keep_alive:
            self._close()

    def _close(self, abort: bool = False) -> None:
        self.server_closing = True
        self.inflight = False
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _reject_stream(self, message: str) -> None:
        """Answer an unparseable stream once and hang up, since its framing can't be trusted."""
        if not self.busy and self.transport is not None and not self.transport.is_closing():
            body = error_body(400, message)
            self._write(
                _status(400)
                + b"content-type: application/json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n"
                + self.state.common_headers
                + b"connection: close\r\n\r\n"
                + body
            )
        self._close()

    def _chat(self, request: _Request) -> None:
        state = self.state
        state.requests += 1
        state.last_request = (request.path, request.headers, request.body)
        behavior = state.next_behavior()
        try:
            body = _loads(request.body)
        except ValueError:
            body = None
        chat: _Chat | None = None
        problem = None
        if not isinstance(body, dict):
            problem = "request body must be a JSON object"
        elif not isinstance(body.get("model"), str):
            problem = "you must provide a model parameter"
        elif not isinstance(body.get("messages"), list):
            problem = "'messages' must be a list"
        else:
            chat = _Chat(state, body, behavior)
        status = behavior.get("status", 200)
        if status != 200 or chat is None:

            def build(keep_alive: bool) -> bytes:
                return self._error_response(request, behavior, problem, status)

            self._answer(request, behavior, build, None, chat=True)
        elif chat.stream:
            self._answer(request, behavior, None, chat, chat=True)
        else:
            omit_usage = behavior.get("omit_usage", False)
            malformed = behavior.get("malformed", False)

            def build(keep_alive: bool) -> bytes:
                payload = _MALFORMED_BODY if malformed else chat.completion(omit_usage)
                return self._response(request, 200, payload)

            self._answer(request, behavior, build, None, chat=True)

    def _error_response(
        self, request: _Request, behavior: dict[str, Any], problem: str | None, status: int
    ) -> bytes:
        extra = b""
        if status != 200:
            message = behavior.get("error_message") or f"fake upstream error {status}"
            retry_after = behavior.get("retry_after")
            if retry_after is not None:
                extra = f"retry-after: {retry_after}\r\n".encode()
        else:
            status, message = 400, problem or "bad request"
        return self._response(request, status, error_body(status, message), extra=extra)

    def _models(self, request: _Request) -> None:
        behavior = self.state.behavior
        models = behavior.get("models", self.state.models)
        owner = self.state.name
        wanted = request.path[len(MODELS_PATH) + 1 :].decode("utf-8", "replace")

        def entry(model: str) -> dict[str, Any]:
            return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": owner}

        def build(keep_alive: bool) -> bytes:
            status = behavior.get("status", 200)
            if status != 200:
                return self._error_response(request, behavior, None, status)
            if behavior.get("malformed"):
                return self._response(request, 200, _MALFORMED_BODY)
            if not wanted:
                return self._response(
                    request, 200, _dumps({"object": "list", "data": [entry(m) for m in models]})
                )
            if wanted in models:
                return self._response(request, 200, _dumps(entry(wanted)))
            message = f"The model '{wanted}' does not exist"
            return self._response(request, 404, error_body(404, message, "model_not_found"))

        self._answer(request, behavior, build, None, chat=False)

    def _answer(
        self,
        request: _Request,
        behavior: dict[str, Any],
        build: Build | None,
        stream: _Chat | None,
        chat: bool,
    ) -> None:
        """Apply hang/latency/drop, then send the built response or the stream."""
        self.inflight = True
        if behavior.get("hang"):
            return
        latency = behavior.get("latency_ms", 0) / 1000
        if latency > 0 or stream is not None:
            self.task = self.loop.create_task(
                self._answer_later(request, behavior, build, stream, chat, latency)
            )
            return
        if behavior.get("drop"):
            self._close()
            return
        assert build is not None
        self._write(build(request.keep_alive))
        if chat:
            self.state.completed += 1
        self._done(request)

    async def _answer_later(
        self,
        request: _Request,
        behavior: dict[str, Any],
        build: Build | None,
        stream: _Chat | None,
        chat: bool,
        latency: float,
    ) -> None:
        if latency > 0:
            await asyncio.sleep(latency)
        if behavior.get("drop"):
            self._close()
            return
        if stream is not None:
            if not await self._stream(request, behavior, stream):
                return
        else:
            assert build is not None
            self._write(build(request.keep_alive))
        if chat:
            self.state.completed += 1
        self._done(request)
        self._run_pending()

    async def _stream(self, request: _Request, behavior: dict[str, Any], chat: _Chat) -> bool:
        """Send SSE events as separate writes; False if the stream was cut on purpose."""
        state = self.state
        chunked = request.http11 and request.keep_alive
        framing = b"transfer-encoding: chunked\r\n" if chunked else b"connection: close\r\n"
        self._write(
            _status(200)
            + b"content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
            + framing
            + state.common_headers
            + b"\r\n"
        )
        state.streams_started += 1
        events = chat.events(behavior.get("omit_usage", False), behavior.get("malformed", False))
        delay = behavior.get("chunk_delay_ms", 0) / 1000
        drop_after = behavior.get("drop_after_chunks")
        for index, event in enumerate(events):
            if drop_after is not None and index >= drop_after:
                self._close(abort=True)
                return False
            if index and delay > 0:
                await asyncio.sleep(delay)
            self._write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
            if self.paused:
                self.drain_waiter = self.loop.create_future()
                await self.drain_waiter
        if chunked:
            self._write(b"0\r\n\r\n")
        state.streams_completed += 1
        if not chunked:
            request.keep_alive = False
        return True

    def _control(self, request: _Request) -> None:
        state = self.state
        action = request.path[len(CONTROL_PREFIX) :]
        method = request.method
        try:
            payload = _loads(request.body) if request.body.strip() else {}
        except ValueError:
            self._send(request, 400, error_body(400, "control body must be JSON"))
            return
        try:
            if action == b"stats" and method == b"GET":
                result: Any = state.stats(len(state.connections) - 1)
            elif action == b"behavior" and method == b"GET":
                result = {"behavior": state.behavior}
            elif action == b"behavior" and method == b"POST":
                state.behavior = validate_behavior(payload)
                result = {"ok": True, "behavior": state.behavior}
            elif action == b"enqueue" and method == b"POST":
                behaviors = payload.get("behaviors") if isinstance(payload, dict) else None
                if not isinstance(behaviors, list):
                    raise ValueError('body must be {"behaviors": [...]}')
                state.queue.extend([validate_behavior(b) for b in behaviors])
                result = {"ok": True, "queued": len(state.queue)}
            elif action == b"reset" and method == b"POST":
                state.reset()
                result = {"ok": True}
            else:
                self._send(request, 404, error_body(404, "unknown control endpoint"))
                return
        except ValueError as exc:
            self._send(request, 400, error_body(400, str(exc)))
            return
        self._send(request, 200, _dumps(result))


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    name: str = DEFAULT_NAME,
    tokens: int = DEFAULT_TOKENS,
    models: Sequence[str] = DEFAULT_MODELS,
) -> tuple[asyncio.Server, ServerState]:
    """Bind in the running loop; returned separately so in-process users can read the state."""
    state = ServerState(name, tokens, models)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(state), host, port, backlog=4096)
    return server, state


async def serve(
    host: str,
    port: int,
    *,
    name: str = DEFAULT_NAME,
    tokens: int = DEFAULT_TOKENS,
    models: Sequence[str] = DEFAULT_MODELS,
) -> None:
    """Serve until SIGTERM/SIGINT, announcing the bound port on stdout for the parent process."""
    server, state = await start_server(host, port, name=name, tokens=tokens, models=models)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"LISTENING {bound}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    for connection in list(state.connections):
        connection._close(abort=True)
    await asyncio.sleep(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point used by ``python -m tests.fake_upstream``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="default word count")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is optional
            pass
    coro = serve(args.host, args.port, name=args.name, tokens=args.tokens, models=models)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(coro)
    return 0
