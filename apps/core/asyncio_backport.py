"""Python 3.12's ``asyncio.wait_for`` on Python 3.11: a cancellation is never lost.

Python 3.11's ``wait_for`` returns the result, and drops the cancellation, when its task is
cancelled in the same loop iteration as the awaited future finishes (CPython gh-86296, fixed in
3.12 by building ``wait_for`` on ``asyncio.timeout``). redis-py sends every command through
``wait_for`` when the connection has a socket timeout, as all of ours do, so a task cancelled
while it talked to Redis went on running about one time in three: an agent task the sweep
failed kept streaming from its upstream, and a listener cancelled at shutdown never ended.
Installed once per process, from ``CoreConfig.ready``.
"""

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` as Python 3.12 has it: the wait is a timeout scope, so a
    cancellation of the caller always propagates."""
    async with asyncio.timeout(timeout):
        return await awaitable


def install() -> None:
    """Replace ``asyncio.wait_for`` for every module that calls it through ``asyncio``."""
    if sys.version_info >= (3, 12):
        return
    patched: Any = wait_for
    asyncio.wait_for = patched
    asyncio.tasks.wait_for = patched
