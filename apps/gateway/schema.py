"""The OpenAI-compatible API and the SSE streaming API in the OpenAPI schema.

Neither is made of DRF views (``/v1`` is served at the ASGI level, the SSE views are async
Django views), so drf-spectacular cannot see them: this post-processing hook adds their paths,
request bodies and answers to the schema it generates. The bodies follow OpenAI's API; fields
not listed are passed to the provider as they are (``additionalProperties``).
"""

from __future__ import annotations

from typing import Any

from apps.providers.llm import (
    MAX_END_USER_LENGTH,
    MAX_STOP_SEQUENCES,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    PARAM_RANGES,
)

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object", "additionalProperties": True}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


SAMPLING = {
    **{
        param: {"type": "number", "minimum": low, "maximum": high}
        for param, (low, high) in PARAM_RANGES.items()
    },
    "seed": INTEGER,
    "stop": {"oneOf": [STRING, {"type": "array", "items": STRING, "maxItems": MAX_STOP_SEQUENCES}]},
    "user": {
        **STRING,
        "maxLength": MAX_END_USER_LENGTH,
        "description": "The end user the call is made for, recorded with it (no control "
        "characters); an experiment assigns its variant by it.",
    },
    "experiment": {**STRING, "description": "Join this running A/B experiment (name or id)."},
}
TAGS: Schema = {
    "type": "object",
    "maxProperties": MAX_TAGS,
    "additionalProperties": {
        "type": "string",
        "pattern": f"^[A-Za-z0-9_.:/@+-]{{1,{MAX_TAG_VALUE_LENGTH}}}$",
    },
    "description": f"Tags recorded with the call, key to value (or the X-Orchestra-Tags "
    f"header); keys of 1 to {MAX_TAG_KEY_LENGTH} letters, digits, `_`, `.`, `-`.",
}
USAGE = obj({"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER})
MESSAGE = obj(
    {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"oneOf": [STRING, array(OBJECT)], "nullable": True},
        "name": STRING,
        "tool_calls": array(OBJECT),
        "tool_call_id": STRING,
    },
    ("role",),
)
STREAMING = {
    "stream": {"type": "boolean", "description": "Answer as server-sent events."},
    "stream_options": obj({"include_usage": BOOLEAN}),
}

COMPONENTS: dict[str, Schema] = {
    "OpenAIError": obj(
        {
            "error": obj(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": {**STRING, "nullable": True},
                    "code": {**STRING, "nullable": True},
                },
            )
        }
    ),
    "ChatCompletionRequest": obj(
        {
            "model": {**STRING, "description": "A public model name, or provider/model."},
            "messages": {**array(MESSAGE), "minItems": 1},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "n": {"type": "integer", "minimum": 1},
            "tools": array(OBJECT),
            "tool_choice": {"oneOf": [STRING, OBJECT]},
            "response_format": OBJECT,
            **SAMPLING,
            **STREAMING,
        },
        ("model", "messages"),
        additionalProperties=True,
    ),
    "ChatCompletion": obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": INTEGER,
            "model": STRING,
            "choices": array(obj({"index": INTEGER, "message": MESSAGE, "finish_reason": STRING})),
            "usage": USAGE,
        }
    ),
    "CompletionRequest": obj(
        {
            "model": STRING,
            "prompt": {"oneOf": [STRING, array(STRING), array(INTEGER), array(array(INTEGER))]},
            "max_tokens": {"type": "integer", "minimum": 1},
            "n": {"type": "integer", "minimum": 1},
            "echo": BOOLEAN,
            "suffix": STRING,
            **SAMPLING,
            **STREAMING,
        },
        ("model", "prompt"),
        additionalProperties=True,
    ),
    "Completion": obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["text_completion"]},
            "created": INTEGER,
            "model": STRING,
            "choices": array(obj({"index": INTEGER, "text": STRING, "finish_reason": STRING})),
            "usage": USAGE,
        }
    ),
    "EmbeddingRequest": obj(
        {
            "model": STRING,
            "input": {"oneOf": [STRING, array(STRING), array(INTEGER), array(array(INTEGER))]},
            "dimensions": {"type": "integer", "minimum": 1},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "user": STRING,
        },
        ("model", "input"),
        additionalProperties=True,
    ),
    "EmbeddingList": obj(
        {
            "object": {"type": "string", "enum": ["list"]},
            "model": STRING,
            "data": array(
                obj(
                    {
                        "object": STRING,
                        "index": INTEGER,
                        "embedding": {"oneOf": [array(NUMBER), STRING]},
                    }
                )
            ),
            "usage": obj({"prompt_tokens": INTEGER, "total_tokens": INTEGER}),
        }
    ),
    "ResponseRequest": obj(
        {
            "model": STRING,
            "input": {"oneOf": [STRING, array(OBJECT)]},
            "instructions": STRING,
            "max_output_tokens": {"type": "integer", "minimum": 1},
            "tools": array(OBJECT),
            "tool_choice": {"oneOf": [STRING, OBJECT]},
            "text": obj({"format": OBJECT}),
            "store": BOOLEAN,
            "previous_response_id": STRING,
            "metadata": OBJECT,
            **SAMPLING,
            "stream": STREAMING["stream"],
        },
        ("model", "input"),
        additionalProperties=True,
    ),
    "Response": obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["response"]},
            "created_at": INTEGER,
            "model": STRING,
            "status": {"type": "string", "enum": ["completed", "incomplete", "failed"]},
            "output": array(OBJECT),
            "usage": obj(
                {"input_tokens": INTEGER, "output_tokens": INTEGER, "total_tokens": INTEGER}
            ),
        },
        additionalProperties=True,
    ),
    "Model": obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["model"]},
            "created": INTEGER,
            "owned_by": STRING,
            "mode": {
                "type": "string",
                "enum": ["chat", "embedding", "completion", "responses", "other"],
            },
        }
    ),
    "ModelList": obj({"object": {"type": "string", "enum": ["list"]}, "data": array(ref("Model"))}),
    "StreamingChatRequest": obj(
        {
            "messages": {**array(MESSAGE), "minItems": 1},
            "model": STRING,
            "provider": {**STRING, "description": "Pin a provider (alias: backend)."},
            "backend": STRING,
            "max_tokens": {"type": "integer", "minimum": 1},
            "maxTokens": {"type": "integer", "minimum": 1, "description": "Alias of max_tokens."},
            "strategy": STRING,
            "tags": TAGS,
            **SAMPLING,
        },
        ("messages",),
    ),
    "StreamingGenerateRequest": obj(
        {
            "prompt": {"type": "string", "minLength": 1},
            "model": STRING,
            "provider": STRING,
            "backend": STRING,
            "max_tokens": {"type": "integer", "minimum": 1},
            "maxTokens": {"type": "integer", "minimum": 1},
            "strategy": STRING,
            "tags": TAGS,
            **SAMPLING,
        },
        ("prompt",),
    ),
}

