"""The rest of the OpenAI API through ``/v1``, with the unmodified ``openai`` SDK: embeddings,
legacy completions and the Responses API (on a provider that has it, and translated to chat
completions on one that does not), each routed, failed over and recorded like chat."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from apps.providers.models import Endpoint, LlmModel, ModelMode, Provider
from apps.providers.services import provider_sync_models
from tests.support.providers import deploy

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture
def embedders(two_providers) -> dict[str, LlmModel]:
    return {
        name: deploy(
            provider,
            "fake-embed",
            aliases=["embed"],
            mode=ModelMode.EMBEDDING,
            input_price_per_million=Decimal("0.1"),
        )
        for name, provider in two_providers.items()
    }


def only(providers: dict[str, Provider], name: str) -> None:
    """Leave one provider enabled (through the model: signals tell running servers)."""
    for other, provider in providers.items():
        provider.enabled = other == name
        provider.save()


def test_embeddings_are_routed_recorded_and_priced(embedders, gateway, recorded_calls, upstream_a):
    answer = gateway.embeddings.create(model="embed", input=["one two three", "four"])
    assert [len(item.embedding) for item in answer.data] == [8, 8]
    assert answer.usage.prompt_tokens == 4
    (call,) = recorded_calls(1)
    assert call.endpoint == Endpoint.EMBEDDINGS and call.provider_name == "a"
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (4, 0, False)
    assert call.cost == Decimal("0.1") * 4 / 1_000_000
    assert upstream_a.stats()["last_request"]["path"] == "/v1/embeddings"


def test_embeddings_fail_over(embedders, gateway, upstream_a, recorded_calls):
    upstream_a.configure(status=503)
    assert len(gateway.embeddings.create(model="embed", input="x").data) == 1
    (call,) = recorded_calls(1)
    assert call.provider_name == "b" and [a.status for a in call.attempts.all()][-1] == "success"


def test_an_embedding_model_does_not_serve_chat_and_a_chat_model_no_embeddings(embedders, gateway):
    with pytest.raises(openai.NotFoundError, match="does not serve chat"):
        gateway.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="does not serve embeddings"):
        gateway.embeddings.create(model="chat", input="x")


def test_legacy_completions_whole_and_streamed(two_providers, gateway, recorded_calls):
    answer = gateway.completions.create(model="chat", prompt="say something", max_tokens=3)
    assert answer.choices[0].text and answer.choices[0].finish_reason == "length"
    streamed = gateway.completions.create(model="chat", prompt="say something", stream=True)
    pieces = [choice.text for chunk in streamed for choice in chunk.choices]
    assert "".join(pieces).startswith("Hello from a")
    calls = recorded_calls(2)
    assert {call.endpoint for call in calls} == {Endpoint.COMPLETIONS}
    assert [call.output_tokens for call in calls] == [3, 8]
    assert all(not call.tokens_estimated for call in calls)


def test_legacy_completions_fail_over(two_providers, gateway, upstream_a):
    upstream_a.configure(status=500)
    assert "Hello from b" in gateway.completions.create(model="chat", prompt="x").choices[0].text


@pytest.fixture
def responses_providers(two_providers, upstream_b) -> dict[str, Provider]:
    """Provider a has the Responses API; b is a chat-only server (translated for it)."""
    providers = two_providers
    providers["a"].responses_api = True
    providers["a"].save()
    providers["b"].responses_api = False
    providers["b"].save()
    upstream_b.configure(unsupported=["/v1/responses"])
    return providers


@pytest.mark.parametrize("native", [True, False], ids=["native", "translated"])
def test_responses_whole(native, responses_providers, gateway, recorded_calls, upstream_b):
    only(responses_providers, "a" if native else "b")
    answer = gateway.responses.create(
        model="chat", input="say something", instructions="be brief", max_output_tokens=5
    )
    assert answer.status == "incomplete" and answer.output_text.startswith("Hello from")
    assert answer.usage is not None and answer.usage.output_tokens == 5
    (call,) = recorded_calls(1)
    assert call.endpoint == Endpoint.RESPONSES and call.provider_name == ("a" if native else "b")
    assert call.output_tokens == 5 and call.input_tokens > 0 and call.cost > 0
    if not native:
        sent = upstream_b.stats()["last_request"]
        assert sent["path"] == "/v1/chat/completions"
        assert sent["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["body"]["max_tokens"] == 5


@pytest.mark.parametrize("native", [True, False], ids=["native", "translated"])
def test_responses_streamed(native, responses_providers, gateway, recorded_calls):
    only(responses_providers, "a" if native else "b")
    events = list(gateway.responses.create(model="chat", input="say something", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("Hello from") and events[-1].response.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    (call,) = recorded_calls(1)
    assert call.stream and call.status == "success" and call.output_tokens == 8


@pytest.mark.parametrize("native", [True, False], ids=["native", "translated"])
def test_responses_with_a_function_tool(
    native, responses_providers, gateway, upstream_a, upstream_b
):
    only(responses_providers, "a" if native else "b")
    answer = gateway.responses.create(
        model="chat", input="weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required"
    )
    (call,) = [item for item in answer.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in call.arguments
    streamed = list(
        gateway.responses.create(
            model="chat",
            input="weather?",
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
        )
    )
    kinds = [event.type for event in streamed]
    assert "response.function_call_arguments.delta" in kinds
    assert streamed[-1].response.output[0].name == "get_weather"


def test_responses_fail_over_from_native_to_translated(
    responses_providers, gateway, upstream_a, recorded_calls
):
    upstream_a.configure(status=500)
    answer = gateway.responses.create(model="chat", input="hi")
    assert answer.output_text.startswith("Hello from b")
    (call,) = recorded_calls(1)
    assert [a.provider_name for a in call.attempts.all()] == ["a", "a", "b"]


def test_stored_responses_are_fetched_and_deleted_where_they_were_made(
    responses_providers, gateway
):
    only(responses_providers, "a")
    made = gateway.responses.create(model="chat", input="remember me")
    assert gateway.responses.retrieve(made.id).output_text == made.output_text
    gateway.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        gateway.responses.retrieve(made.id)


def test_translated_responses_are_not_stored(responses_providers, gateway):
    only(responses_providers, "b")
    made = gateway.responses.create(model="chat", input="hi")
    with pytest.raises(openai.NotFoundError, match="not stored|translated"):
        gateway.responses.retrieve(made.id)


def test_what_the_translation_does_not_carry_is_refused_clearly(responses_providers, gateway):
    only(responses_providers, "b")
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        gateway.responses.create(model="chat", input="hi", previous_response_id="resp_1")
    with pytest.raises(openai.BadRequestError, match="web_search"):
        gateway.responses.create(model="chat", input="hi", tools=[{"type": "web_search"}])


def test_models_carry_created_and_owned_by_from_the_provider(two_providers, gateway):
    provider_sync_models(provider=two_providers["a"])
    model = gateway.models.retrieve("fake-model-2")
    assert model.owned_by == "a" and model.created == 1_700_000_000
    listed = {m.id: m for m in gateway.models.list()}
    assert {"chat", "fake-model", "fake-model-2"} <= set(listed)
