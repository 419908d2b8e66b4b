"""A task cancelled while it waits in ``asyncio.wait_for`` (as redis-py's every command does)
is cancelled, even when what it waited for finished in the same loop iteration (Python 3.11
returned the result instead: gh-86296)."""

from __future__ import annotations

import asyncio
import random

from apps.core.redis import async_redis, close_async_redis

SETTLE_SECONDS = 1.0


async def test_a_cancellation_that_meets_a_result_is_kept():
    gate = asyncio.get_running_loop().create_future()
    went_on = asyncio.Event()

    async def answer() -> int:
        await gate
        return 1

    async def caller() -> None:
        await asyncio.wait_for(answer(), timeout=5)
        went_on.set()

    task = asyncio.create_task(caller())
    for _ in range(3):  # the caller waits in wait_for, its inner task waits on the gate
        await asyncio.sleep(0)
    gate.set_result(None)  # the answer's task runs first in the next iteration, then the caller
    task.cancel()
    await asyncio.wait({task}, timeout=SETTLE_SECONDS)
    assert task.cancelled() and not went_on.is_set()


async def test_a_timeout_still_raises_timeout_error():
    started = asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.05)
    except TimeoutError:
        pass
    else:
        raise AssertionError("wait_for did not time out")
    assert asyncio.get_running_loop().time() - started < SETTLE_SECONDS


async def test_a_task_talking_to_redis_ends_when_cancelled():
    """Cancelled at random moments of a stream of commands; with Python 3.11's wait_for about
    one in three went on running."""
    redis = async_redis()

    async def commands() -> None:
        while True:
            await redis.set("backport:probe", "1")

    try:
        for _ in range(30):
            task = asyncio.create_task(commands())
            await asyncio.sleep(random.uniform(0, 0.005))
            task.cancel()
            await asyncio.wait({task}, timeout=SETTLE_SECONDS)
            assert task.cancelled(), "a cancelled task went on sending commands"
    finally:
        await redis.delete("backport:probe")
        await close_async_redis()
