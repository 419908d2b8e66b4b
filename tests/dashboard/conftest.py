"""Helpers of the dashboard's tests: people with a role, and call records in bulk."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.core.redis import key, redis_client
from apps.dashboard.figures import SNAPSHOT_KEY
from apps.providers.models import CallStatus, EntryPoint, LlmCall
from tests.support.browser import PASSWORD
from tests.support.factories import user_create


def member(role: Role | None, username: str | None = None) -> User:
    """A person with ``role`` who logs in with ``PASSWORD``: having a role is what lets them
    into the dashboard (``is_staff`` follows it)."""
    user = user_create(role=role, username=username)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def client_as() -> Callable[[Role], Client]:
    def make(role: Role) -> Client:
        client = Client()
        client.force_login(member(role))
        return client

    return make


@pytest.fixture(autouse=True)
def fresh_figures():
    """Each test computes Home's figures from its own records, not a snapshot of another's,
    and lists only its own alerts."""
    cache.delete(SNAPSHOT_KEY)
    redis_client().delete(key("dashboard", "alerts"))
    yield
    cache.delete(SNAPSHOT_KEY)


def call_record(
    *,
    at: datetime | None = None,
    status: str = CallStatus.SUCCESS,
    latency_ms: float = 100.0,
    input_tokens: int = 10,
    output_tokens: int = 20,
    cost: str = "0.001",
    provider_name: str = "alpha",
    stream: bool = False,
    entry_point: str = EntryPoint.OPENAI,
) -> LlmCall:
    return LlmCall(
        id=uuid.uuid4(),
        created_at=at or timezone.now() - timedelta(minutes=1),
        entry_point=entry_point,
        provider_name=provider_name,
        model_name="fake-model",
        requested_model="fake-model",
        status=status,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=Decimal(cost),
        stream=stream,
    )


def open_circuit(provider: str, error: str = "connection refused") -> None:
    """Count enough failures against ``provider`` to open its circuit (as every process sees)."""
    from apps.core.runtime import run_sync
    from apps.providers.llm.engine import current_routing_config
    from apps.providers.llm.routing.state import routing_state

    async def fail() -> None:
        policy = (await current_routing_config()).policy
        for _ in range(policy.breaker_failure_threshold):
            await routing_state().breakers.failure(provider, error, policy)

    run_sync(fail())
