"""LLM call records: gathered in memory, shipped through Redis, written by Celery workers.

Recording a call appends plain dicts to an in-memory queue: no I/O, no model instances. A
background thread ships what has gathered every ``FLUSH_INTERVAL`` seconds (or once
``FLUSH_BATCH`` wait) as one JSON blob pushed onto a Redis list, and asks a Celery worker to
store the list (``providers.store_call_records``; Celery beat also runs it every few seconds).
The database work, measured as the largest cost of the gateway's process when done there,
happens in workers; the web process pays a JSON dump and one ``RPUSH``.

Nothing is lost on a clean shutdown: interpreter exit (daphne, uvicorn, commands), the ASGI
lifespan shutdown and Celery's ``worker_process_shutdown`` flush the queue. A process killed
outright loses at most its last ``FLUSH_INTERVAL`` seconds of records; records waiting in
Redis survive any web or worker crash. If Redis is away, the thread writes to the database
itself; if both are away, records are kept and retried, up to ``MAX_PENDING``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import orjson
import redis
from django.conf import settings
from django.db import connections, models, transaction

from .state import key_prefix

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
FLUSH_BATCH = 500
MAX_PENDING = 200_000
STORE_REQUEST_INTERVAL = 1.0
BLOBS_PER_STORE = 20

CallRecord = tuple[dict[str, Any], list[dict[str, Any]]]


def records_key() -> str:
    return f"{key_prefix()}call-records"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.CACHES["default"]["LOCATION"], socket_timeout=5, socket_connect_timeout=2
    )


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


# --- writing to the database ------------------------------------------------------------------

# Field types whose Python values the database driver takes as they are.
_PLAIN_FIELDS = (
    models.BooleanField, models.CharField, models.FloatField, models.IntegerField,
    models.TextField,
)  # fmt: skip


@lru_cache
def _insert_plan(model) -> tuple[list, str]:
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    quote = connections["default"].ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(model._meta.db_table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    return fields, sql


def _insert(model, records: list[dict[str, Any]]) -> None:
    """``INSERT`` plain dicts keyed by field attname with one ``executemany``.

    The ORM's ``bulk_create`` builds a model instance and compiles SQL for every row. Values
    of other than plain fields (UUIDs, decimals, datetimes, foreign keys, also as the strings
    JSON made of them) go through the field's ``get_db_prep_save``, so every database backend
    gets what it expects.
    """
    connection = connections["default"]
    fields, sql = _insert_plan(model)
    converters = [
        None if isinstance(f, _PLAIN_FIELDS) and not f.is_relation else f.get_db_prep_save
        for f in fields
    ]
    defaults = {f.attname: f.get_default() for f in fields}
    rows = []
    for record in records:
        values = []
        for field, convert in zip(fields, converters, strict=True):
            value = record.get(field.attname, defaults[field.attname])
            values.append(value if convert is None or value is None else convert(value, connection))
        rows.append(values)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def write_records(batch: list[CallRecord]) -> None:
    from .models import LlmCall, LlmCallAttempt

    attempts = [
        {**attempt, "call_id": call["id"]}
        for call, call_attempts in batch
        for attempt in call_attempts
    ]
    with transaction.atomic():
        _insert(LlmCall, [call for call, _ in batch])
        if attempts:
            _insert(LlmCallAttempt, attempts)


def call_records_store() -> int:
    """Write the records waiting in Redis (any process may call it; pops are atomic).

    A batch that cannot be written goes back to the head of the list for the next attempt.
    """
    stored = 0
    while blobs := _redis().lpop(records_key(), BLOBS_PER_STORE):
        batch = [tuple(record) for blob in blobs for record in orjson.loads(blob)]
        try:
            write_records(batch)
        except Exception:
            _redis().lpush(records_key(), *reversed(blobs))
            raise
        stored += len(batch)
    return stored


def call_records_waiting() -> int:
    """How many blobs (batches) wait in Redis to be stored."""
    return _redis().llen(records_key())


# --- the in-process queue ---------------------------------------------------------------------


class CallRecorder:
    def __init__(self) -> None:
        self._pending: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._store_requested_at = 0.0

    def record(self, call: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        if os.getpid() != self._pid:
            self._after_fork()
        self._pending.append((call, attempts))
        if self._thread is None:
            self._start()
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Ship everything queued so far; returns how many calls left this process."""
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
            _redis().rpush(records_key(), orjson.dumps(batch, default=_encode))
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
        """Ask a worker to store what waits, at most once a second per process."""
        now = time.monotonic()
        if now - self._store_requested_at < STORE_REQUEST_INTERVAL:
            return
        self._store_requested_at = now
        from .tasks import store_call_records

        try:
            store_call_records.delay()
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
        _redis.cache_clear()

    def _trim(self) -> None:
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            logger.error("LLM call record queue is full; dropping the oldest record")


recorder = CallRecorder()
atexit.register(recorder.close)
