"""Each routing strategy, end to end: runtime settings change the behaviour without a restart."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hi"}]


def served_by(gateway, requests: int, **options) -> list[str]:
    answers = [
        gateway.chat.completions.create(model="chat", messages=HELLO, **options)
        for _ in range(requests)
    ]
    return [answer.choices[0].message.content.split()[2] for answer in answers]


def test_default_sends_everything_to_the_first_priority(two_providers, gateway):
    routing(strategy="default")
    assert served_by(gateway, 6) == ["a"] * 6


def test_round_robin_alternates_exactly(two_providers, gateway):
    routing(strategy="round-robin")
    order = served_by(gateway, 10)
    assert order in (["a", "b"] * 5, ["b", "a"] * 5)


def test_strategy_change_applies_without_restart(two_providers, gateway):
    routing(strategy="default")
    assert set(served_by(gateway, 4)) == {"a"}
    routing(strategy="round-robin")
    assert Counter(served_by(gateway, 4)) == Counter({"a": 2, "b": 2})


def test_per_request_strategy_overrides_the_setting(two_providers, gateway):
    routing(strategy="default")
    header = {"extra_headers": {"X-Orchestra-Strategy": "round-robin"}}
    assert Counter(served_by(gateway, 6, **header)) == Counter({"a": 3, "b": 3})


def test_weighted_follows_weights_within_tolerance(two_providers, gateway):
    routing(strategy="weighted")
    two_providers["a"].weight, two_providers["b"].weight = 3, 1
    for provider in two_providers.values():
        provider.save()
    counts = Counter(served_by(gateway, 300))
    assert counts["a"] / 300 == pytest.approx(0.75, abs=0.08)


def test_random_uses_both(two_providers, gateway):
    routing(strategy="random")
    counts = Counter(served_by(gateway, 200))
    assert 0.3 < counts["a"] / 200 < 0.7


def test_least_latency_prefers_the_faster_upstream(two_providers, gateway, upstream_a):
    routing(strategy="least-latency")
    upstream_a.configure(latency_ms=60)
    served_by(gateway, 6)
    assert Counter(served_by(gateway, 20))["b"] >= 19


def test_lowest_cost_picks_the_cheaper_model(two_providers, gateway):
    routing(strategy="lowest-cost")
    cheap = two_providers["b"].models.get()
    cheap.input_price_per_million = cheap.output_price_per_million = 0
    cheap.save()
    assert served_by(gateway, 5) == ["b"] * 5


def test_disabled_provider_is_not_used(two_providers, gateway):
    two_providers["a"].enabled = False
    two_providers["a"].save()
    assert served_by(gateway, 3) == ["b"] * 3
