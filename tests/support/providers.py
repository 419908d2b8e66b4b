"""Fixtures for anything that talks to LLM providers: fake upstreams, providers pointing at
them, and clients of the gateway. Loaded for the whole suite by ``tests/conftest.py``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import openai
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Role
from apps.providers.llm.recording.recorder import recorder
from apps.providers.llm.recording.records import call_records_store
from apps.providers.llm.routing.state import EPOCH, bump_sync, state_key
from apps.providers.models import CallStatus, LlmCall, LlmModel, Provider, RoutingSettings
from tests.fake_upstream import FakeUpstream
from tests.support.factories import api_key_issue


@pytest.fixture(scope="session")
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    fakes = {name: FakeUpstream(name=name).start() for name in ("a", "b")}
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def upstream_a(upstreams) -> FakeUpstream:
    upstreams["a"].reset()
    return upstreams["a"]


@pytest.fixture
def upstream_b(upstreams) -> FakeUpstream:
    upstreams["b"].reset()
    return upstreams["b"]


@pytest.fixture(autouse=True)
def clean_routing_state():
    """Circuit breakers, counters and cursors start fresh in every test; the epoch bump tells
    running servers to drop what they cached."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keep = (b"config:version", b"breaker:epoch")
    for key in client.scan_iter(f"{state_key()}*"):
        if not key.endswith(keep):
            client.delete(key)
    bump_sync(EPOCH)
    yield
    recorder.flush()  # ship this test's records now, not into a later test


def provider_for(fake: FakeUpstream, **fields) -> Provider:
    defaults = {
        "kind": "openai_compatible",
        "base_url": fake.base_url,
        "timeout_seconds": 2.0,
        "max_retries": 1,
    }
    return Provider.objects.create(name=fake.name, **{**defaults, **fields})


def deploy(provider: Provider, name: str = "fake-model", **fields) -> LlmModel:
    defaults = {
        "input_price_per_million": Decimal("1.5"),
        "output_price_per_million": Decimal("6"),
        "aliases": ["chat"],
    }
    return LlmModel.objects.create(provider=provider, name=name, **{**defaults, **fields})


def routing(**fields) -> RoutingSettings:
    row = RoutingSettings.objects.first() or RoutingSettings()
    for name, value in {"retry_base_delay_ms": 10, **fields}.items():
        setattr(row, name, value)
    row.save()
    return row


@pytest.fixture
def two_providers(upstream_a, upstream_b) -> dict[str, Provider]:
    """Providers a and b, both serving public model 'chat' (as fake-model)."""
    routing()
    providers = {
        "a": provider_for(upstream_a, priority=1),
        "b": provider_for(upstream_b, priority=2),
    }
    for provider in providers.values():
        deploy(provider)
    return providers


@pytest.fixture
def recorded_calls() -> Callable[..., list[LlmCall]]:
    """Waits for this test's call records, which servers ship in bulk a moment after answering.

    Records of an earlier test may still arrive meanwhile; only those made since this test
    started count. A stream's record is stored while it runs and replaced when it ends: it
    counts once it has ended (a client may see the end before the final record is stored).
    """
    started = timezone.now()

    def wait(count: int, timeout: float = 10.0) -> list[LlmCall]:
        recent = LlmCall.objects.filter(created_at__gte=started)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call_records_store()  # what a worker does; servers under test ship to Redis
            calls = recent.exclude(status=CallStatus.RUNNING).prefetch_related("attempts")
            ended = list(calls.order_by("created_at"))
            if len(ended) >= count:
                return ended
            time.sleep(0.05)
        raise AssertionError(f"expected {count} call records, found {recent.count()}")

    return wait


@pytest.fixture
def operator_key() -> str:
    return api_key_issue(role=Role.OPERATOR)


@pytest.fixture
def gateway(asgi_server, operator_key) -> openai.OpenAI:
    """The unmodified OpenAI SDK pointed at our /v1."""
    return openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=operator_key, max_retries=0)
