"""LLM call records: gathered in memory, shipped through Redis, stored by Celery workers.

Recording a call appends plain dicts to an in-memory queue: no I/O, no model instances. A
background thread ships what has gathered every ``FLUSH_INTERVAL`` seconds (or once
``FLUSH_BATCH`` wait) as one JSON batch pushed onto a Redis list, and asks a Celery worker to
store the list (``providers.store_call_records``; Celery beat also runs it every few seconds).
The database work, measured as the largest cost of the gateway's process when done there,
happens in workers; the web process pays a JSON dump and one ``RPUSH``. ``records.py`` is the
storing side.

Nothing is lost on a clean shutdown: interpreter exit (daphne, uvicorn, commands), the ASGI
lifespan shutdown and Celery's ``worker_process_shutdown`` flush the queue. A process killed
outright loses at most its last ``FLUSH_INTERVAL`` seconds of records (a stream is recorded as
``running`` when it starts, so one that outlives that quarter second leaves a record the sweep
fails); records waiting in Redis survive any web or worker crash. If Redis is away, the thread
writes to the database itself; if both are away, records are kept and retried, up to
``MAX_PENDING``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

import redis
from celery import current_app as celery_app
from django.conf import settings
from django.db import connections

from .records import Attempts, Call, CallRecord, ship_batch, write_records

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25
FLUSH_BATCH = 500
MAX_PENDING = 200_000
STORE_REQUEST_INTERVAL = 0.25
STORE_TASK = "providers.store_call_records"


class CallRecorder:
    def __init__(self) -> None:
        self._pending: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._store_requested_at = 0.0

    def record(self, call: Call, attempts: Attempts) -> None:
        """Queue a call's final record."""
        self._queue(CallRecord(call, attempts))

    def record_started(self, call: Call) -> None:
        """Queue the record of a call that has started (a stream); its final record replaces it."""
        self._queue(CallRecord(call, [], final=False))

    def _queue(self, record: CallRecord) -> None:
        if os.getpid() != self._pid:
            self._after_fork()
        self._pending.append(record)
        if self._thread is None:
            self._start()
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Ship everything queued so far; returns how many records left this process."""
        shipped = 0
        with self._flush_lock:
            while self._pending:
                size = min(FLUSH_BATCH, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                if not self._ship(batch):
                    self._pending.extendleft(reversed(batch))
                    self._trim()
                    break
                shipped += len(batch)
        if shipped and settings.CALL_RECORDS_STORE_ON_SHIP:
            self._request_store()
        return shipped

    def _ship(self, batch: list[CallRecord]) -> bool:
        try:
            ship_batch(batch)
            return True
        except redis.RedisError:
            logger.warning("Redis refused %d call records; writing them directly", len(batch))
        try:
            write_records(batch)
            return True
        except Exception:
            connections.close_all()
            logger.exception("could not keep %d LLM call records; will retry", len(batch))
            return False

    def _request_store(self) -> None:
        """Ask a worker to store what waits, at most every ``STORE_REQUEST_INTERVAL`` seconds per
        process: small, frequent stores keep the worker's share of the CPU even."""
        now = time.monotonic()
        if now - self._store_requested_at < STORE_REQUEST_INTERVAL:
            return
        self._store_requested_at = now
        try:
            celery_app.send_task(STORE_TASK)
        except Exception:  # beat runs the task anyway
            logger.warning("could not ask a worker to store call records", exc_info=True)

    def close(self) -> None:
        """Stop the thread and ship what is left; used at shutdown."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llm-call-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait(FLUSH_INTERVAL)
                self._wake.clear()
                if self._pending:
                    self.flush()
        finally:
            connections.close_all()

    def _after_fork(self) -> None:
        """A forked child starts empty: its parent ships what it had queued."""
        self._pending = deque()
        self._thread = None
        self._flush_lock = threading.Lock()
        self._pid = os.getpid()

    def _trim(self) -> None:
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            logger.error("LLM call record queue is full; dropping the oldest record")


recorder = CallRecorder()
atexit.register(recorder.close)
