"""The router's ordering and filtering, as pure functions over many draws."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import pytest

from apps.providers.llm.config import Deployment, ModelConfig, ProviderConfig, routing_policy_from
from apps.providers.llm.routing.breakers import CLOSED, HALF_OPEN, OPEN, BreakerView
from apps.providers.llm.routing.router import LatencyTracker, StateView, order, plan


def deployment(name: str, *, priority=1, weight=1, price="1", rpm=None, tpm=None) -> Deployment:
    provider = ProviderConfig(
        id=hash(name) % 1000,
        name=name,
        kind="openai_compatible",
        base_url="http://x",
        api_key="",
        priority=priority,
        weight=weight,
        timeout_seconds=1,
        max_retries=0,
        rpm_limit=rpm,
        tpm_limit=tpm,
        headers={},
        stream_usage=True,
        health_latency_ms=None,
    )
    model = ModelConfig(
        id=1,
        name="m",
        display_name="m",
        input_price_per_million=Decimal(price),
        output_price_per_million=Decimal(price),
        fallbacks=(),
    )
    return Deployment(provider, model)


def names(deployments) -> list[str]:
    return [d.provider.name for d in deployments]


POLICY = routing_policy_from(None)


def first_choices(strategy: str, deployments, draws: int, **kwargs) -> Counter:
    rng = random.Random(7)
    return Counter(
        order(deployments, strategy=strategy, policy=POLICY, rng=rng, cursor=i + 1, **kwargs)[
            0
        ].provider.name
        for i in range(draws)
    )


def test_default_orders_by_priority_then_the_default_provider_first():
    pool = [deployment("b", priority=2), deployment("a", priority=1), deployment("c", priority=3)]
    assert names(order(pool, strategy="default", policy=POLICY)) == ["a", "b", "c"]
    policy = replace(POLICY, default_provider="c")
    assert names(order(pool, strategy="default", policy=policy)) == ["c", "a", "b"]


def test_round_robin_rotates_exactly():
    pool = [deployment("a", priority=1), deployment("b", priority=2), deployment("c", priority=3)]
    firsts = [
        order(pool, strategy="round-robin", policy=POLICY, cursor=cursor)[0].provider.name
        for cursor in range(1, 10)
    ]
    assert firsts == ["a", "b", "c"] * 3
    assert names(order(pool, strategy="round-robin", policy=POLICY, cursor=2)) == ["b", "c", "a"]


def test_weighted_follows_the_weights():
    pool = [deployment("a", weight=6), deployment("b", weight=3), deployment("c", weight=1)]
    counts = first_choices("weighted", pool, 20_000)
    assert counts["a"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert counts["b"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert counts["c"] / 20_000 == pytest.approx(0.1, abs=0.02)


def test_weight_zero_is_never_first_while_others_can_serve():
    pool = [deployment("a", weight=1), deployment("z", weight=0)]
    assert first_choices("weighted", pool, 2_000) == Counter({"a": 2_000})


def test_random_spreads_evenly():
    pool = [deployment("a"), deployment("b")]
    counts = first_choices("random", pool, 10_000)
    assert counts["a"] / 10_000 == pytest.approx(0.5, abs=0.03)


def test_least_latency_prefers_the_faster_and_explores_the_unknown():
    fast, slow, new = deployment("fast"), deployment("slow"), deployment("new")
    tracker = LatencyTracker()
    tracker.observe(fast.key, 10)
    tracker.observe(slow.key, 80)
    ordered = order([slow, fast, new], strategy="least-latency", policy=POLICY, latency=tracker)
    assert names(ordered) == ["new", "fast", "slow"]
    for _ in range(10):
        tracker.observe(fast.key, 200)
    assert names(order([slow, fast], strategy="least-latency", policy=POLICY, latency=tracker)) == [
        "slow",
        "fast",
    ]


def test_lowest_cost_orders_by_price():
    pool = [deployment("dear", price="10"), deployment("cheap", price="0.1"), deployment("mid")]
    assert names(order(pool, strategy="lowest-cost", policy=POLICY)) == ["cheap", "mid", "dear"]


def state(**breakers) -> StateView:
    return StateView(
        version=0,
        breakers={name: BreakerView(name, state=value) for name, value in breakers.items()},
        requests_this_minute={"limited": 10},
        tokens_this_minute={"heavy": 5000},
        cursor=1,
    )


def test_open_circuits_and_spent_limits_are_skipped_half_open_needs_the_probe():
    pool = [
        deployment("open", priority=1),
        deployment("limited", priority=2, rpm=10),
        deployment("heavy", priority=3, tpm=5000),
        deployment("probing", priority=4),
        deployment("fine", priority=5),
    ]
    routed = plan(
        pool, state(open=OPEN, probing=HALF_OPEN, fine=CLOSED), strategy="default", policy=POLICY
    )
    assert [(c.deployment.provider.name, c.probe) for c in routed.candidates] == [
        ("probing", True),
        ("fine", False),
    ]
    assert routed.skipped == {
        "open/m": "circuit open",
        "limited/m": "requests-per-minute limit reached",
        "heavy/m": "tokens-per-minute limit reached",
    }
    assert routed.wait_seconds is None  # a circuit is open: not only waiting


def test_cooling_down_deployments_are_skipped_and_say_how_long_to_wait():
    pool = [deployment("cool", priority=1), deployment("limited", priority=2, rpm=10)]
    view = replace(state(), cooldowns={"cool/m": 25.0})
    routed = plan(pool, view, strategy="default", policy=POLICY)
    assert routed.candidates == []
    assert routed.skipped["cool/m"] == "cooling down for 25 s"
    assert routed.wait_seconds is not None and 0 < routed.wait_seconds <= 25.0
    alone = plan(pool[:1], view, strategy="default", policy=POLICY)
    assert alone.wait_seconds == 25.0
