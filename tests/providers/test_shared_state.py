"""The shared routing state's one read of the hot path: how old the RPM/TPM counts may be, and
how many fetches a burst of requests makes."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.core.redis import close_async_redis
from apps.providers.llm.routing.shared_state import COUNTS_MAX_AGE, SharedState
from tests.providers.test_router import POLICY, deployment

DEPLOYMENTS = (deployment("shared-a"),)
NAME = DEPLOYMENTS[0].provider.name


@pytest.fixture
async def state():
    shared = SharedState()
    fetches = []
    fetch = shared._fetch

    async def counted(*args, **kwargs):
        fetches.append(time.monotonic())
        return await fetch(*args, **kwargs)

    shared._fetch = counted
    shared.fetches = fetches
    yield shared
    await shared.stop()
    await close_async_redis()


async def set_requests(shared: SharedState, count: int) -> None:
    await shared.redis.set(shared.minute_key("rpm", NAME, time.time()), count)


def age(shared: SharedState, seconds: float) -> None:
    for fetched in shared._fetched.values():
        fetched.at = time.monotonic() - seconds


async def test_a_burst_of_requests_on_stale_state_makes_one_fetch(state):
    await state.read(DEPLOYMENTS, POLICY)
    await set_requests(state, 3)
    age(state, COUNTS_MAX_AGE + 0.1)

    views = await asyncio.gather(*(state.read(DEPLOYMENTS, POLICY) for _ in range(50)))
    assert len(state.fetches) == 2
    assert {view.requests_this_minute[NAME] for view in views} == {3}


async def test_counts_half_their_max_age_are_refetched_without_waiting(state):
    await state.read(DEPLOYMENTS, POLICY)
    await set_requests(state, 7)
    age(state, COUNTS_MAX_AGE * 0.6)

    view = await state.read(DEPLOYMENTS, POLICY)
    assert view.requests_this_minute[NAME] == 0, "answered with the counts it had"
    await asyncio.wait_for(asyncio.gather(*state._refreshing.values()), 5)
    assert len(state.fetches) == 2
    assert (await state.read(DEPLOYMENTS, POLICY)).requests_this_minute[NAME] == 7


async def test_counts_older_than_their_max_age_are_fetched_before_answering(state):
    await state.read(DEPLOYMENTS, POLICY)
    await set_requests(state, 5)
    age(state, COUNTS_MAX_AGE + 0.1)

    assert (await state.read(DEPLOYMENTS, POLICY)).requests_this_minute[NAME] == 5
