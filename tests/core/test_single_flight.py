"""SingleFlight: concurrent callers of one key share one call, and none can cancel it for the
others."""

from __future__ import annotations

import asyncio

import pytest

from apps.core.runtime import SingleFlight


class Lookup:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        return self.calls


async def test_concurrent_callers_of_one_key_share_one_call():
    flight, lookup = SingleFlight(), Lookup()
    waiting = [asyncio.create_task(flight.run("key", lookup)) for _ in range(25)]
    await asyncio.sleep(0)
    lookup.release.set()
    assert await asyncio.gather(*waiting) == [1] * 25
    assert lookup.calls == 1


async def test_other_keys_and_later_callers_get_their_own_call():
    flight, lookup = SingleFlight(), Lookup()
    lookup.release.set()
    assert await asyncio.gather(flight.run("a", lookup), flight.run("b", lookup)) == [1, 2]
    assert await flight.run("a", lookup) == 3  # the first call for "a" is over: a new one


async def test_a_caller_going_away_does_not_cancel_the_call_for_the_others():
    flight, lookup = SingleFlight(), Lookup()
    leaving = asyncio.create_task(flight.run("key", lookup))
    staying = asyncio.create_task(flight.run("key", lookup))
    await asyncio.sleep(0)
    leaving.cancel()
    lookup.release.set()
    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert lookup.calls == 1


async def test_a_failure_reaches_every_caller_and_the_next_call_tries_again():
    flight, attempts = SingleFlight(), []

    async def failing() -> int:
        attempts.append(1)
        await asyncio.sleep(0)
        raise ConnectionError("database away")

    results = await asyncio.gather(
        flight.run("key", failing), flight.run("key", failing), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    with pytest.raises(ConnectionError):
        await flight.run("key", failing)
    assert len(attempts) == 2
