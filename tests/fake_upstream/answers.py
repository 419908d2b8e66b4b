"""What the fake's LLM endpoints answer, computed once per request before any delay.

Each builder (``ChatAnswer`` or a ``build_*`` function) takes the server state, the parsed JSON
body (a dict) and the behavior of the request, and raises ``BadRequestError`` (the request gets a
400) or returns an answer with ``stream`` (bool), ``payload(behavior)`` (the non-streaming body)
and ``events(behavior)`` (every SSE event of the stream, in order). The transport in
``server.py`` applies delays and faults.
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .server import ServerState

try:
    import orjson

    dumps: Callable[[Any], bytes] = orjson.dumps
    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads


def dumps_any(obj: Any) -> bytes:
    """Like ``dumps``, but also for what orjson refuses (integers beyond 64 bits in overrides)."""
    try:
        return dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
MAX_N = 128
DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 65536

_PIECE = re.compile(r"\s*\S+")
_ARGUMENT_PIECE = re.compile(r"[^,:]*[,:]|[^,:]+")
_JSON_FORMATS = frozenset({"json_object", "json_schema"})
_SAMPLES: dict[Any, Any] = {
    "string": "lorem",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "null": None,
    "array": [],
}

DONE_EVENT = b"data: [DONE]\n\n"
_MALFORMED_CHAT_EVENT = b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": \n\n'
_MALFORMED_COMPLETION_EVENT = b'data: {"id": "cmpl-malformed", "choices": [{"text": \n\n'
_MALFORMED_RESPONSE_EVENT = (
    b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": \n\n'
)


class BadRequestError(ValueError):
    """The request body is not what the endpoint accepts; the message goes in the 400 body."""


class Answer(Protocol):
    stream: bool

    def payload(self, behavior: dict[str, Any]) -> bytes: ...

    def events(self, behavior: dict[str, Any]) -> list[bytes]: ...


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cap(value: Any) -> int | None:
    return value if is_int(value) and value >= 0 else None


def _bad_n(n: Any) -> bool:
    return n is not None and not (is_int(n) and 1 <= n <= MAX_N)


def count_words(messages: list[Any]) -> int:
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


def generate_text(
    state: ServerState, behavior: dict[str, Any], cap: int | None, json_mode: bool = False
) -> tuple[list[str], str, int, str]:
    """Pieces to stream, full text, token count and finish reason of a text answer."""
    finish_reason = "stop"
    override = behavior.get("content")
    if override is not None:
        pieces = _PIECE.findall(override)
        if cap is not None and cap < len(pieces):
            pieces = pieces[:cap]
            finish_reason = "length"
            content = "".join(pieces)
        else:
            content = override
            tail = override[len("".join(pieces)) :]
            if tail:
                pieces = [*pieces[:-1], pieces[-1] + tail] if pieces else [tail]
        return pieces, content, len(content.split()), finish_reason
    tokens = behavior.get("tokens", state.tokens)
    if cap is not None and cap < tokens:
        tokens = cap
        finish_reason = "length"
    pieces, content = state.default_pieces(tokens)
    if json_mode:
        content = '{"answer":' + json.dumps(content, ensure_ascii=False) + "}"
        pieces = _PIECE.findall(content)
        tokens = len(pieces)
    return pieces, content, tokens, finish_reason


def argument_pieces(arguments: str) -> list[str]:
    """Stream pieces of tool-call arguments: each ends after a ``,`` or ``:``."""
    return _ARGUMENT_PIECE.findall(arguments)


def _sample(schema: Any, root: Any, depth: int = 0) -> Any:
    """A value that satisfies a simple JSON schema, so strict tool parsers accept the call."""
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for key in ref[2:].split("/"):
            target = target.get(key) if isinstance(target, dict) else None
        return _sample(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _sample(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {key: _sample(value, root, depth + 1) for key, value in properties.items()}
    return _SAMPLES.get(kind, "lorem")


def sample_arguments(parameters: Any) -> str:
    value = _sample(parameters, parameters) if isinstance(parameters, dict) else {}
    return json.dumps(value if isinstance(value, dict) else {}, separators=(",", ":"))


def pick_tool_call(
    behavior: dict[str, Any], tools: Any, tool_choice: Any, nested: bool
) -> tuple[str, str] | None:
    """``(name, arguments)`` when the answer is a tool call, else None.

    The ``tool_call`` behavior forces one; otherwise a request offering function tools gets one
    when ``tool_choice`` is ``"required"`` (the first function) or names a function. ``nested``
    is the chat shape (``{"type": "function", "function": {"name": ...}}``), else the Responses
    shape (``{"type": "function", "name": ...}``).
    """
    forced = behavior.get("tool_call")
    if forced is not None:
        return forced["name"], forced.get("arguments", "{}")
    if not isinstance(tools, list) or not tools:
        return None
    functions: list[tuple[str, Any]] = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            spec = tool.get("function") if nested else tool
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                functions.append((spec["name"], spec.get("parameters")))
    if tool_choice == "required":
        if not functions:
            return None
        name, parameters = functions[0]
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        spec = tool_choice.get("function") if nested else tool_choice
        requested = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(requested, str):
            return None
        name = requested
        parameters = next((p for n, p in functions if n == name), None)
    else:
        return None
    return name, sample_arguments(parameters)


def with_usage(obj: dict[str, Any], usage: dict[str, Any], behavior: dict[str, Any]) -> bytes:
    """Serialize ``obj`` with ``usage`` (overridden by the ``usage`` behavior) unless omitted."""
    if behavior.get("omit_usage"):
        return dumps(obj)
    override = behavior.get("usage")
    obj["usage"] = usage
    if override is None:
        return dumps(obj)
    usage.update(override)
    return dumps_any(obj)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


_CHAT_COMPLETION = (
    b'{"id":%s,"object":"chat.completion","created":%d,"model":%s,"choices":[{"index":0,'
    b'"message":{"role":"assistant","content":%s,"refusal":null},"logprobs":null,'
    b'"finish_reason":%s}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}'
)


class ChatAnswer:
    """``POST /v1/chat/completions``: text, JSON text or a tool call, in ``n`` choices."""

    __slots__ = (
        "call",
        "completion_tokens",
        "content",
        "finish_reason",
        "id",
        "include_usage",
        "model",
        "n",
        "pieces",
        "prompt_tokens",
        "stream",
    )

    def __init__(self, state: ServerState, body: dict[str, Any], behavior: dict[str, Any]) -> None:
        if not isinstance(body.get("model"), str):
            raise BadRequestError("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequestError("'messages' must be a list")
        n = body.get("n")
        if n is None:
            n = 1
        elif type(n) is not int or not 1 <= n <= MAX_N:
            raise BadRequestError(f"'n' must be an integer from 1 to {MAX_N}")
        call = None
        if "tool_call" in behavior or "tools" in body:
            call = pick_tool_call(behavior, body.get("tools"), body.get("tool_choice"), True)
        state.seq += 1
        self.id = f"chatcmpl-{state.name}-{state.seq}"
        self.call: tuple[str, str, str] | None = None
        if call is not None:
            name, arguments = call
            self.call = (f"call_{state.name}_{state.seq}", name, arguments)
            self.pieces = argument_pieces(arguments)
            self.content = None
            tokens = len(self.pieces)
            self.finish_reason = "tool_calls"
        else:
            cap = body.get("max_completion_tokens")
            if cap is None:
                cap = body.get("max_tokens")
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
                cap = None
            response_format = body.get("response_format")
            if "content" in behavior or response_format is not None:
                json_mode = (
                    isinstance(response_format, dict)
                    and response_format.get("type") in _JSON_FORMATS
                )
                self.pieces, self.content, tokens, self.finish_reason = generate_text(
                    state, behavior, cap, json_mode
                )
            else:  # generate_text's default case, inlined: this is the benchmarks' hot path
                tokens = behavior.get("tokens", state.tokens)
                self.finish_reason = "stop"
                if cap is not None and cap < tokens:
                    tokens = cap
                    self.finish_reason = "length"
                self.pieces, self.content = state.default_pieces(tokens)
        self.n = n
        self.model = body["model"]
        self.completion_tokens = tokens * n
        self.prompt_tokens = count_words(messages)
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def _tool_call(self, index: int, arguments: str) -> dict[str, Any]:
        assert self.call is not None
        call_id, name, _ = self.call
        return {
            "id": f"{call_id}_{index}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    def _message(self, index: int) -> dict[str, Any]:
        if self.call is None:
            return {"role": "assistant", "content": self.content, "refusal": None}
        return {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [self._tool_call(index, self.call[2])],
        }

    def payload(self, behavior: dict[str, Any]) -> bytes:
        if not behavior and self.n == 1 and self.call is None:
            # The benchmarks' hot path, serialized by hand: the same bytes as the dicts below.
            prompt, completion = self.prompt_tokens, self.completion_tokens
            return _CHAT_COMPLETION % (
                dumps(self.id),
                int(time.time()),
                dumps(self.model),
                dumps(self.content),
                dumps(self.finish_reason),
                prompt,
                completion,
                prompt + completion,
            )
        if self.n == 1 and self.call is None:
            message = {"role": "assistant", "content": self.content, "refusal": None}
            choices = [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ]
        else:
            choices = [
                {
                    "index": index,
                    "message": self._message(index),
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
                for index in range(self.n)
            ]
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
        }
        if not behavior:
            obj["usage"] = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            }
            return dumps(obj)
        return with_usage(obj, self.usage(), behavior)

    def events(self, behavior: dict[str, Any]) -> list[bytes]:
        """All SSE events of the stream, in the order OpenAI sends them."""
        created = int(time.time())
        send_usage = self.include_usage and not behavior.get("omit_usage", False)
        # Serialized by hand around the delta: the same bytes orjson gives for the whole chunk.
        head = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s' % (
            dumps(self.id),
            created,
            dumps(self.model),
        )
        head += b',"choices":[{"index":'
        tail = b',"usage":null}\n\n' if send_usage else b"}\n\n"
        n = self.n
        choices = range(n)

        def chunk(index: int, delta: bytes, finish: bytes = b"null") -> bytes:
            return b'%s%d,"delta":%s,"logprobs":null,"finish_reason":%s}]%s' % (
                head,
                index,
                delta,
                finish,
                tail,
            )

        if self.call is None:
            events = [chunk(i, b'{"role":"assistant","content":""}') for i in choices]
            for piece in self.pieces:
                delta = b'{"content":%s}' % dumps(piece)
                if n == 1:
                    events.append(chunk(0, delta))
                else:
                    events.extend(chunk(i, delta) for i in choices)
        else:
            events = []
            for i in choices:
                call = {"index": 0, **self._tool_call(i, "")}
                delta_obj = {"role": "assistant", "content": None, "tool_calls": [call]}
                events.append(chunk(i, dumps(delta_obj)))
            for piece in self.pieces:
                delta = b'{"tool_calls":[{"index":0,"function":{"arguments":%s}}]}' % dumps(piece)
                events.extend(chunk(i, delta) for i in choices)
        finish = dumps(self.finish_reason)
        events.extend(chunk(i, b"{}", finish) for i in choices)
        if behavior.get("malformed"):
            events.insert(1, _MALFORMED_CHAT_EVENT)
        if send_usage:
            final = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [],
            }
            events.append(b"data: " + with_usage(final, self.usage(), behavior) + b"\n\n")
        events.append(DONE_EVENT)
        return events


def _text_inputs(value: Any) -> list[str | list[int]] | None:
    """A string, strings, tokens or token lists as a list of inputs; None if it is none of them."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, str) for item in value):
        return list(value)
    if all(is_int(item) for item in value):
        return [value]
    if all(isinstance(item, list) and item and all(is_int(t) for t in item) for item in value):
        return list(value)
    return None


