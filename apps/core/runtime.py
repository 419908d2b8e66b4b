"""Running async code (the LLM core, the channel layer) from synchronous code: Celery tasks,
sync views, commands.

One event loop per process lives in a daemon thread, so provider clients and their pooled
connections survive from one call to the next (``asyncio.run`` would build and tear them down
every time). A forked child (Celery prefork) starts its own loop on first use.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, TypeVar

from .loop_lag import runtime_loop_made
from .request_context import current_request_id, request_id_var
from .tracing import context_carry

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():
            _loop = asyncio.new_event_loop()
            _pid = os.getpid()
            thread = threading.Thread(target=_loop.run_forever, name="orchestra-async", daemon=True)
            thread.start()
            runtime_loop_made(_loop)
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coroutine`` on the process's loop and wait for its result.

    It runs in a fresh context holding only the request id and the trace: a sync view under
    ASGI carries asgiref's context, and with it ``sync_to_async`` inside the coroutine would
    hand its work to this very thread, which is blocked here waiting (a deadlock).
    """
    context = contextvars.Context()
    context.run(request_id_var.set, current_request_id())
    context_carry(context)
    future = context.run(asyncio.run_coroutine_threadsafe, coroutine, _running_loop())
    return future.result(timeout)


class SingleFlight:
    """Concurrent callers asking for the same key share one call: when a cached answer expires
    under load, one database lookup runs instead of one per waiting request (a burst that
    showed in the gateway's p99). The call is shielded, so a caller that goes away does not
    cancel it for the others; a call belongs to one event loop, and a caller on another loop
    starts its own."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task] = {}

    async def run(self, key: Hashable, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._running[key] = loop.create_task(call())
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task) -> None:
        if self._running.get(key) is task:
            del self._running[key]
