"""End to end: requests through the real daphne's /v1/chat/completions (the unmodified openai
SDK) that name an experiment reach their variant's model on the fake upstreams, their call
records carry the variant, and the experiment's statistics count them."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from apps.experiments.hooks import CACHE_SECONDS
from apps.experiments.models import Assignment, Experiment
from apps.experiments.services import (
    experiment_create,
    experiment_settings_update,
    experiment_start,
)
from apps.providers.models import CallStatus, LlmModel
from tests.support.providers import deploy

from .conftest import HELLO, client, planned, variants

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def treatment_model(two_providers) -> LlmModel:
    """Public model 'chat-b': fake-model-2, on provider b only."""
    return deploy(two_providers["b"], name="fake-model-2", aliases=["chat-b"])


def started(name: str, treatment: dict[str, Any], split: int = 50) -> Experiment:
    experiment = experiment_create(name=name, variants=variants(treatment, split))
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    return experiment


def test_requests_naming_an_experiment_reach_the_variants_model_and_are_counted(
    treatment_model, gateway, upstream_a, upstream_b, recorded_calls
):
    experiment = started("e2e model test", {"model": "chat-b", "temperature": 0.3})
    users = [f"e2e-{n}" for n in range(30)]
    expected = planned(experiment, users)
    treated = [u for u in users if expected[u] == "treatment"]
    assert 5 < len(treated) < 25

    for user in users:
        answer = gateway.chat.completions.create(
            model="chat", messages=HELLO, user=user, extra_body={"experiment": "e2e model test"}
        )
        on_b = expected[user] == "treatment"
        assert answer.model == ("fake-model-2" if on_b else "fake-model"), user
        assert answer.choices[0].message.content.startswith("Hello from b" if on_b else "Hello")

    assert upstream_b.stats()["requests"] == len(treated)
    assert upstream_a.stats()["requests"] == len(users) - len(treated)
    sent = upstream_b.stats()["last_request"]["body"]
    assert sent["model"] == "fake-model-2" and sent["temperature"] == 0.3
    assert "experiment" not in sent and sent["user"] == treated[-1]
    assert "experiment" not in upstream_a.stats()["last_request"]["body"]

    calls = recorded_calls(len(users))
    ids = {v.name: v.pk for v in experiment.variants.all()}
    by_variant = {
        name: [c for c in calls if c.experiment_variant_id == pk] for name, pk in ids.items()
    }
    assert len(by_variant["treatment"]) == len(treated)
    assert len(by_variant["control"]) == len(users) - len(treated)
    assert {
        (c.provider_name, c.model_name, c.requested_model) for c in by_variant["treatment"]
    } == {("b", "fake-model-2", "chat-b")}
    assert {c.provider_name for c in by_variant["control"]} == {"a"}
    assert Assignment.objects.filter(experiment=experiment).count() == len(users)

    stats = client().get(f"/api/v1/experiments/{experiment.pk}/stats").json()
    for variant in stats["variants"]:
        mine = by_variant[variant["name"]]
        assert variant["users"] == len(mine)
        assert variant["calls"]["requests"] == len(mine)
        assert variant["calls"]["successes"] == len(mine) and variant["calls"]["success_rate"] == 1
        assert variant["calls"]["tokens"] == sum(c.input_tokens + c.output_tokens for c in mine)
        assert float(variant["calls"]["cost"]) == pytest.approx(float(sum(c.cost for c in mine)))
        assert variant["calls"]["latency_p95_ms"] > 0
        assert float(variant["calls"]["cost_per_success"]) > 0
    assert stats["srm"]["mismatch"] is False


def test_the_header_joins_too_and_streams_get_the_variant(
    treatment_model, gateway, upstream_a, upstream_b, recorded_calls
):
    experiment = started("e2e header", {"model": "chat-b", "system_prompt": "Be brief."}, 100)

    chunks = gateway.chat.completions.create(
        model="chat",
        messages=HELLO,
        stream=True,
        user="streamer",
        extra_headers={"X-Orchestra-Experiment": "e2e header"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from b")
    sent = upstream_b.stats()["last_request"]["body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert sent["stream"] is True and sent["model"] == "fake-model-2"

    plain = gateway.chat.completions.create(model="chat", messages=HELLO, user="streamer")
    assert plain.choices[0].message.content.startswith("Hello from a")

    by_id = gateway.chat.completions.create(
        model="chat", messages=HELLO, extra_body={"experiment": str(experiment.pk)}
    )  # the caller's own user when the body has none
    assert by_id.model == "fake-model-2"
    calls = recorded_calls(3)
    treatment = experiment.variants.get(name="treatment").pk
    assert sorted(str(c.experiment_variant_id) for c in calls) == sorted(
        [str(treatment), str(treatment), "None"]
    )
    assert all(c.status == CallStatus.SUCCESS for c in calls)
    owner = next(c for c in calls if c.experiment_variant_id and c.user_id).user_id
    assert Assignment.objects.filter(experiment=experiment, user_id=str(owner)).exists()


def test_unknown_experiments_and_the_switch_turned_off_leave_requests_alone(
    treatment_model, gateway, upstream_a, upstream_b, recorded_calls
):
    started("e2e switched off", {"model": "chat-b"}, 100)
    unknown = gateway.chat.completions.create(
        model="chat", messages=HELLO, user="u", extra_body={"experiment": "no such experiment"}
    )
    assert unknown.model == "fake-model"
    experiment_settings_update(enabled=False)
    time.sleep(CACHE_SECONDS + 0.1)  # how long a process may go on with its snapshot

    answer = gateway.chat.completions.create(
        model="chat", messages=HELLO, user="u", extra_body={"experiment": "e2e switched off"}
    )

    assert answer.model == "fake-model" and upstream_b.stats()["requests"] == 0
    assert all(c.experiment_variant_id is None for c in recorded_calls(2))
    assert not Assignment.objects.exists()


def test_a_bad_experiment_or_user_field_is_a_400(treatment_model, gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.chat.completions.create(model="chat", messages=HELLO, extra_body={"user": 42})
    assert caught.value.body["param"] == "user"
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.chat.completions.create(
            model="chat", messages=HELLO, extra_body={"experiment": ["a"]}
        )
    assert caught.value.body["param"] == "experiment"
