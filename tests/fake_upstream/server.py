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
import signal
import sys
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote

import httptools

from .answers import (
    FILLER,
    Answer,
    BadRequestError,
    ChatAnswer,
    build_completion,
    build_embedding,
    build_response,
    dumps,
    dumps_any,
    loads,
)

DEFAULT_NAME = "fake"
DEFAULT_TOKENS = 8
DEFAULT_MODELS = ("fake-model", "fake-model-2")
MODEL_CREATED = 1_700_000_000
STORED_RESPONSES = 1000

CHAT_PATH = b"/v1/chat/completions"
COMPLETIONS_PATH = b"/v1/completions"
EMBEDDINGS_PATH = b"/v1/embeddings"
RESPONSES_PATH = b"/v1/responses"
MODELS_PATH = b"/v1/models"
CONTROL_PREFIX = b"/_control/"

Builder = Callable[["ServerState", dict[str, Any], dict[str, Any]], Answer]
LLM_ENDPOINTS: dict[bytes, Builder] = {
    CHAT_PATH: ChatAnswer,
    COMPLETIONS_PATH: build_completion,
    EMBEDDINGS_PATH: build_embedding,
    RESPONSES_PATH: build_response,
}

# One line per behavior key: the keys accepted, and the list printed by ``--help``.
BEHAVIOR_HELP = {
    "latency_ms": "delay before the response headers (number)",
    "chunk_delay_ms": "delay between stream events (number)",
    "tokens": "number of generated words (integer)",
    "content": "exact generated text; its whitespace-separated words are the tokens",
    "status": "answer with this HTTP status and an OpenAI error body",
    "error_message": "error.message of that body",
    "error_code": "error.code of that body (e.g. model_not_found, context_length_exceeded)",
    "retry_after": "Retry-After header of error answers (number or string)",
    "malformed": "200 with invalid JSON; in a stream, the second event is invalid JSON",
    "body": "exact body of a 200 answer not streamed (a string, sent as it is)",
    "hang": "read the request and never answer",
    "drop": "close the connection without answering (after latency_ms)",
    "drop_after_chunks": "abort the connection after N stream events",
    "omit_usage": "no usage anywhere",
    "usage": "object merged into every usage object sent, any JSON values",
    "tool_call": 'answer with this tool call: {"name": str, "arguments": str}',
    "unsupported": "paths answered 404 unknown_url, as by a server lacking them",
    "models": "ids listed by /v1/models",
}
BEHAVIOR_KEYS = frozenset(BEHAVIOR_HELP)
_NUMBER_KEYS = frozenset({"latency_ms", "chunk_delay_ms"})
_INT_KEYS = frozenset({"tokens", "status", "drop_after_chunks"})
_BOOL_KEYS = frozenset({"malformed", "hang", "drop", "omit_usage"})
_STR_KEYS = frozenset({"content", "error_message", "error_code", "body"})

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
        if key in ("models", "unsupported") and not (
            isinstance(value, list) and all(isinstance(m, str) for m in value)
        ):
            raise ValueError(f"{key} must be a list of strings")
        if key == "unsupported" and not all(p.startswith("/") for p in value):
            raise ValueError("unsupported paths must start with /")
        if key == "usage" and not isinstance(value, dict):
            raise ValueError("usage must be a JSON object")
        if key == "tool_call" and not (
            isinstance(value, dict)
            and isinstance(value.get("name"), str)
            and isinstance(value.get("arguments", ""), str)
            and set(value) <= {"name", "arguments"}
        ):
            raise ValueError('tool_call must be {"name": str, "arguments": str}')
    return dict(obj)


def error_json(message: str, kind: str, code: str | None) -> bytes:
    return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """Build an OpenAI-style error object so SDKs map it to their usual exceptions."""
    kind, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return error_json(message, kind, code or default_code)


def unknown_url_body(method: bytes, path: bytes) -> bytes:
    """What OpenAI answers for a path it does not serve."""
    message = f"Invalid URL ({method.decode('latin-1')} {path.decode('latin-1')})"
    return error_json(message, "invalid_request_error", "unknown_url")