def _input_tokens(item: str | list[int]) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


class CompletionAnswer:
    """``POST /v1/completions`` (legacy): the same text for every prompt and every ``n``."""

    stream: bool

    def __init__(
        self,
        state: ServerState,
        body: dict[str, Any],
        behavior: dict[str, Any],
        prompts: list[str | list[int]],
        n: int,
    ) -> None:
        state.seq += 1
        self.id = f"cmpl-{state.name}-{state.seq}"
        self.model = body["model"]
        self.pieces, self.text, tokens, self.finish_reason = generate_text(
            state, behavior, _cap(body.get("max_tokens"))
        )
        self.choices = len(prompts) * n
        self.prompt_tokens = sum(_input_tokens(p) for p in prompts)
        self.completion_tokens = tokens * self.choices
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def payload(self, behavior: dict[str, Any]) -> bytes:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "text": self.text,
                    "index": index,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
                for index in range(self.choices)
            ],
        }
        return with_usage(obj, self.usage(), behavior)

    def events(self, behavior: dict[str, Any]) -> list[bytes]:
        created = int(time.time())

        def chunk(index: int, text: str, finish: str | None) -> bytes:
            choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
            return _sse(
                {
                    "id": self.id,
                    "object": "text_completion",
                    "created": created,
                    "model": self.model,
                    "choices": [choice],
                }
            )

        choices = range(self.choices)
        events = [chunk(i, piece, None) for piece in self.pieces for i in choices]
        events.extend(chunk(i, "", self.finish_reason) for i in choices)
        if behavior.get("malformed"):
            events.insert(1, _MALFORMED_COMPLETION_EVENT)
        if self.include_usage and not behavior.get("omit_usage", False):
            final = {
                "id": self.id,
                "object": "text_completion",
                "created": created,
                "model": self.model,
                "choices": [],
            }
            events.append(b"data: " + with_usage(final, self.usage(), behavior) + b"\n\n")
        events.append(DONE_EVENT)
        return events


