"""The fake's embeddings, legacy completions, Responses API and chat extras, seen by the SDK."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam
from openai.types.chat.completion_create_params import ResponseFormat
from openai.types.responses import FunctionToolParam, ResponseInputParam

from tests.fake_upstream import FakeUpstream
from tests.fake_upstream.server import STORED_RESPONSES, ServerState
from tests.fake_upstream_tests.helpers import DEFAULT_CONTENT, MESSAGES, make_client

WEATHER: dict[str, object] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
WEATHER_ARGUMENTS = {"city": "lorem", "unit": "celsius", "days": 1}
CHAT_TOOLS: list[ChatCompletionFunctionToolParam] = [
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
]
RESPONSE_TOOLS: list[FunctionToolParam] = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True},
]
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 8,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


# Embeddings


def test_embeddings_float_base64_and_determinism(fake: FakeUpstream) -> None:
    client = make_client(fake)
    inputs = ["a b", "c", "a b"]
    floats = client.embeddings.create(model="emb", input=inputs, encoding_format="float")
    assert floats.object == "list"
    assert floats.model == "emb"
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert all(d.object == "embedding" and len(d.embedding) == 8 for d in floats.data)
    vectors = [d.embedding for d in floats.data]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert floats.usage.prompt_tokens == 5
    assert floats.usage.total_tokens == 5

    # The SDK asks for base64 by default and decodes it: the same float32 values.
    default = client.embeddings.create(model="emb", input=inputs)
    assert fake.stats()["last_request"]["body"]["encoding_format"] == "base64"
    assert [d.embedding for d in default.data] == vectors

    raw = client.embeddings.create(model="emb", input="c", encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == vectors[1]

    wide = client.embeddings.create(model="emb", input="c", dimensions=32, encoding_format="float")
    assert len(wide.data[0].embedding) == 32


def test_embeddings_token_inputs(fake: FakeUpstream) -> None:
    client = make_client(fake)
    one = client.embeddings.create(model="emb", input=[1, 2, 3], encoding_format="float")
    assert len(one.data) == 1
    assert one.usage.prompt_tokens == 3
    many = client.embeddings.create(model="emb", input=[[1, 2, 3], [4]], encoding_format="float")
    assert [d.index for d in many.data] == [0, 1]
    assert many.data[0].embedding == one.data[0].embedding
    assert many.data[1].embedding != one.data[0].embedding
    text = client.embeddings.create(model="emb", input="1 2 3", encoding_format="float")
    assert text.data[0].embedding != one.data[0].embedding


@pytest.mark.parametrize(
    "body",
    [
        {"input": "hi"},
        {"model": 3, "input": "hi"},
        {"model": "emb"},
        {"model": "emb", "input": ""},
        {"model": "emb", "input": []},
        {"model": "emb", "input": ["a", 1]},
        {"model": "emb", "input": [[1], []]},
        {"model": "emb", "input": "hi", "dimensions": 0},
        {"model": "emb", "input": "hi", "encoding_format": "hex"},
    ],
)
def test_embeddings_invalid_requests(fake: FakeUpstream, body: dict[str, Any]) -> None:
    reply = fake.request("POST", "/v1/embeddings", body)
    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert fake.stats()["requests"] == 1


# Legacy completions


def test_completions_non_streaming(fake: FakeUpstream) -> None:
    client = make_client(fake)
    completion = client.completions.create(model="m", prompt="say hi", n=2, max_tokens=3)
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == "m"
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.text == "Hello from a" for c in completion.choices)
    assert all(c.finish_reason == "length" and c.logprobs is None for c in completion.choices)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == 8

    several = client.completions.create(model="m", prompt=["one", "two three"])
    assert [c.text for c in several.choices] == [DEFAULT_CONTENT] * 2
    assert [c.finish_reason for c in several.choices] == ["stop", "stop"]
    assert several.usage is not None and several.usage.prompt_tokens == 3


def test_completions_streaming(fake: FakeUpstream) -> None:
    client = make_client(fake)
    chunks = list(
        client.completions.create(
            model="m", prompt="say hi", stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert texts[:2] == ["Hello", " from"]
    assert "".join(texts) == DEFAULT_CONTENT
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish == [None] * 8 + ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    plain = list(client.completions.create(model="m", prompt="say hi", stream=True))
    assert all(c.usage is None and c.choices for c in plain)
    assert fake.wait_for(lambda s: s["streams_completed"] == 2)["by_path"] == {"/v1/completions": 2}


def test_completions_invalid_prompt(fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError):
        # Deliberately malformed: the SDK's types rightly reject a list of objects as a prompt.
        make_client(fake).completions.create(model="m", prompt=[{"no": 1}])  # type: ignore[arg-type]
    assert (
        fake.request("POST", "/v1/completions", {"model": "m", "prompt": "x", "n": 0}).status == 400
    )


# Responses API


def test_responses_non_streaming(fake: FakeUpstream) -> None:
    client = make_client(fake)
    response = client.responses.create(model="m", input="hello there", instructions="be brief")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "m"
    assert response.instructions == "be brief"
    assert response.output_text == DEFAULT_CONTENT
    message = response.output[0]
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text"
    assert message.content[0].annotations == []
    assert response.usage is not None
    assert response.usage.input_tokens == 4
    assert response.usage.output_tokens == 8
    assert response.usage.total_tokens == 12
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.tools == [] and response.tool_choice == "auto"
    assert response.parallel_tool_calls is True

    items: ResponseInputParam = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "one two three"}]},
    ]
    listed = client.responses.create(model="m", input=items, max_output_tokens=3)
    assert listed.status == "incomplete"
    assert listed.incomplete_details is not None
    assert listed.incomplete_details.reason == "max_output_tokens"
    assert listed.output_text == "Hello from a"
    assert listed.usage is not None and listed.usage.input_tokens == 5


def test_responses_streaming_events(fake: FakeUpstream) -> None:
    client = make_client(fake)
    events = list(client.responses.create(model="m", input="hello", stream=True))
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(TEXT_EVENTS)))
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and completed.type == "response.completed"
    assert created.response.status == "in_progress" and created.response.output == []
    assert created.response.id == completed.response.id
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == DEFAULT_CONTENT
    assert completed.response.output_text == DEFAULT_CONTENT
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 8

    # Each event is sent with an ``event:`` line naming its type, and no ``[DONE]``.
    raw = fake.request("POST", "/v1/responses", {"model": "m", "input": "x", "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    sse = raw.events()
    assert [name for name, _ in sse] == [json.loads(data)["type"] for _, data in sse]
    assert [name for name, _ in sse] == TEXT_EVENTS

    with client.responses.stream(model="m", input="hello") as stream:
        assert stream.get_final_response().output_text == DEFAULT_CONTENT


def test_responses_function_call(fake: FakeUpstream) -> None:
    client = make_client(fake)
    response = client.responses.create(model="m", input="weather?", tools=RESPONSE_TOOLS)
    assert response.output[0].type == "message", "tool_choice auto answers with text"

    fake.configure(tool_call={"name": "get_weather", "arguments": '{"city": "Paris"}'})
    called = client.responses.create(model="m", input="weather?", tools=RESPONSE_TOOLS)
    call = called.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.arguments == '{"city": "Paris"}'
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    assert call.status == "completed"
    assert called.output_text == ""

    events = list(client.responses.create(model="m", input="w", tools=RESPONSE_TOOLS, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert deltas == ['{"city":', ' "Paris"}']
    added = events[2]
    assert added.type == "response.output_item.added"
    assert added.item.type == "function_call" and added.item.arguments == ""

    # Without the behavior, tool_choice "required" calls the function with schema-valid arguments.
    fake.configure()
    with client.responses.stream(
        model="m", input="w", tools=RESPONSE_TOOLS, tool_choice="required"
    ) as stream:
        final = stream.get_final_response()
    parsed = final.output[0]
    assert parsed.type == "function_call"
    assert parsed.parsed_arguments == WEATHER_ARGUMENTS


def test_responses_retrieve_delete_and_store(fake: FakeUpstream) -> None:
    client = make_client(fake)
    created = client.responses.create(model="m", input="hello")
    retrieved = client.responses.retrieve(created.id)
    assert retrieved.id == created.id
    assert retrieved.output_text == DEFAULT_CONTENT
    streamed = list(client.responses.create(model="m", input="x", stream=True))[-1]
    assert streamed.type == "response.completed"
    assert client.responses.retrieve(streamed.response.id).status == "completed"
    assert fake.stats()["stored_responses"] == 2

    deleted = fake.request("DELETE", f"/v1/responses/{created.id}")
    assert deleted.status == 200
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(created.id)
    assert info.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    client.responses.delete(streamed.response.id)  # the SDK's delete returns nothing

    unstored = client.responses.create(model="m", input="hello", store=False)
    # This SDK's Response model does not declare ``store``; the echoed field is kept as an extra.
    assert unstored.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    stats = fake.stats()
    assert stats["stored_responses"] == 0
    assert stats["requests"] == 3, "retrieve and delete are not LLM requests"


def test_stored_responses_are_bounded() -> None:
    state = ServerState()
    for index in range(STORED_RESPONSES + 5):
        state.keep_response({"id": f"r{index}"})
    assert len(state.stored) == STORED_RESPONSES
    assert "r4" not in state.stored and "r5" in state.stored
    state.reset()
    assert not state.stored


def test_responses_invalid_requests(fake: FakeUpstream) -> None:
    client = make_client(fake)
    with pytest.raises(openai.BadRequestError):
        # Deliberately malformed: no overload of the SDK's create accepts a number as input.
        client.responses.create(model="m", input=42)  # type: ignore[call-overload]
    assert fake.request("POST", "/v1/responses", {"input": "x"}).status == 400
    assert fake.request("POST", "/v1/responses", {"model": "m", "input": ["x"]}).status == 400
    assert fake.request("PUT", "/v1/responses/resp_1").status == 405
    assert fake.request("GET", "/v1/responses").status == 405


# Chat completions: n, JSON formats, tool calls


def test_chat_n_choices(fake: FakeUpstream) -> None:
    client = make_client(fake)
    completion = client.chat.completions.create(model="m", messages=MESSAGES, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == DEFAULT_CONTENT for c in completion.choices)
    assert completion.usage is not None and completion.usage.completion_tokens == 24
    stream = client.chat.completions.create(model="m", messages=MESSAGES, n=2, stream=True)
    texts = ["", ""]
    finishes: list[str | None] = [None, None]
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finishes[choice.index] = choice.finish_reason or finishes[choice.index]
    assert texts == [DEFAULT_CONTENT] * 2
    assert finishes == ["stop", "stop"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=MESSAGES, n=0)


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
    ],
)
def test_chat_json_formats(fake: FakeUpstream, response_format: ResponseFormat) -> None:
    client = make_client(fake)
    completion = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=response_format
    )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == {"answer": DEFAULT_CONTENT}
    capped = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=response_format, max_tokens=2
    )
    assert json.loads(capped.choices[0].message.content or "") == {"answer": "Hello from"}
    assert capped.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=response_format, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == content


def test_chat_tool_calls(fake: FakeUpstream) -> None:
    client = make_client(fake)
    auto = client.chat.completions.create(model="m", messages=MESSAGES, tools=CHAT_TOOLS)
    assert auto.choices[0].message.tool_calls is None

    required = client.chat.completions.create(
        model="m", messages=MESSAGES, tools=CHAT_TOOLS, tool_choice="required"
    )
    choice = required.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].type == "function" and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_time"
    assert calls[0].function.arguments == "{}"

    named = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        n=2,
    )
    assert [c.index for c in named.choices] == [0, 1]
    ids = set()
    for choice in named.choices:
        calls = choice.message.tool_calls
        assert calls is not None and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == WEATHER_ARGUMENTS
        ids.add(calls[0].id)
    assert len(ids) == 2

    fake.configure(tool_call={"name": "lookup", "arguments": '{"q": "x", "n": 2}'})
    forced = client.chat.completions.create(model="m", messages=MESSAGES)
    calls = forced.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert (calls[0].function.name, calls[0].function.arguments) == ("lookup", '{"q": "x", "n": 2}')


def test_chat_tool_call_streaming(fake: FakeUpstream) -> None:
    client = make_client(fake)
    fake.configure(tool_call={"name": "lookup", "arguments": '{"q": "x", "n": 2}'})
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    assert first.tool_calls is not None
    head = first.tool_calls[0]
    assert head.index == 0 and head.id is not None and head.type == "function"
    assert head.function is not None
    assert (head.function.name, head.function.arguments) == ("lookup", "")
    pieces = []
    for chunk in chunks[1:-1]:
        calls = chunk.choices[0].delta.tool_calls
        assert calls is not None and calls[0].id is None and calls[0].function is not None
        pieces.append(calls[0].function.arguments)
    assert pieces == ['{"q":', ' "x",', ' "n":', " 2}"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    fake.configure()
    with client.chat.completions.stream(
        model="m", messages=MESSAGES, tools=CHAT_TOOLS, tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    final_calls = final.choices[0].message.tool_calls
    assert final_calls is not None and final_calls[0].function.name == "get_time"
    assert final.choices[0].finish_reason == "tool_calls"


class Weather(pydantic.BaseModel):
    city: str
    unit: str
    days: int


def test_chat_strict_pydantic_tool_parses(fake: FakeUpstream) -> None:
    completion = make_client(fake).chat.completions.parse(
        model="m",
        messages=MESSAGES,
        tools=[openai.pydantic_function_tool(Weather)],
        tool_choice="required",
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.parsed_arguments == Weather(city="lorem", unit="lorem", days=1)
