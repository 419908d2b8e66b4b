"""Where a WebSocket ``query`` spends its time: timestamps of each hop, for ``bench.websocket
--hops``.

``python -m bench.hops uvicorn|celery <its arguments>`` runs the server or the Celery worker as
usual, with a few of the path's functions wrapped to append ``<ask id> <event> <time_ns>`` to
``$BENCH_HOPS_DIR/<pid>.log`` (the wall clock, which every process on the machine shares). The
project's code carries no timing of its own; the wrappers cost a few microseconds each, so a
run with them is for the breakdown, not for the round trip's headline figures.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

# (label, from event, to event): consecutive on the path, so the hops add up to the round trip.
HOPS = (
    ("client -> consumer (WebSocket frame)", "client.sent", "ws.received"),
    ("consumer checks, admission", "ws.received", "enqueue.start"),
    ("enqueue: publish", "enqueue.start", "published"),
    ("broker delivery to the worker", "published", "worker.received"),
    ("worker pick-up (pool)", "worker.received", "worker.prerun"),
    ("hand-off to the worker's loop", "worker.prerun", "relay.start"),
    ("relay set-up (claim, llm.started)", "relay.start", "core.start"),
    ("the LLM core (upstream included)", "core.start", "core.end"),
    ("llm.response: send", "core.end", "reply.sent"),
    ("channel layer -> consumer", "reply.sent", "consumer.response"),
    ("consumer's send to the client", "consumer.response", "consumer.sent"),
    ("server -> client (WebSocket frame)", "consumer.sent", "client.received"),
)

# Not on the chain: the enqueue as the consumer waits for it, the worker's first word.
ASIDE = (
    ("enqueue, as the consumer waits for it", "enqueue.start", "enqueue.end"),
    ("llm.started: relay start -> consumer", "relay.start", "consumer.started"),
)

_fd: int | None = None


def mark(ask_id: Any, event: str) -> None:
    global _fd
    if _fd is None:
        directory = Path(os.environ["BENCH_HOPS_DIR"])
        directory.mkdir(parents=True, exist_ok=True)
        _fd = os.open(directory / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_fd, f"{ask_id} {event} {time.time_ns()}\n".encode())


def _around(owner: Any, name: str, before: Callable | None, after: Callable | None) -> None:
    """``owner.name`` (an async function) wrapped: ``before(*args, **kwargs)`` and
    ``after(*args, **kwargs)`` called around it."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            before(*args, **kwargs)
        try:
            return await original(*args, **kwargs)
        finally:
            if after:
                after(*args, **kwargs)

    setattr(owner, name, wrapped)


def _ask_id(message: dict[str, Any]) -> Any:
    return message.get("id")


def instrument_server() -> None:
    from celery.signals import after_task_publish

    from apps.realtime.consumers.consumer import OrchestraConsumer
    from apps.realtime.consumers.queries import QueriesConsumer

    _around(QueriesConsumer, "on_ask", lambda self, m: mark(_ask_id(m), "ws.received"), None)
    handlers = OrchestraConsumer.HANDLERS
    handlers["query"] = handlers["stream"] = QueriesConsumer.on_ask
    _around(
        QueriesConsumer,
        "enqueue",
        lambda self, ask: mark(ask.id, "enqueue.start"),
        lambda self, ask: mark(ask.id, "enqueue.end"),
    )
    _around(QueriesConsumer, "llm_started", lambda self, e: mark(e["id"], "consumer.started"), None)
    _around(
        QueriesConsumer,
        "llm_response",
        lambda self, e: mark(e["id"], "consumer.response"),
        lambda self, e: mark(e["id"], "consumer.sent"),
    )

    @after_task_publish.connect(weak=False)
    def published(headers: dict | None = None, body: Any = None, **kwargs: Any) -> None:
        args: Any = body[0] if isinstance(body, tuple) else ()
        if len(args) > 1 and isinstance(args[1], dict):
            mark(args[1].get("id"), "published")


def instrument_worker() -> None:
    from celery.signals import task_prerun, task_received, worker_ready

    def ask_of(request_args: Any) -> Any:
        return request_args[1].get("id") if len(request_args) > 1 else None

    @task_received.connect(weak=False)
    def received(request: Any = None, **kwargs: Any) -> None:
        if request is not None and request.name == "realtime.llm_ask":
            mark(ask_of(request.args), "worker.received")

    @task_prerun.connect(weak=False)
    def prerun(task: Any = None, args: Any = (), **kwargs: Any) -> None:
        if task is not None and task.name == "realtime.llm_ask":
            mark(ask_of(args), "worker.prerun")

    @worker_ready.connect(weak=False)
    def wrap_relay(**kwargs: Any) -> None:
        from apps.realtime import llm_relay, tasks

        _around(
            tasks,
            "relay_to_connection",
            lambda *a, ask, **k: mark(ask["id"], "relay.start"),
            None,
        )
        current: dict[str, Any] = {}

        def core_start(request: Any) -> None:
            current["id"] = _request_ask()
            mark(current["id"], "core.start")

        _around(llm_relay, "complete", core_start, lambda request: mark(current["id"], "core.end"))

        layer_class = type(llm_relay.get_channel_layer())
        _around(
            layer_class,
            "send",
            None,
            lambda self, channel, message: (
                mark(message.get("id"), "reply.sent")
                if message.get("type") == "llm.response"
                else None
            ),
        )


def _request_ask() -> Any:
    """The ask id of the LLM request being run: a caller's frame holds it."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if "ask_id" in frame.f_locals:
            return frame.f_locals["ask_id"]
        frame = frame.f_back
    return None


def main() -> None:
    program, *arguments = sys.argv[1:]
    sys.argv = [program, *arguments]
    if program == "celery":
        instrument_worker()
    else:
        import orchestra.asgi  # noqa: F401  (what the server imports; set up as it would be)

        instrument_server()
    runpy.run_module(program, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
