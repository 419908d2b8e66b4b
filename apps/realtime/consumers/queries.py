"""Queries and streams: ``query`` and ``stream`` are admitted here (``apps.accounts.admission``)
and handed to a Celery task (``tasks.llm_ask``) whose replies come back through the channel
layer, so the connection stays responsive however long the providers take. ``cancel`` stops
one; a worker silent for too long ends it with an error. When tracing is on, each is a span
(``ws.query``) from its hand-over to its last word, which the worker's spans continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from apps.accounts.admission import Refusal, admit, counts_tokens, settle
from apps.accounts.limits import scope_client, usage_tokens
from apps.core import tracing
from apps.core.request_context import request_id_from

from ..broker import llm_ask_send
from ..llm_relay import claim_cancel
from ..protocol import LlmAsk, ProtocolError, error_message, message_id, parse_llm_ask
from .caller import CallerConsumer
from .connection import RELAY_DOWN, UnavailableError

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL = 0.5
CANCEL_TIMEOUT_SECONDS = 2.0


@dataclass(slots=True)
class Running:
    """A query or stream handed to a worker, as this connection tracks it."""

    task_id: str
    last_heard: float = field(default_factory=time.monotonic)
    control: str | None = None  # the worker's control channel, once it has started
    span: Any = None  # when tracing is on


class QueriesConsumer(CallerConsumer):
    watchdog: asyncio.Task | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running: dict[str | int, Running] = {}

    def stop_background_tasks(self) -> None:
        super().stop_background_tasks()
        if self.watchdog:
            self.watchdog.cancel()

    # --- messages from the client -------------------------------------------------------------

    async def on_ask(self, message: dict[str, Any]) -> None:
        """A ``query`` or ``stream``: checked (the caller again, its role, this connection's
        limits, then the admission sequence) before a worker gets it; every refusal is an error
        message, and the connection stays open."""
        ask = parse_llm_ask(message)
        if not await self.still_allowed():
            return
        if not (self.principal and self.principal.can_operate):
            raise ProtocolError("forbidden", "Your role may not run queries.")
        if ask.id in self.running:
            raise ProtocolError("duplicate_id", f"{ask.id!r} is still running.")
        if len(self.running) >= settings.WEBSOCKET_MAX_CONCURRENT:
            limit = settings.WEBSOCKET_MAX_CONCURRENT
            raise ProtocolError("too_many_requests", f"At most {limit} queries/streams at once.")
        if self.relay_error:  # replies could not come back
            raise UnavailableError("live queries")
        refusal = self.admission_refusal()
        if refusal is not None:
            error = error_message(refusal.code, refusal.message, message)
            await self.send_json({**error, "retry_after": refusal.retry_after_seconds})
            return
        span = tracing.start_span("ws.query", {"orchestra.stream": ask.stream})
        try:
            with tracing.span_current(span):  # the task's message carries it to the worker
                task_id = await self.enqueue(ask)
        except Exception as error:  # the broker (Redis) does not answer
            tracing.span_end(span, error="the workers could not be reached")
            logger.warning("could not hand a query to the workers: %r", error)
            raise UnavailableError("live queries") from error
        self.running[ask.id] = Running(task_id=task_id, span=span)
        self.ensure_watchdog()

    def admission_refusal(self) -> Refusal | None:
        """The admission sequence (``apps.accounts.admission``: the per-IP limit, then the
        key's), run here in the web process: a refused query never reaches a worker, and the
        connection stays open."""
        return admit(scope_client(self.scope), self.principal, entry="WebSocket").refusal

    async def enqueue(self, ask: LlmAsk) -> str:
        assert self.principal is not None  # on_ask checked it
        caller = {
            "user_id": self.principal.user_id,
            "api_key_id": self.principal.api_key_id,
            "workspace_id": self.principal.workspace_id,
        }
        return await llm_ask_send(
            (self.channel_name, asdict(ask), caller, request_id_from(None)),
            argsrepr=f"({self.channel_name!r}, {'stream' if ask.stream else 'query'} {ask.id!r})",
            queue=settings.WEBSOCKET_TASK_QUEUE,
            expires=settings.WEBSOCKET_WORKER_SILENCE_SECONDS,
        )

    async def on_cancel(self, message: dict[str, Any]) -> None:
        ask_id = message_id(message)
        if ask_id not in self.running:
            raise ProtocolError("unknown_id", f"Nothing is running under {ask_id!r}.")
        try:
            told = await asyncio.wait_for(
                self.send_cancel(self.running[ask_id]), CANCEL_TIMEOUT_SECONDS
            )
        except Exception:  # the worker cannot be told, nor reply: stop relaying it here
            await self.stop(ask_id)
            text = "Cancelled (the worker could not be told; it stops on its own)."
            await self.send_json(error_message("cancelled", text, {"id": ask_id}))
            return
        # No worker had started it, and none will: nobody else will answer.
        if not told and (running := self.running.pop(ask_id, None)) is not None:
            tracing.span_end(running.span, attributes={"orchestra.status": "cancelled"})
            await self.send_json(error_message("cancelled", "Cancelled.", {"id": ask_id}))

    # --- stopping work ------------------------------------------------------------------------

    async def send_cancel(self, running: Running) -> bool:
        """Tell the worker running it to stop (True). A task no worker has started yet is
        claimed instead (``llm_relay.claim_cancel``), so the one that picks it up drops it
        (False); a started one may not have been heard of yet, and is told all the same."""
        control = running.control or await claim_cancel(running.task_id)
        if control is None:
            return False
        running.control = control
        await self.channel_layer.send(control, {"type": "cancel"})
        return True

    async def stop(self, ask_id) -> None:
        running = self.running.pop(ask_id, None)
        if running:
            tracing.span_end(running.span, attributes={"orchestra.status": "stopped"})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_cancel(running), CANCEL_TIMEOUT_SECONDS)

    async def stop_all(self) -> None:
        """On disconnect: every query and stream still running is stopped."""
        for ask_id in list(self.running):
            await self.stop(ask_id)

    def ensure_watchdog(self) -> None:
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = asyncio.ensure_future(self.watch_workers())

    async def watch_workers(self) -> None:
        """A worker silent for too long (dead, or never started) ends its request with an error."""
        silence = settings.WEBSOCKET_WORKER_SILENCE_SECONDS
        while self.running:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            now = time.monotonic()
            for ask_id, running in list(self.running.items()):
                if now - running.last_heard > silence:
                    await self.stop(ask_id)
                    if self.relay_error:
                        error = error_message("unavailable", f"Lost: {RELAY_DOWN}", {"id": ask_id})
                    else:
                        text = f"No word from the worker for {silence:g} s; giving up."
                        error = error_message("worker_timeout", text, {"id": ask_id})
                    await self.send_json(error)

    # --- messages from workers (channel layer) ------------------------------------------------

    def heard(self, event: dict[str, Any]) -> Running | None:
        running = self.running.get(event["id"])
        if running:
            running.last_heard = time.monotonic()
        return running

    async def llm_started(self, event: dict[str, Any]) -> None:
        running = self.heard(event)
        if running is None:
            await self.channel_layer.send(event["control"], {"type": "cancel"})
            return
        running.control = event["control"]

    async def llm_heartbeat(self, event: dict[str, Any]) -> None:
        self.heard(event)

    async def llm_token(self, event: dict[str, Any]) -> None:
        if self.heard(event):
            await self.send_json({"type": "token", "id": event["id"], "content": event["content"]})

    async def llm_done(self, event: dict[str, Any]) -> None:
        await self.finish(event, "done")

    async def llm_response(self, event: dict[str, Any]) -> None:
        await self.finish(event, "response")

    async def llm_error(self, event: dict[str, Any]) -> None:
        await self.finish(event, "error")

    async def finish(self, event: dict[str, Any], kind: str) -> None:
        """The last word of a query or stream: relayed as ``kind``, its tokens settled."""
        if (running := self.running.pop(event["id"], None)) is not None:
            tracing.span_end(
                running.span,
                attributes={"orchestra.status": kind},
                error=str(event.get("code") or "error") if kind == "error" else None,
            )
            if self.principal is not None and counts_tokens(self.principal):
                settle(self.principal, tokens=usage_tokens(event.get("usage")))
            await self.send_json({**event, "type": kind})
