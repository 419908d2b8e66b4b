"""The channel layer (``CHANNEL_LAYERS``): channels-redis's, with one reader per process for the
``/ws/`` connections' own channels.

Each connection receives on a process-local channel (``specific.<process>!<connection>``), and
every such channel of a process is one Redis list. channels-redis's ``receive`` on one keeps,
per waiting connection, two tasks (one for the process's receive lock, one for the channel's
buffer, an ``asyncio.Queue`` of its own) and the lock's waiter: about 6 KiB per idle connection
(bench/README.md). Here a waiting receive is one future in a dict: one task per process reads
the list while anyone waits, hands each message to its channel's future, or keeps it for the
channel's next receive (at most ``capacity`` per channel, the oldest dropped first, as
channels-redis does; a channel nobody received on for ``expiry`` seconds is forgotten).

The reader pops with one ``BZPOPMIN`` per message. channels-redis's receive also moves each
message to a backup sorted set and back (a script before each pop, a ``ZADD`` after it, a
``ZPOPMIN`` later), so that a receive cancelled between the pop and its caller loses nothing;
the reader is never cancelled while the process lives, and the channels it reads belong to this
process, so a message it could lose is one nobody is left to read. Those three round trips
stood between a worker's ``llm.started`` and its answer (bench/README.md).

A send is one round trip: a script that drops the channel's expired messages, refuses a full
channel (``ChannelFull``) and adds the message, where channels-redis makes four calls.

A Redis error fails every waiting receive with it, as channels-redis's would; the next receive
starts a new reader (the consumer retries with a back-off: ``consumers/connection.py``).
Channels shared between processes (a worker's, a group's members are process-local) are
received as channels-redis receives them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.commands.core import AsyncScript

# KEYS[1]: the channel's sorted set; ARGV: the message, now, the oldest score kept, the
# channel's capacity, the expiry (seconds). Returns 0 when the channel is full.
SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RealtimeChannelLayer(RedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_script: AsyncScript | None = None
        self.waiting: dict[str, asyncio.Future] = {}
        # channel -> (when last kept or received, its messages): read while it had no receive
        self.kept: dict[str, tuple[float, collections.deque]] = {}
        self.reader: asyncio.Task | None = None
        self.forgotten_at = 0.0

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """channels-redis's send (the same keys, scores and expiry) in one round trip."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
            channel_key = self.prefix + self.non_local_name(channel)
            index = self.consistent_hash(channel)
        else:
            channel_key = self.prefix + channel
            index = next(self._send_index_generator)
        connection = self.connection(index)
        if self.send_script is None:
            self.send_script = connection.register_script(SEND)
        now = time.time()
        sent = await self.send_script(
            keys=[channel_key],
            args=[
                self.serialize(message),
                now,
                int(now) - int(self.expiry),
                self.get_capacity(channel),
                int(self.expiry),
            ],
            client=connection,
        )
        if not sent:
            raise ChannelFull()

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await super().receive(channel)
        return await self.receive_future(channel)

    def receive_future(self, channel: str) -> asyncio.Future:
        """The next message of this process's ``channel``, as a future (no task or coroutine
        needed to wait for it: the consumer loop adds a done callback); cancel it to stop."""
        assert "!" in channel and self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if channel in self.kept:
            messages = self.kept[channel][1]
            future.set_result(messages.popleft())
            if messages:
                self.kept[channel] = (time.monotonic(), messages)
            else:
                del self.kept[channel]
            return future
        if channel in self.waiting:
            raise RuntimeError(f"{channel} is received on twice at once")
        self.waiting[channel] = future
        future.add_done_callback(functools.partial(self.stop_waiting, channel))
        self.ensure_reader(loop, self.non_local_name(channel))
        return future

    def stop_waiting(self, channel: str, future: asyncio.Future) -> None:
        """A receive that ended (answered, failed or cancelled) waits no more."""
        if self.waiting.get(channel) is future:
            del self.waiting[channel]

    def ensure_reader(self, loop: asyncio.AbstractEventLoop, local_channel: str) -> None:
        reader = self.reader
        if reader is not None and not reader.done() and not reader.get_loop().is_closed():
            if reader.get_loop() is not loop:
                raise RuntimeError(
                    "Two event loops are trying to receive() on one channel layer at once!"
                )
            return
        self.reader = loop.create_task(self.read(local_channel))

    async def read(self, local_channel: str) -> None:
        """Read this process's channels while anyone waits on one."""
        key = self.prefix + local_channel
        connection = self.connection(self.consistent_hash(local_channel))
        try:
            while self.waiting:
                popped = await connection.bzpopmin(key, timeout=self.brpop_timeout)
                if popped is None:
                    continue
                message = self.deserialize(popped[1])
                channel = message.pop("__asgi_channel__", local_channel)
                for name in channel if isinstance(channel, list) else [channel]:
                    self.deliver(name, message)
                self.forget_old()
        except Exception as error:
            waiting, self.waiting = self.waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(error)

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        future = self.waiting.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(message)
            return
        if channel not in self.kept:
            self.kept[channel] = (time.monotonic(), collections.deque(maxlen=self.capacity))
        self.kept[channel][1].append(message)

    def forget_old(self) -> None:
        """Messages kept for a channel that has not received for ``expiry`` seconds are for a
        connection that has gone (Redis would have expired them by now too)."""
        now = time.monotonic()
        if not self.kept or now - self.forgotten_at < 1.0:
            return
        self.forgotten_at = now
        too_old = now - self.expiry
        for channel in [c for c, (kept_at, _) in self.kept.items() if kept_at < too_old]:
            del self.kept[channel]