def build_completion(
    state: ServerState, body: dict[str, Any], behavior: dict[str, Any]
) -> CompletionAnswer:
    if not isinstance(body.get("model"), str):
        raise BadRequestError("you must provide a model parameter")
    prompts = _text_inputs(body.get("prompt"))
    if prompts is None:
        raise BadRequestError("'prompt' must be a string, a list of strings, or tokens")
    n = body.get("n")
    if _bad_n(n):
        raise BadRequestError(f"'n' must be an integer from 1 to {MAX_N}")
    return CompletionAnswer(state, body, behavior, prompts, n or 1)


def embedding_vector(item: str | list[int], dimensions: int) -> array.array[float]:
    """A unit float32 vector derived from a hash of the input, so equal inputs embed equally."""
    if isinstance(item, str):
        seed = b"text:" + item.encode("utf-8", "surrogatepass")
    else:
        seed = b"tokens:" + ",".join(map(str, item)).encode()
    raw = array.array("I", hashlib.shake_256(seed).digest(4 * dimensions))
    values = [x / 2147483648.0 - 1.0 for x in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array.array("f", [v / norm for v in values])


class EmbeddingAnswer:
    """``POST /v1/embeddings``: one deterministic unit vector per input."""

    stream = False

    def __init__(
        self, model: str, inputs: list[str | list[int]], dimensions: int, as_base64: bool
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.dimensions = dimensions
        self.as_base64 = as_base64
        self.tokens = sum(_input_tokens(item) for item in inputs)

    def payload(self, behavior: dict[str, Any]) -> bytes:
        data = []
        for index, item in enumerate(self.inputs):
            vector = embedding_vector(item, self.dimensions)
            embedding: Any
            if self.as_base64:
                if sys.byteorder == "big":  # pragma: no cover - OpenAI sends little-endian
                    vector.byteswap()
                embedding = base64.b64encode(vector.tobytes()).decode("ascii")
            else:
                embedding = vector.tolist()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        obj = {"object": "list", "data": data, "model": self.model}
        usage = {"prompt_tokens": self.tokens, "total_tokens": self.tokens}
        return with_usage(obj, usage, behavior)

    def events(self, behavior: dict[str, Any]) -> list[bytes]:  # pragma: no cover - never streams
        raise NotImplementedError("embeddings do not stream")


def build_embedding(
    state: ServerState, body: dict[str, Any], behavior: dict[str, Any]
) -> EmbeddingAnswer:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("you must provide a model parameter")
    inputs = _text_inputs(body.get("input"))
    if inputs is None or any(item == "" for item in inputs):
        raise BadRequestError(
            "'input' must be a non-empty string, list of strings, tokens or token lists"
        )
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    elif not (is_int(dimensions) and 1 <= dimensions <= MAX_DIMENSIONS):
        raise BadRequestError(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise BadRequestError("'encoding_format' must be 'float' or 'base64'")
    return EmbeddingAnswer(model, inputs, dimensions, encoding == "base64")


def _count_input_items(value: Any) -> int | None:
    """Words in a Responses ``input``: a string, or items (messages, tool outputs...)."""
    if isinstance(value, str):
        return len(value.split())
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return None
    total = count_words(value)
    for item in value:
        output = item.get("output")
        if isinstance(output, str):
            total += len(output.split())
    return total


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


class ResponseAnswer:
    """``POST /v1/responses``: one output item, a message or a function call."""

    def __init__(
        self, state: ServerState, body: dict[str, Any], behavior: dict[str, Any], input_tokens: int
    ) -> None:
        self.state = state
        self.body = body
        state.seq += 1
        suffix = f"{state.name}_{state.seq}"
        self.id = f"resp_{suffix}"
        self.created_at = int(time.time())
        self.stream = body.get("stream") is True
        self.store = body.get("store") is not False
        self.input_tokens = input_tokens
        call = pick_tool_call(behavior, body.get("tools"), body.get("tool_choice"), False)
        self.call = call
        self.incomplete = False
        self.text = ""
        if call is None:
            self.item_id = f"msg_{suffix}"
            text = body.get("text")
            text_format = text.get("format") if isinstance(text, dict) else None
            json_mode = isinstance(text_format, dict) and text_format.get("type") in _JSON_FORMATS
            self.pieces, self.text, self.output_tokens, finish_reason = generate_text(
                state, behavior, _cap(body.get("max_output_tokens")), json_mode
            )
            self.incomplete = finish_reason == "length"
        else:
            self.item_id = f"fc_{suffix}"
            self.call_id = f"call_{suffix}"
            self.pieces = argument_pieces(call[1])
            self.output_tokens = len(self.pieces)

    def _status(self) -> str:
        return "incomplete" if self.incomplete else "completed"

    def item(self, done: bool) -> dict[str, Any]:
        status = self._status() if done else "in_progress"
        if self.call is not None:
            return {
                "id": self.item_id,
                "type": "function_call",
                "status": status,
                "arguments": self.call[1] if done else "",
                "call_id": self.call_id,
                "name": self.call[0],
            }
        return {
            "id": self.item_id,
            "type": "message",
            "status": status,
            "content": [_output_text(self.text)] if done else [],
            "role": "assistant",
        }

    def usage(self, behavior: dict[str, Any]) -> dict[str, Any] | None:
        if behavior.get("omit_usage"):
            return None
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        override = behavior.get("usage")
        if override is not None:
            usage.update(override)
        return usage

    def response(self, done: bool, behavior: dict[str, Any]) -> dict[str, Any]:
        """The response object: in progress (no output yet) or final (output and usage)."""
        body = self.body
        status = self._status() if done else "in_progress"
        reasoning = body.get("reasoning")
        text = body.get("text")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None
            ),
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"],
            "output": [self.item(True)] if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": (
                reasoning if isinstance(reasoning, dict) else {"effort": None, "summary": None}
            ),
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": self.store,
            "temperature": body.get("temperature", 1.0),
            "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self.usage(behavior) if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _final(self, behavior: dict[str, Any]) -> dict[str, Any]:
        final = self.response(True, behavior)
        if self.store:
            self.state.keep_response(final)
        return final

    def payload(self, behavior: dict[str, Any]) -> bytes:
        return dumps_any(self._final(behavior))

    def events(self, behavior: dict[str, Any]) -> list[bytes]:
        """The events OpenAI sends, each with its ``event:`` line and ``sequence_number``."""
        events: list[bytes] = []

        def event(kind: str, **fields: Any) -> None:
            obj = {"type": kind, "sequence_number": len(events), **fields}
            events.append(b"event: %s\ndata: %s\n\n" % (kind.encode(), dumps_any(obj)))

        started = self.response(False, behavior)
        event("response.created", response=started)
        event("response.in_progress", response=started)
        place = {"item_id": self.item_id, "output_index": 0}
        event("response.output_item.added", output_index=0, item=self.item(False))
        if self.call is None:
            event("response.content_part.added", **place, content_index=0, part=_output_text(""))
            for piece in self.pieces:
                event(
                    "response.output_text.delta", **place, content_index=0, delta=piece, logprobs=[]
                )
            event(
                "response.output_text.done", **place, content_index=0, text=self.text, logprobs=[]
            )
            part = _output_text(self.text)
            event("response.content_part.done", **place, content_index=0, part=part)
        else:
            for piece in self.pieces:
                event("response.function_call_arguments.delta", **place, delta=piece)
            name, arguments = self.call
            event("response.function_call_arguments.done", **place, name=name, arguments=arguments)
        event("response.output_item.done", output_index=0, item=self.item(True))
        final = self._final(behavior)
        event(f"response.{final['status']}", response=final)
        if behavior.get("malformed"):
            events.insert(1, _MALFORMED_RESPONSE_EVENT)
        return events


def build_response(
    state: ServerState, body: dict[str, Any], behavior: dict[str, Any]
) -> ResponseAnswer:
    if not isinstance(body.get("model"), str):
        raise BadRequestError("you must provide a model parameter")
    input_tokens = _count_input_items(body.get("input"))
    if input_tokens is None:
        raise BadRequestError("'input' must be a string or a list of input items")
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        input_tokens += len(instructions.split())
    return ResponseAnswer(state, body, behavior, input_tokens)
