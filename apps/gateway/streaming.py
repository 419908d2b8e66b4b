"""The SSE streaming API's services: running a stream, and the registry every process shares.

Each stream is pumped from the LLM core by a task of its own into a queue the response reads,
so it can be cancelled from outside (``DELETE /api/streaming/{id}``, from any web process, via
a Redis channel every process with streams follows) and still end with an ``error`` event.
A client that goes away cancels the response; the pump is cancelled with it, which closes the
upstream request. Running streams are listed in a Redis hash and counted in another, so
``/active`` and ``/statistics`` cover every web process. Each entry names the process that
serves it, and that process holds a lease in Redis (renewed every ``LEASE_SECONDS / 4``): when
a process dies without unregistering its streams (SIGKILL, OOM), its lease lapses and its
entries leave the list within ``LEASE_SECONDS``. Without Redis, streams still run: each process
lists and cancels its own, and the statistics are unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import redis

from apps.core.redis import async_redis, key, text
from apps.providers.llm import Chunk, LlmRequest, ProviderError, stream

logger = logging.getLogger(__name__)

MAX_STREAM_SECONDS = 300
CANCELLED = "cancelled"
LEASE_SECONDS = 10


def _key(name: str) -> str:
    return key("llm", "streams", name)


_process: tuple[int, str] | None = None


def _process_id() -> str:
    """This process's name in the registry, new in a forked child."""
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(), f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return _process[1]


def _lease_key(process: str) -> str:
    return key("llm", "streams", "process", process)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


REDIS_ERRORS = (redis.RedisError, OSError, TimeoutError)


class RegistryUnavailableError(Exception):
    """Redis, which lists the streams of every process, does not answer."""


@dataclass
class LocalStream:
    id: str
    entry: dict[str, Any]
    pump: asyncio.Task | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


_local: dict[str, LocalStream] = {}
_opened: dict[str, dict[str, Any]] = {}  # registered, not pumping yet
_listener: asyncio.Task | None = None


async def stream_open(request: LlmRequest, user_id: int) -> tuple[str, AsyncGenerator[Chunk, None]]:
    """Route the request and wait for its first chunk; a ``ProviderError`` means no stream."""
    chunks = stream(request)
    try:
        first = await anext(chunks)
    except BaseException:
        await chunks.aclose()
        raise
    stream_id = f"stream_{uuid.uuid4().hex}"
    entry = {
        "streamId": stream_id, "model": request.model, "user": user_id,
        "startedAt": time.time(), "callId": str(request.call_id), "process": _process_id(),
    }  # fmt: skip
    for stale in [k for k, v in _opened.items() if v["startedAt"] < time.time() - 60]:
        del _opened[stale]  # opened, then never read: the client left at once
    _opened[stream_id] = entry
    try:
        pipe = async_redis().pipeline(transaction=False)
        pipe.set(_lease_key(_process_id()), "1", px=LEASE_SECONDS * 1000)
        pipe.hset(_key("active"), stream_id, json.dumps(entry))
        pipe.hincrby(_key("stats"), "started", 1)
        await pipe.execute()
    except REDIS_ERRORS:
        logger.warning("Redis does not answer: stream %s is listed in this process only", stream_id)
    _ensure_listener()
    _ensure_lease()
    return stream_id, _prepend(first, chunks)


