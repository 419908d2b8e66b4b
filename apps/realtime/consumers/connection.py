"""The connection itself: Channels' consumer loop, the channel layer it reads, and sending.

The channel layer and the Celery broker live in Redis; authentication does not. Without Redis
a connection stays open and usable for what needs no relay (``ping``), ``query``, ``stream``
and ``subscribe`` are answered ``unavailable``, and the consumer keeps trying the channel layer
with a short back-off, so the same connection works again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

from .. import metrics
from ..protocol import ProtocolError
from ..slots import slots

logger = logging.getLogger(__name__)

RECEIVE_STOP_SECONDS = 0.5
RELAY_RETRY_SECONDS = (0.2, 2.0)  # first and longest wait between tries of the channel layer
RELAY_DOWN = "the relay to the workers (Redis) does not answer; try again shortly."


def _forget_result(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


class UnavailableError(ProtocolError):
    def __init__(self, what: str) -> None:
        super().__init__("unavailable", f"{what} are unavailable: {RELAY_DOWN}")


class RelayHealth:
    """This process's view of the channel layer, so an outage is logged once, not once per
    connection and retry."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    def down(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                "channel layer unreachable, live queries unavailable: %s: %s",
                type(error).__name__,
                error,
            )

    def up(self) -> None:
        if self.down_since is not None:
            logger.warning("channel layer back after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None


relay_health = RelayHealth()


class ConnectionConsumer(AsyncWebsocketConsumer):
    """The lifecycle every topic's consumer builds on (``caller.py`` and the others)."""

    closing = False  # closed by us: nothing more is sent or handled
    relay_error: str | None = None  # why the channel layer failed last, while it does
    wake: asyncio.Future | None = None  # the consumer loop's, while it waits for a source

    async def __call__(self, scope, receive, send) -> None:
        """Channels' consumer loop (``AsyncConsumer.__call__``) with two changes: the gauge
        counts the connection for exactly as long as this runs, whatever ends it (a close by
        either side, or a crash, when ``disconnect`` is not called), and the channel layer is
        read through ``receive_relayed``, which outlasts Redis instead of crashing with it."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()  # no Redis round trip
        self.base_send = send
        self.sources_done: list[asyncio.Future] = []  # finished, in the order they finished
        metrics.connections.inc()
        try:
            await self.dispatch_until_stopped(receive)
        finally:
            metrics.connections.dec()
            self.stop_background_tasks()
            await slots.release(self.channel_name)

    async def receive_relayed(self) -> dict[str, Any]:
        """The next message on this connection's channel. Channels' loop would end the consumer
        (1011) on the first error of the channel layer, which is every read while Redis is
        down; this marks the relay down, retries with a growing jittered wait, and, once Redis
        answers again, marks it up before blocking on the next message."""
        wait, longest = RELAY_RETRY_SECONDS
        while True:
            try:
                if self.relay_error is not None:
                    await self.ping_channel_layer()
                    self.relay_back()
                return await self.channel_layer.receive(self.channel_name)
            except Exception as error:
                self.relay_down(error)
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, longest)

    async def ping_channel_layer(self) -> None:
        """Redis answers again: the shard holding this connection's channel, that is."""
        layer = self.channel_layer
        if isinstance(layer, RedisChannelLayer):
            await layer.connection(
                layer.consistent_hash(layer.non_local_name(self.channel_name))
            ).ping()

    def relay_down(self, error: BaseException) -> None:
        self.relay_error = repr(error)
        relay_health.down(error)

    def relay_back(self) -> None:
        self.relay_error = None
        relay_health.up()

    async def dispatch_until_stopped(self, receive) -> None:
        """Channels' ``await_many_dispatch`` over the client and the channel layer, with two
        changes. Each source tells the loop it is done through a callback instead of an
        ``asyncio.wait`` per message, and the channel layer's is a future while Redis answers,
        not a task (their coroutines, futures and sets were about 3 KiB per idle connection,
        bench/README.md). And at the end: with channels-redis 4.3 and redis-py 8 a receive cancelled
        while its Redis connection is being made loses the cancellation and blocks until the
        next message for this process, which held the consumer (and the gauge) until daphne
        killed it 10 s later. A receive that does not stop at once is woken with a message and
        left to end."""
        loop = asyncio.get_running_loop()
        # ensure_future: a server's receive() may answer any awaitable, not only a coroutine
        # (granian's does).
        schedule = functools.partial(asyncio.ensure_future, loop=loop)
        client = self.watched(schedule(receive()))
        relay = self.watched(self.relay_source())
        try:
            while True:
                if not self.sources_done:
                    self.wake = loop.create_future()
                    await self.wake
                done = self.sources_done.pop(0)
                if done is client:
                    await self.dispatch(done.result())
                    client = self.watched(schedule(receive()))
                    continue
                error = None if done.cancelled() else done.exception()
                if error is None:
                    await self.dispatch(done.result())
                else:  # the layer's reader failed: wait Redis out (``receive_relayed``)
                    self.relay_down(error)
                relay = self.watched(self.relay_source())
        except StopConsumer:
            pass
        finally:
            self.wake = None
            tasks = [client, relay]
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=RECEIVE_STOP_SECONDS)
            if stuck:
                with contextlib.suppress(Exception):
                    wake = self.channel_layer.send(self.channel_name, {"type": "consumer.gone"})
                    await asyncio.wait_for(wake, RECEIVE_STOP_SECONDS)
                for task in stuck:
                    task.add_done_callback(_forget_result)

    def relay_source(self) -> asyncio.Future:
        """The next message of the channel layer: while Redis answers, a future of the layer's
        (``RealtimeChannelLayer.receive_future``, no task needed); otherwise, or with another
        layer, ``receive_relayed`` in a task."""
        receive_future = getattr(self.channel_layer, "receive_future", None)
        if receive_future is None or self.relay_error is not None:
            return asyncio.get_running_loop().create_task(self.receive_relayed())
        return receive_future(self.channel_name)

    def watched(self, source: asyncio.Future) -> asyncio.Future:
        source.add_done_callback(self.source_done)
        return source

    def source_done(self, task: asyncio.Future) -> None:
        self.sources_done.append(task)
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def stop_background_tasks(self) -> None:
        """Cancel what runs beside the loop; each topic that starts something extends this."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """A bad message from a worker or the bus is logged; it does not end the connection."""
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            if message.get("type", "").startswith("websocket."):
                raise
            logger.exception("could not relay %r", message.get("type"))

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=json.dumps(content))