ATTRIBUTION_HEADERS = [
    {
        "name": "X-Orchestra-User",
        "in": "header",
        "required": False,
        "schema": {**STRING, "maxLength": MAX_END_USER_LENGTH},
        "description": "The end user the call is made for, where the body has no `user` "
        "(UTF-8, no control characters); recorded with the call.",
    },
    {
        "name": "X-Orchestra-Tags",
        "in": "header",
        "required": False,
        "schema": STRING,
        "description": f"Tags recorded with the call: `team=growth,feature=search`, at most "
        f"{MAX_TAGS}; keys of 1 to {MAX_TAG_KEY_LENGTH} letters, digits, `_`, `.`, `-`; values "
        f"of 1 to {MAX_TAG_VALUE_LENGTH} of those or `:/@+`.",
    },
]
OPENAI_HEADERS = [
    {
        "name": "X-Orchestra-Provider",
        "in": "header",
        "required": False,
        "schema": STRING,
        "description": "Pin a provider by name.",
    },
    {
        "name": "X-Orchestra-Strategy",
        "in": "header",
        "required": False,
        "schema": STRING,
        "description": "A routing strategy for this request (round-robin, least-latency, …).",
    },
    {
        "name": "X-Orchestra-Experiment",
        "in": "header",
        "required": False,
        "schema": STRING,
        "description": "Join this running A/B experiment (name or id), as the body's "
        "`experiment`; the variant is picked by `user` (or the key's user).",
    },
    *ATTRIBUTION_HEADERS,
]
SSE_DESCRIPTION = (
    "Server-sent events: `start` ({streamId, model, timestamp}), `token` ({content, tokenCount})"
    "…, then `done` ({fullText, tokenCount, finishReason, usage, provider, model, callId}) or "
    "`error` ({code, message}). The stream's id is also in `X-Stream-ID`."
)


def _json(schema: Schema, description: str = "") -> Schema:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int, schema: str = "OpenAIError") -> dict[str, Schema]:
    return {str(status): _json(ref(schema), "Error") for status in statuses}


def _llm_post(tag: str, summary: str, request: str, answer: str, streams: bool) -> Schema:
    responses = {"200": _json(ref(answer))}
    if streams:
        responses["200"]["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "With `stream: true`: OpenAI's events."}
        }
    return {
        "post": {
            "tags": [tag],
            "summary": summary,
            "operationId": f"openai_{request[:-7].lower()}",
            "parameters": OPENAI_HEADERS,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            },
            "responses": {**responses, **_errors(400, 401, 403, 404, 429, 502, 503, 504)},
            "security": [{"ApiKey": []}],
        }
    }