async def _prepend(first: Chunk, rest: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
    async with aclosing(rest):
        yield first
        async for chunk in rest:
            yield chunk


async def stream_events(stream_id: str, model: str, chunks: AsyncGenerator[Chunk, None]):
    """The SSE body: ``start``, ``token``…, then ``done`` or ``error``."""
    local = _local[stream_id] = LocalStream(stream_id, _opened.pop(stream_id, {}))
    local.pump = asyncio.ensure_future(_pump(chunks, local.queue))
    started = time.perf_counter()
    outcome, tokens, parts, first_token_ms = "failed", 0, [], None
    try:
        yield sse(
            "start", {"streamId": stream_id, "model": model, "timestamp": int(time.time() * 1000)}
        )
        while True:
            item = await local.queue.get()
            if isinstance(item, Chunk) and item.content:
                tokens += 1
                parts.append(item.content)
                first_token_ms = first_token_ms or (time.perf_counter() - started) * 1000
                yield sse("token", {"content": item.content, "tokenCount": tokens})
            elif isinstance(item, Chunk):
                outcome = "completed"
                yield sse("done", _done(item, "".join(parts), tokens))
                return
            else:
                outcome = CANCELLED if item.code == CANCELLED else "failed"
                yield sse("error", {"code": item.code, "message": item.message})
                return
    except asyncio.CancelledError:
        outcome = CANCELLED
        raise
    finally:
        local.pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await local.pump
        _local.pop(stream_id, None)
        await _unregister(stream_id, outcome, tokens, first_token_ms)


def _done(last: Chunk, text: str, tokens: int) -> dict[str, Any]:
    return {
        "fullText": text,
        "tokenCount": tokens,
        "finishReason": last.finish_reason,
        "usage": last.usage.as_dict() if last.usage else None,
        "provider": last.provider,
        "model": last.model,
        "callId": str(last.call_id),
    }


async def _pump(chunks: AsyncGenerator[Chunk, None], queue: asyncio.Queue) -> None:
    """Move chunks to the queue; a cancel or a failure ends it with a ``ProviderError``."""
    try:
        async with asyncio.timeout(MAX_STREAM_SECONDS), aclosing(chunks):
            async for chunk in chunks:
                queue.put_nowait(chunk)
    except asyncio.CancelledError:
        queue.put_nowait(ProviderError(CANCELLED, "The stream was cancelled."))
        raise
    except TimeoutError:
        queue.put_nowait(ProviderError("timeout", f"Streams end after {MAX_STREAM_SECONDS} s."))
    except ProviderError as error:
        queue.put_nowait(error)


async def _unregister(stream_id: str, outcome: str, tokens: int, first_token_ms) -> None:
    try:
        pipe = async_redis().pipeline(transaction=False)
        pipe.hdel(_key("active"), stream_id)
        pipe.hincrby(_key("stats"), outcome, 1)
        pipe.hincrby(_key("stats"), "tokens", tokens)
        if first_token_ms is not None:
            pipe.hincrbyfloat(_key("stats"), "ttft_ms_sum", first_token_ms)
            pipe.hincrby(_key("stats"), "ttft_count", 1)
        await pipe.execute()
    except Exception:  # the stream itself is over either way
        logger.warning("could not unregister stream %s", stream_id, exc_info=True)


# --- listing, cancelling, statistics ----------------------------------------------------------


def _local_entry(stream_id: str) -> dict[str, Any] | None:
    local = _local.get(stream_id)
    return local.entry if local else _opened.get(stream_id)


async def stream_get(stream_id: str) -> dict[str, Any] | None:
    try:
        raw = await async_redis().hget(_key("active"), stream_id)
        if raw and await _stale({stream_id: json.loads(raw)}):
            return _local_entry(stream_id)
    except REDIS_ERRORS:
        return _local_entry(stream_id)
    return json.loads(raw) if raw else _local_entry(stream_id)


async def _stale(entries: dict[str, dict[str, Any]]) -> list[str]:
    """The entries whose process no longer holds its lease (it died), or that outlived any
    stream; removed from the registry."""
    redis = async_redis()
    processes = sorted({entry["process"] for entry in entries.values() if "process" in entry})
    leases = await redis.mget([_lease_key(process) for process in processes]) if processes else []
    alive = {process for process, lease in zip(processes, leases, strict=True) if lease}
    stale = [
        stream_id
        for stream_id, entry in entries.items()
        if time.time() - entry["startedAt"] > MAX_STREAM_SECONDS + 60
        or ("process" in entry and entry["process"] not in alive)
    ]
    if stale:
        await redis.hdel(_key("active"), *stale)
    return stale


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as ``/active`` lists it: which process serves it is the registry's business."""
    return {name: value for name, value in entry.items() if name != "process"}


async def streams_active() -> tuple[list[dict[str, Any]], bool]:
    """Running streams of every process (entries left by a dead process are pruned), and
    whether that is all of them: without Redis, only this process's are known."""
    try:
        raw = await async_redis().hgetall(_key("active"))
        entries = {text(k): json.loads(v) for k, v in raw.items()}
        stale = await _stale(entries)
    except REDIS_ERRORS:
        mine = [_shown(local.entry) for local in _local.values()]
        return sorted(mine, key=lambda entry: entry["startedAt"]), False
    listed = sorted(
        (_shown(v) for k, v in entries.items() if k not in stale),
        key=lambda entry: entry["startedAt"],
    )
    return listed, True


async def stream_cancel(stream_id: str) -> None:
    """Cancel here if the stream runs in this process, else tell the others."""
    if _cancel_local(stream_id):
        return
    try:
        await async_redis().publish(_key("cancel"), stream_id)
    except REDIS_ERRORS as exc:
        raise RegistryUnavailableError("cannot reach the other web processes") from exc


def _cancel_local(stream_id: str) -> bool:
    local = _local.get(stream_id)
    if local and local.pump:
        local.pump.cancel()
        return True
    return False


_lease: asyncio.Task | None = None


def _ensure_lease() -> None:
    global _lease
    if _lease is None or _lease.done():
        _lease = asyncio.ensure_future(_renew_lease())


async def _renew_lease() -> None:
    """Hold this process's lease for as long as it lives: its streams stay listed."""
    lost = False
    while True:
        try:
            await async_redis().set(_lease_key(_process_id()), "1", px=LEASE_SECONDS * 1000)
            lost = False
        except asyncio.CancelledError:
            raise
        except Exception:
            if not lost:
                logger.warning("could not renew this process's stream lease", exc_info=True)
            lost = True
        await asyncio.sleep(LEASE_SECONDS / 4)


def _ensure_listener() -> None:
    global _listener
    if _listener is None or _listener.done():
        _listener = asyncio.ensure_future(_listen_for_cancels())


async def _listen_for_cancels() -> None:
    lost = False
    while True:
        pubsub = async_redis().pubsub()
        try:
            await pubsub.subscribe(_key("cancel"))
            lost = False
            async for message in pubsub.listen():
                if message["type"] == "message":
                    _cancel_local(text(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception:
            if not lost:
                logger.warning("lost the stream cancel channel; listening again", exc_info=True)
            lost = True
        finally:
            await pubsub.aclose()
        await asyncio.sleep(1.0)


async def streams_statistics() -> dict[str, Any]:
    try:
        raw = await async_redis().hgetall(_key("stats"))
    except REDIS_ERRORS as exc:
        raise RegistryUnavailableError("stream statistics are kept in Redis") from exc
    stats = {text(k): float(v) for k, v in raw.items()}
    count = stats.get("ttft_count", 0)
    return {
        "active": len((await streams_active())[0]),
        **{name: int(stats.get(name, 0)) for name in ("started", "completed", CANCELLED, "failed")},
        "tokens": int(stats.get("tokens", 0)),
        "averageTimeToFirstTokenMs": round(stats["ttft_ms_sum"] / count, 2) if count else None,
    }