def is_unsupported(path: bytes, paths: list[str]) -> bool:
    """``path`` is one of ``paths`` or below one of them (``/v1/responses`` covers its ids)."""
    text = path.decode("latin-1")
    return any(text == p or text.startswith(p.rstrip("/") + "/") for p in paths)


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
        self.stored: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def keep_response(self, response: dict[str, Any]) -> None:
        """Store a Responses API answer for GET/DELETE, forgetting the oldest beyond the limit."""
        self.stored[response["id"]] = response
        if len(self.stored) > STORED_RESPONSES:
            self.stored.popitem(last=False)

    def next_behavior(self) -> dict[str, Any]:
        """One-shot behaviors win, in order, before the default applies again."""
        return self.queue.popleft() if self.queue else self.behavior

    def default_pieces(self, n: int) -> tuple[list[str], str]:
        """Deterministic words for ``n`` tokens, cached because every request asks for them."""
        cached = self._pieces_cache.get(n)
        if cached is None:
            words = ["Hello", "from", *self.name.split()][:n]
            words += [FILLER[i % len(FILLER)] for i in range(n - len(words))]
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
                body = loads(raw_body) if raw_body else None
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
            "stored_responses": len(self.stored),
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
            return
        builder = LLM_ENDPOINTS.get(path)
        if builder is not None:
            if request.method == b"POST":
                self._llm(request, builder)
            else:
                self._send(request, 405, error_body(405, "use POST"))
        elif path == MODELS_PATH or path.startswith(MODELS_PATH + b"/"):
            if request.method == b"GET":
                self._models(request)
            else:
                self._send(request, 405, error_body(405, "use GET"))
        elif path.startswith(RESPONSES_PATH + b"/"):
            if request.method in (b"GET", b"DELETE"):
                self._stored_response(request)
            else:
                self._send(request, 405, error_body(405, "use GET or DELETE"))
        else:
            self._send(request, 404, unknown_url_body(request.method, path))

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

    def _llm(self, request: _Request, builder: Builder) -> None:
        """An LLM call: consumes a one-shot behavior, counts as a request, answers or misbehaves."""
        state = self.state
        state.requests += 1
        state.last_request = (request.path, request.headers, request.body)
        behavior = state.next_behavior()
        unsupported = behavior.get("unsupported")
        if unsupported is not None and is_unsupported(request.path, unsupported):
            state.completed += 1
            self._send(request, 404, unknown_url_body(request.method, request.path))
            return
        try:
            body = loads(request.body)
        except ValueError:
            body = None
        answer: Answer | None = None
        problem = None
        if isinstance(body, dict):
            try:
                answer = builder(state, body, behavior)
            except BadRequestError as exc:
                problem = str(exc)
        else:
            problem = "request body must be a JSON object"
        status = behavior.get("status", 200)
        if status != 200 or answer is None:

            def build(keep_alive: bool) -> bytes:
                return self._error_response(request, behavior, problem, status)

            self._answer(request, behavior, build, None, llm=True)
        elif answer.stream:
            self._answer(request, behavior, None, answer, llm=True)
        else:
            malformed = behavior.get("malformed", False)

            def build(keep_alive: bool) -> bytes:
                if "body" in behavior:
                    payload = behavior["body"].encode()
                else:
                    payload = _MALFORMED_BODY if malformed else answer.payload(behavior)
                return self._response(request, 200, payload)

            self._answer(request, behavior, build, None, llm=True)

    def _error_response(
        self, request: _Request, behavior: dict[str, Any], problem: str | None, status: int
    ) -> bytes:
        extra = b""
        if status != 200:
            message = behavior.get("error_message") or f"fake upstream error {status}"
            retry_after = behavior.get("retry_after")
            if retry_after is not None:
                extra = f"retry-after: {retry_after}\r\n".encode()
            body = error_body(status, message, behavior.get("error_code"))
        else:
            status, body = 400, error_body(400, problem or "bad request")
        return self._response(request, status, body, extra=extra)

    def _side(self, request: _Request, answer: Callable[[], tuple[int, bytes]]) -> None:
        """A non-LLM endpoint: honours the default behavior's faults, never a one-shot."""
        behavior = self.state.behavior
        unsupported = behavior.get("unsupported")
        if unsupported is not None and is_unsupported(request.path, unsupported):
            self._send(request, 404, unknown_url_body(request.method, request.path))
            return

        def build(keep_alive: bool) -> bytes:
            status = behavior.get("status", 200)
            if status != 200:
                return self._error_response(request, behavior, None, status)
            if behavior.get("malformed"):
                return self._response(request, 200, _MALFORMED_BODY)
            return self._response(request, *answer())

        self._answer(request, behavior, build, None, llm=False)

    def _models(self, request: _Request) -> None:
        models = self.state.behavior.get("models", self.state.models)
        owner = self.state.name
        wanted = request.path[len(MODELS_PATH) + 1 :].decode("utf-8", "replace")

        def entry(model: str) -> dict[str, Any]:
            return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": owner}

        def answer() -> tuple[int, bytes]:
            if not wanted:
                return 200, dumps({"object": "list", "data": [entry(m) for m in models]})
            if wanted in models:
                return 200, dumps(entry(wanted))
            message = f"The model '{wanted}' does not exist"
            return 404, error_body(404, message, "model_not_found")

        self._side(request, answer)

    def _stored_response(self, request: _Request) -> None:
        """``GET``/``DELETE /v1/responses/<id>`` on the responses created with ``store``."""
        stored = self.state.stored
        method = request.method
        response_id = unquote(request.path[len(RESPONSES_PATH) + 1 :].decode("latin-1"))

        def answer() -> tuple[int, bytes]:
            if "/" in response_id:
                return 404, unknown_url_body(method, request.path)
            if response_id not in stored:
                message = f"Response with id '{response_id}' not found."
                return 404, error_json(message, "invalid_request_error", None)
            if method == b"GET":
                return 200, dumps_any(stored[response_id])
            del stored[response_id]
            return 200, dumps({"id": response_id, "object": "response.deleted", "deleted": True})

        self._side(request, answer)

    def _answer(
        self,
        request: _Request,
        behavior: dict[str, Any],
        build: Build | None,
        stream: Answer | None,
        llm: bool,
    ) -> None:
        """Apply hang/latency/drop, then send the built response or the stream."""
        self.inflight = True
        if behavior.get("hang"):
            return
        latency = behavior.get("latency_ms", 0) / 1000
        if latency > 0 or stream is not None:
            self.task = self.loop.create_task(
                self._answer_later(request, behavior, build, stream, llm, latency)
            )
            return
        if behavior.get("drop"):
            self._close()
            return
        assert build is not None
        self._write(build(request.keep_alive))
        if llm:
            self.state.completed += 1
        self._done(request)

    async def _answer_later(
        self,
        request: _Request,
        behavior: dict[str, Any],
        build: Build | None,
        stream: Answer | None,
        llm: bool,
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
        if llm:
            self.state.completed += 1
        self._done(request)
        self._run_pending()

    async def _stream(self, request: _Request, behavior: dict[str, Any], answer: Answer) -> bool:
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
        events = answer.events(behavior)
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
            # stdlib json keeps integers beyond 64 bits exact, e.g. in a ``usage`` override
            payload = json.loads(request.body) if request.body.strip() else {}
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
        self._send(request, 200, dumps_any(result))


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


HELP = """\
A fake OpenAI-compatible upstream: prints "LISTENING <port>", serves until SIGTERM/SIGINT.
Try the platform offline: python -m tests.fake_upstream --port 9000 --name demo, then point a
provider at http://127.0.0.1:9000/v1.
"""

ENDPOINTS_HELP = """\
endpoints:
  POST /v1/chat/completions     chat, streaming or not; n, response_format, tools/tool_choice
  POST /v1/completions          legacy completions, streaming or not; prompt(s), n, max_tokens
  POST /v1/embeddings           deterministic unit vectors; dimensions, encoding_format
  POST /v1/responses            Responses API, streaming or not; stored unless store is false
  GET|DELETE /v1/responses/ID   a stored response
  GET /v1/models[/ID]           the model list
  /_control/behavior (GET, POST), /_control/enqueue, /_control/reset, /_control/stats

behavior keys (POST /_control/behavior or /_control/enqueue; see tests/fake_upstream):
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point used by ``python -m tests.fake_upstream``."""
    keys = "".join(f"  {key:<19}{text}\n" for key, text in BEHAVIOR_HELP.items())
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_upstream",
        description=HELP,
        epilog=ENDPOINTS_HELP + keys,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