def _openai_paths() -> dict[str, Schema]:
    tag = "OpenAI-compatible (/v1)"
    response_id = [{"name": "id", "in": "path", "required": True, "schema": STRING}]
    model_id = [{"name": "id", "in": "path", "required": True, "schema": STRING}]
    return {
        "/v1/chat/completions": _llm_post(
            tag, "Chat completions", "ChatCompletionRequest", "ChatCompletion", True
        ),
        "/v1/completions": _llm_post(
            tag, "Completions (legacy)", "CompletionRequest", "Completion", True
        ),
        "/v1/embeddings": _llm_post(tag, "Embeddings", "EmbeddingRequest", "EmbeddingList", False),
        "/v1/responses": _llm_post(tag, "The Responses API", "ResponseRequest", "Response", True),
        "/v1/responses/{id}": {
            "get": {
                "tags": [tag],
                "summary": "A stored response (where the provider keeps it)",
                "operationId": "openai_response_get",
                "parameters": response_id,
                "responses": {"200": _json(ref("Response")), **_errors(401, 404)},
                "security": [{"ApiKey": []}],
            },
            "delete": {
                "tags": [tag],
                "summary": "Delete a stored response",
                "operationId": "openai_response_delete",
                "parameters": response_id,
                "responses": {"200": _json(OBJECT), **_errors(401, 403, 404)},
                "security": [{"ApiKey": []}],
            },
        },
        "/v1/models": {
            "get": {
                "tags": [tag],
                "summary": "The public models",
                "operationId": "openai_models",
                "responses": {"200": _json(ref("ModelList")), **_errors(401)},
                "security": [{"ApiKey": []}],
            }
        },
        "/v1/models/{id}": {
            "get": {
                "tags": [tag],
                "summary": "One public model",
                "operationId": "openai_model",
                "parameters": model_id,
                "responses": {"200": _json(ref("Model")), **_errors(401, 404)},
                "security": [{"ApiKey": []}],
            }
        },
    }


def _sse_paths() -> dict[str, Schema]:
    tag = "Streaming (SSE)"
    security: list[dict[str, list[str]]] = [{"ApiKey": []}, {"cookieAuth": []}]
    stream_answer = {
        "200": {
            "description": SSE_DESCRIPTION,
            "content": {"text/event-stream": {"schema": STRING}},
        },
        **_errors(400, 401, 403, 404, 429, 502, 503, schema="Error"),
    }

    def stream(summary: str, request: str, operation: str) -> Schema:
        return {
            "post": {
                "tags": [tag],
                "summary": summary,
                "operationId": operation,
                "parameters": ATTRIBUTION_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(request)}},
                },
                "responses": stream_answer,
                "security": security,
            }
        }

    listing = obj(
        {"success": BOOLEAN, "streams": array(OBJECT), "count": INTEGER, "complete": BOOLEAN}
    )
    return {
        "/api/streaming/chat": stream(
            "Stream a chat answer", "StreamingChatRequest", "streaming_chat"
        ),
        "/api/streaming/generate": stream(
            "Stream an answer to a prompt", "StreamingGenerateRequest", "streaming_generate"
        ),
        "/api/streaming/active": {
            "get": {
                "tags": [tag],
                "summary": "Running streams of every web process",
                "operationId": "streaming_active",
                "responses": {"200": _json(listing)},
                "security": security,
            }
        },
        "/api/streaming/statistics": {
            "get": {
                "tags": [tag],
                "summary": "Counts and average time to first token",
                "operationId": "streaming_statistics",
                "responses": {
                    "200": _json(obj({"success": BOOLEAN, "statistics": OBJECT})),
                    **_errors(503, schema="Error"),
                },
                "security": security,
            }
        },
        "/api/streaming/{stream_id}": {
            "delete": {
                "tags": [tag],
                "summary": "Cancel a stream (its owner or an operator)",
                "operationId": "streaming_cancel",
                "parameters": [
                    {"name": "stream_id", "in": "path", "required": True, "schema": STRING}
                ],
                "responses": {"202": _json(OBJECT), **_errors(403, 404, 503, schema="Error")},
                "security": security,
            }
        },
    }


def add_openai_and_streaming(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.update(COMPONENTS)
    components.setdefault(
        "Error",
        obj({"error": obj({"code": STRING, "message": STRING, "details": OBJECT})}),
    )
    result["paths"].update(_openai_paths())
    result["paths"].update(_sse_paths())
    return result
